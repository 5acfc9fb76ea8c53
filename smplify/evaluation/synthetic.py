"""Synthetic fitting cases with known 3D truth.

Poses come from the held-out mocap sequence (never used to train a prior or the
regressor), shapes are random adults (betas ~ N(0, 1)), viewpoints cover a full turn in
azimuth and ±30° elevation, focal lengths and distances are those of real photos, and
2D keypoints are the body points that the MediaPipe-33 landmark table maps to, with
pixel noise and dropout. Everything is drawn from one seeded generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch

from ..body import BodyModel
from ..camera import Camera
from ..fitting import FitInput

from ..paths import OPEN_POSES


@dataclass
class SyntheticCase:
    """One case: the truth, the camera and the 2D input at one noise/dropout level."""

    case_id: int
    noise_px: float
    dropout: float
    global_orient: np.ndarray  # (3,) camera frame
    body_pose: np.ndarray  # (63,)
    betas: np.ndarray  # (10,)
    transl: np.ndarray  # (3,)
    camera: Camera
    fit_input: FitInput
    joints3d: np.ndarray  # (24, 3) true joints, camera frame
    vertices_needed: bool = True


def heldout_poses(path=OPEN_POSES) -> np.ndarray:
    """(N, 63) body poses of the held-out sequence(s) of the open pose set."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: open pose set not found (python -m smplify.cli.build_pose_data)")
    with np.load(path, allow_pickle=False) as z:
        poses = z["poses"].astype(np.float32)
        split = z["split"]
        if split.dtype.kind in "US":
            mask = split == "heldout"
        else:
            names = [str(s) for s in z["split_names"]] if "split_names" in z.files else ["train", "heldout"]
            mask = split == names.index("heldout")
    return poses[mask]


def make_cases(body: BodyModel, layout_input, n: int = 200, noise_levels: Sequence[float] = (0.0, 3.0, 8.0),
               dropouts: Sequence[float] = (0.0, 0.1, 0.3), seed: int = 0, poses: Optional[np.ndarray] = None,
               image_size=(1080, 1920)) -> List[SyntheticCase]:
    """``n`` scenes (:func:`smplify.evaluation.scenes.sample_scenes`) × every (noise, dropout) level.

    layout_input: ``(index (M,), names (M,), table_weight (M,))`` — the MediaPipe-33 targets
    on this body model (from the landmark table), used to make the 2D keypoints.
    """
    from .scenes import sample_scenes

    rng = np.random.default_rng(seed)
    poses = heldout_poses() if poses is None else poses
    index, names, table_w = layout_input
    index = np.asarray(index)
    sc = sample_scenes(body, torch.as_tensor(poses), n, torch.Generator().manual_seed(seed), image_size=image_size)
    with torch.no_grad():
        joints = body.joints_and_landmarks(sc.global_orient, sc.body_pose, sc.betas, sc.transl).joints.numpy()
    cases: List[SyntheticCase] = []
    for i in range(n):
        f = float(sc.focal[i, 0])
        cam = Camera((f, f), tuple(float(v) for v in sc.principal_point[i]), tuple(image_size), "synthetic")
        uv = sc.uv[i].numpy()
        for noise in noise_levels:
            for drop in dropouts:
                xy = uv[index] + rng.normal(0, noise, (len(index), 2)).astype(np.float32)
                conf = np.where(rng.random(len(index)) < drop, 0.0, 1.0).astype(np.float32)
                fi = FitInput(index=index, xy=xy.astype(np.float32), confidence=conf,
                              weight=np.asarray(table_w, np.float32), camera=cam, names=tuple(names),
                              tag=f"case{i:04d}_n{noise:g}_d{drop:g}")
                cases.append(SyntheticCase(i, float(noise), float(drop), sc.global_orient[i].numpy(),
                                           sc.body_pose[i].numpy(), sc.betas[i].numpy(), sc.transl[i].numpy(),
                                           cam, fi, joints[i]))
    return cases


def iter_batches(cases: Sequence[SyntheticCase], size: int) -> Iterator[List[SyntheticCase]]:
    for i in range(0, len(cases), size):
        yield list(cases[i : i + size])
