"""Knowledge: chunking, and the shipped runbook corpus."""
