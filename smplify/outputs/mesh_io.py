"""Wavefront OBJ writing and reading (atomic writes, 1-based faces)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _write_obj_handle(fh, vertices: np.ndarray, faces: np.ndarray) -> None:
    fh.write("# smplify posed mesh, camera coordinates "
             "(OpenCV: x right, y down, z forward), metres\n")
    np.savetxt(fh, np.asarray(vertices, np.float64).reshape(-1, 3), fmt="v %.6f %.6f %.6f")
    np.savetxt(fh, np.asarray(faces, np.int64).reshape(-1, 3) + 1, fmt="f %d %d %d")


def obj_text(vertices: np.ndarray, faces: np.ndarray) -> str:
    """A triangle mesh as OBJ text (1-based faces, 6 decimals)."""
    import io

    buf = io.StringIO()
    _write_obj_handle(buf, vertices, faces)
    return buf.getvalue()


def write_obj(path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Write a triangle mesh as OBJ (1-based faces, 6 decimals), atomically."""
    path = Path(path)
    from ..fileio import atomic_write

    def write(tmp):
        with open(tmp, "w") as fh:
            _write_obj_handle(fh, vertices, faces)

    return atomic_write(path, write)


def read_obj(path):
    """(vertices (V, 3) float64, faces (F, 3) int64, 0-based) from an OBJ file.

    Only the first three corners of each face are read."""
    v, f = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("v "):
            v.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            f.append([int(x.split("/")[0]) - 1 for x in line.split()[1:4]])
    return np.array(v, np.float64), np.array(f, np.int64)
