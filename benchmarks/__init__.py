"""Benchmarks: `make bench` (python -m benchmarks) runs every bench_*.py and prints one table.

Each module exposes ``run(quick: bool) -> list[dict]``; every row has at least
``name``, ``measured``, ``target`` and ``ok`` (ratios measured side by side in one run).
"""
