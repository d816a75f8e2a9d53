"""The release: the Trivy gate, pushes by digest, the CD stages, the smoke test."""
