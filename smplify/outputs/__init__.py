"""Outputs: parameter/report files, meshes, and rendered overlays."""
