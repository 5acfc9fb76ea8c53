"""Wavefront OBJ writing and reading (atomic writes, 1-based faces)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_obj(path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write("# smplify posed mesh, camera coordinates (OpenCV: x right, y down, z forward), metres\n")
        np.savetxt(fh, np.asarray(vertices, np.float64), fmt="v %.6f %.6f %.6f")
        np.savetxt(fh, np.asarray(faces, np.int64) + 1, fmt="f %d %d %d")
    os.replace(tmp, path)
    return path


def read_obj(path):
    v, f = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("v "):
            v.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            f.append([int(x.split("/")[0]) - 1 for x in line.split()[1:4]])
    return np.array(v, np.float64), np.array(f, np.int64)
