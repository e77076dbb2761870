"""Benchmarks for taskq: importable harness code, runnable as ``python -m taskq_bench.<name>``."""
