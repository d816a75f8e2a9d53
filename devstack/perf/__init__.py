"""Performance: benchmarks anyone can rerun, and the load test with its autoscaling verdict."""
