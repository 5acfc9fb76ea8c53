"""Accuracy evaluation: fits scored against known 3D (synthetic cases, the real capture)."""
