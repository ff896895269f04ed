"""Benchmark commands, one per module: ``python benchmarks/<module>.py`` or ``tinytorch bench <module>``.

Each prints ratios measured side by side in one run; none of them is a test.
"""
