"""Benchmarks for taskq: importable harness code, runnable as ``python -m benchmarks.<name>``."""
