"""What every other part of devstack uses."""
