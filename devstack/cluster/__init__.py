"""The cluster: kind and its local registry, kustomize rendering, deploys, Tilt."""
