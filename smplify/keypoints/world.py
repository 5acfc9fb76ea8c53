"""Bones between keypoints, for terms on a detector's 3D landmarks (:attr:`Keypoints2D.world`).

A bone runs from the mean of some keypoints to the mean of others (the torso: hips' midpoint to
shoulders' midpoint). Its direction in the world landmarks is compared with the same bone of the
fitted body, built from the body points those keypoints map to (:mod:`smplify.keypoints.mapping`):
directions only, so neither the landmarks' scale nor their hip-centred origin matter.
:func:`bone_table` gives, for one person's keypoint rows, the coefficient matrix (nb, M) and the
target directions and weights; :func:`smplify.objective.direction_term` is the term.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np


class Bone(NamedTuple):
    name: str
    start: Tuple[str, ...]  # keypoint names averaged
    end: Tuple[str, ...]
    weight: float


def _limb(side: str):
    s = side
    return (Bone(f"{s}_upper_arm", (f"{s}_shoulder",), (f"{s}_elbow",), 1.0),
            Bone(f"{s}_forearm", (f"{s}_elbow",), (f"{s}_wrist",), 1.0),
            Bone(f"{s}_thigh", (f"{s}_hip",), (f"{s}_knee",), 1.0),
            Bone(f"{s}_shin", (f"{s}_knee",), (f"{s}_ankle",), 1.0),
            Bone(f"{s}_foot", (f"{s}_heel",), (f"{s}_foot_index",), 0.5))


#: the bones compared: limbs, feet (half weight: small, noisy), the hip and shoulder lines, the torso, the head
BONES: Tuple[Bone, ...] = _limb("left") + _limb("right") + (
    Bone("hips", ("right_hip",), ("left_hip",), 1.0),
    Bone("shoulders", ("right_shoulder",), ("left_shoulder",), 1.0),
    Bone("torso", ("left_hip", "right_hip"), ("left_shoulder", "right_shoulder"), 1.0),
    Bone("head", ("left_shoulder", "right_shoulder"), ("nose",), 0.5),
    Bone("ears", ("right_ear",), ("left_ear",), 0.5),
)


@dataclass
class BoneTargets:
    """One person's bones over its M keypoint rows: coeff (nb, M) (d_b = Σ_m coeff[b, m] P_m), direction
    (nb, 3) unit vectors of the world landmarks' bones, weight (nb,) = bone weight × the lowest
    visibility of its keypoints; names (nb,)."""

    coeff: np.ndarray
    direction: np.ndarray
    weight: np.ndarray
    names: Tuple[str, ...]


_coefficients = functools.lru_cache(maxsize=64)(lambda names, bones: _build_coefficients(names, bones))


def bone_coefficients(names: Sequence[str], bones: Sequence[Bone] = BONES):
    """(nb, M) coefficients of the bones whose keypoints are all among ``names`` (a person's keypoint rows,
    e.g. :attr:`KeypointTargets.names`), their weights (nb,) and names. Built once per layout (copies returned)."""
    coeff, w, kept = _coefficients(tuple(names), tuple(bones))
    return coeff.copy(), w.copy(), kept


def _build_coefficients(names: Tuple[str, ...], bones: Tuple[Bone, ...]):
    at = {n: i for i, n in enumerate(names)}
    rows, w, kept = [], [], []
    for b in bones:
        if not all(k in at for k in b.start + b.end):
            continue
        c = np.zeros(len(names), np.float32)
        for k in b.end:
            c[at[k]] += 1.0 / len(b.end)
        for k in b.start:
            c[at[k]] -= 1.0 / len(b.start)
        rows.append(c)
        w.append(b.weight)
        kept.append(b.name)
    coeff = np.stack(rows) if rows else np.zeros((0, len(names)), np.float32)
    return coeff, np.asarray(w, np.float32), tuple(kept)


def bone_targets(names: Sequence[str], world: np.ndarray, visibility: Optional[np.ndarray],
                 bones: Sequence[Bone] = BONES) -> BoneTargets:
    """Bones of one person: names (M,) keypoint rows; world (M, 3) their world landmarks; visibility (M,)
    (None: 1). A bone shorter than 1 mm in the landmarks gets weight 0."""
    coeff, bw, kept = bone_coefficients(names, bones)
    world = np.asarray(world, np.float64)
    vis = np.ones(len(names)) if visibility is None else np.asarray(visibility, np.float64)
    d = coeff.astype(np.float64) @ world
    length = np.linalg.norm(d, axis=-1)
    direction = d / np.maximum(length, 1e-9)[:, None]
    lowest = np.where(coeff != 0, vis[None, :], np.inf).min(1) if len(coeff) else np.zeros(0)
    weight = np.where(length > 1e-3, bw * np.clip(lowest, 0, 1), 0.0)
    return BoneTargets(coeff, direction.astype(np.float32), weight.astype(np.float32), kept)
