"""Synthetic benchmark with known 3D truth, and prior comparison."""
