"""Accuracy evaluation: synthetic scenes with known 3D truth, the benchmark runner, prior comparison
(tables, plots, grids). The speed benchmarks are the top-level ``benchmarks/`` scripts."""
