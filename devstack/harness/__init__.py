"""The serving harness: the Gemini stand-in and the servers the tests and the benchmarks run."""
