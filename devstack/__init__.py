"""The delivery side of vaia-devstack, behind `tasks/` (Invoke). One package per concern:

- core: the tool table and its preflight, the one runner for external programs, the error
  family, the console, loopback helpers and the names every part shares;
- image: docker, the image build and its tags, the offline stand-in bases, the Compose stack;
- cluster: kind and the local registry, kustomize rendering, deploys and their Secret, Tilt;
- release: the Trivy gate, pushes by digest, the CD stages and the smoke test;
- perf: benchmarks and the load test with its autoscaling verdict;
- verify: the offline proof that the manifests, the Tiltfile and the kind config are right.

Every module is importable without a shell, so the tests call the same code the tasks call.
"""
