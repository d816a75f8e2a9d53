"""The image: docker, the build and its tags, the offline stand-in bases, the Compose stack."""
