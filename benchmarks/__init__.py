"""Timing harnesses (not tests): `python -m benchmarks.bench_step --help`."""
