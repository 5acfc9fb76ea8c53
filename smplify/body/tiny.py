"""A tiny, procedurally built SMPL-format body model for tests (built in milliseconds).

A T-posed stick figure with SMPL's 24 joints: a small cube of 8 vertices around each
joint and at each bone's midpoint, random smooth shape directions, small random pose
correctives, and a vertex per surface landmark. It exercises every code path the real
models use (sparse regressor, blended weights, posedirs, landmarks) without any file.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .model_file import BodyModelData
from .names import NUM_JOINTS, SMPL_PARENTS

# approximate SMPL T-pose joint locations (metres, Y up, facing +Z)
_JOINTS = np.array([
    [0.00, 0.00, 0.00], [0.06, -0.09, 0.00], [-0.06, -0.09, 0.00], [0.00, 0.11, -0.02],
    [0.10, -0.47, 0.00], [-0.10, -0.47, 0.00], [0.00, 0.24, 0.00], [0.09, -0.87, -0.04],
    [-0.09, -0.87, -0.04], [0.00, 0.30, 0.02], [0.11, -0.93, 0.08], [-0.11, -0.93, 0.08],
    [0.00, 0.51, -0.01], [0.08, 0.42, 0.00], [-0.08, 0.42, 0.00], [0.00, 0.60, 0.04],
    [0.18, 0.44, -0.01], [-0.18, 0.44, -0.01], [0.43, 0.44, -0.03], [-0.43, 0.44, -0.03],
    [0.68, 0.44, -0.03], [-0.68, 0.44, -0.03], [0.77, 0.43, -0.04], [-0.77, 0.43, -0.04],
], np.float32)

# landmark name -> (position, joint it is bound to)
_LANDMARKS = {
    "nose": ([0.0, 0.62, 0.12], 15), "left_eye": ([0.03, 0.66, 0.09], 15),
    "right_eye": ([-0.03, 0.66, 0.09], 15), "left_ear": ([0.07, 0.63, 0.0], 15),
    "right_ear": ([-0.07, 0.63, 0.0], 15), "left_big_toe": ([0.10, -0.95, 0.16], 10),
    "left_small_toe": ([0.14, -0.95, 0.14], 10), "left_heel": ([0.09, -0.95, -0.08], 7),
    "right_big_toe": ([-0.10, -0.95, 0.16], 11), "right_small_toe": ([-0.14, -0.95, 0.14], 11),
    "right_heel": ([-0.09, -0.95, -0.08], 8), "left_thumb": ([0.78, 0.41, 0.04], 22),
    "left_index": ([0.85, 0.43, 0.0], 22), "left_pinky": ([0.83, 0.43, -0.06], 22),
    "right_thumb": ([-0.78, 0.41, 0.04], 23), "right_index": ([-0.85, 0.43, 0.0], 23),
    "right_pinky": ([-0.83, 0.43, -0.06], 23),
}


def _cube(center, half):
    off = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32) * half
    return center + off


_CUBE_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                        [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def make_tiny_model(num_betas: int = 10, seed: int = 0, with_posedirs: bool = True) -> BodyModelData:
    """Build the tiny model. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    verts, faces, w_rows = [], [], []
    jreg_cols = []
    for j in range(NUM_JOINTS):  # a cube around each joint, bound rigidly to it
        base = sum(len(v) for v in verts)
        verts.append(_cube(_JOINTS[j], 0.02))
        faces.append(_CUBE_FACES + base)
        w = np.zeros((8, NUM_JOINTS), np.float32)
        w[:, j] = 1.0
        w_rows.append(w)
        jreg_cols.append((j, base))
    for j in range(1, NUM_JOINTS):  # a cube at each bone's midpoint, blended parent/child
        p = SMPL_PARENTS[j]
        base = sum(len(v) for v in verts)
        verts.append(_cube(0.5 * (_JOINTS[j] + _JOINTS[p]), 0.03))
        faces.append(_CUBE_FACES + base)
        w = np.zeros((8, NUM_JOINTS), np.float32)
        w[:, p], w[:, j] = 0.5, 0.5
        w_rows.append(w)
    names = tuple(_LANDMARKS)
    base = sum(len(v) for v in verts)
    verts.append(np.array([_LANDMARKS[n][0] for n in names], np.float32))
    w = np.zeros((len(names), NUM_JOINTS), np.float32)
    for i, n in enumerate(names):
        w[i, _LANDMARKS[n][1]] = 1.0
    w_rows.append(w)
    v = np.concatenate(verts).astype(np.float32)
    V = len(v)
    rows, cols = [], []
    for j, b in jreg_cols:
        rows += [j] * 8
        cols += list(range(b, b + 8))
    J_regressor = sp.csr_matrix((np.full(len(rows), 1 / 8, np.float32), (rows, cols)), shape=(NUM_JOINTS, V))
    # smooth shape directions: per-direction random affine stretch of the template plus noise
    shapedirs = np.zeros((V, 3, num_betas), np.float32)
    for s in range(num_betas):
        A = rng.normal(0, 0.03, (3, 3)).astype(np.float32)
        shapedirs[..., s] = v @ A.T + rng.normal(0, 0.002, (V, 3))
    posedirs = rng.normal(0, 0.003, (V, 3, 9 * (NUM_JOINTS - 1))).astype(np.float32) if with_posedirs else None
    return BodyModelData(
        name="tiny-test", v_template=v, faces=np.concatenate(faces).astype(np.int64), shapedirs=shapedirs,
        J_regressor=J_regressor, weights=sp.csr_matrix(np.concatenate(w_rows)),
        parents=np.array(SMPL_PARENTS, np.int64), posedirs=posedirs, landmark_names=names,
        landmark_vertices=np.arange(base, base + len(names)).reshape(-1, 1),
        landmark_weights=np.ones((len(names), 1), np.float32), meta={"kind": "tiny", "license": "CC0"},
    )
