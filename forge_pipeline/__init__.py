"""Forge Pool execution accounting.

The package root imports nothing heavy: the kernels and their tests must import with
NumPy (and CuPy) alone, on machines without Dagster, Polars or SQLAlchemy.
"""
