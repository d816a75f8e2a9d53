"""What this machine needs beyond a laptop for kind to run, set up by `invoke setup` only where
it is needed (devstack/host/privileged.py)."""
