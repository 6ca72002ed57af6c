"""Benchmarks: each `bench/<name>/` runs with `python -m bench.<name>` and writes RESULTS.md."""
