"""The offline proof: what a cluster, Tilt and kind would do with this repository's files, checked
without them. `invoke verify` runs it; the static test tier calls the same functions."""
