"""Synthetic fitting cases with known 3D truth.

Poses come from the held-out mocap sequence (never used to train a prior or the
regressor), shapes are random adults (betas ~ N(0, 1)), viewpoints cover a full turn in
azimuth and ±30° elevation, focal lengths and distances are those of real photos, and
2D keypoints are the body points that the MediaPipe-33 landmark table maps to, with
pixel noise and dropout. Everything is drawn from one seeded generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch

from ..body import BodyModel
from ..camera import Camera, focal_from_fov, project
from ..fitter import FitInput

OPEN_POSES = Path(__file__).resolve().parents[2] / "priors" / "assets" / "open_poses.npz"


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
        raise FileNotFoundError(f"{path}: open pose set not found (python -m priors.build_pose_data)")
    with np.load(path, allow_pickle=False) as z:
        poses = z["poses"].astype(np.float32)
        split = z["split"]
        if split.dtype.kind in "US":
            mask = split == "heldout"
        else:
            names = [str(s) for s in z["split_names"]] if "split_names" in z.files else ["train", "heldout"]
            mask = split == names.index("heldout")
    return poses[mask]


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float64)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float64)  # y


def _rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec().astype(np.float32)


def make_cases(body: BodyModel, layout_input, n: int = 200, noise_levels: Sequence[float] = (0.0, 3.0, 8.0),
               dropouts: Sequence[float] = (0.0, 0.1, 0.3), seed: int = 0, poses: Optional[np.ndarray] = None,
               image_size=(1080, 1920)) -> List[SyntheticCase]:
    """``n`` bodies × every (noise, dropout) level.

    layout_input: ``(index (M,), names (M,), table_weight (M,))`` — the MediaPipe-33 targets
    on this body model (from the landmark table), used to make the 2D keypoints.
    """
    rng = np.random.default_rng(seed)
    poses = heldout_poses() if poses is None else poses
    index, names, table_w = layout_input
    index = np.asarray(index)
    W, H = image_size
    cases: List[SyntheticCase] = []
    for i in range(n):
        pose = poses[rng.integers(len(poses))]
        betas = rng.normal(0, 1, 10).astype(np.float32)
        az, el = rng.uniform(-math.pi, math.pi), rng.uniform(-math.radians(30), math.radians(30))
        # body Y-up -> OpenCV camera (rotate 180° about x), then the viewpoint
        R = _rot("x", el) @ _rot("y", az) @ _rot("x", math.pi)
        go = _rotvec(R)
        fov = rng.uniform(45.0, 70.0)
        f = focal_from_fov(image_size, fov)
        dist = rng.uniform(2.5, 6.0)
        with torch.no_grad():
            out = body.joints_and_landmarks(torch.tensor(go)[None], torch.tensor(pose)[None], torch.tensor(betas)[None],
                                            torch.zeros(1, 3))
        pts = out.points[0].numpy()
        # place the pelvis at the chosen distance, near the image centre (person fully in view)
        centre = pts[0]
        off = np.array([rng.uniform(-0.1, 0.1) * dist, rng.uniform(-0.05, 0.05) * dist, dist], np.float32)
        transl = (off - centre).astype(np.float32)
        P = torch.tensor(pts + transl)[None]
        uv = project(P, torch.tensor([[f, f]], dtype=torch.float32), torch.tensor([[W / 2, H / 2]], dtype=torch.float32))[0].numpy()
        cam = Camera((f, f), (W / 2, H / 2), (W, H), "synthetic")
        for noise in noise_levels:
            for drop in dropouts:
                xy = uv[index] + rng.normal(0, noise, (len(index), 2)).astype(np.float32)
                conf = np.where(rng.random(len(index)) < drop, 0.0, 1.0).astype(np.float32)
                fi = FitInput(index=index, xy=xy.astype(np.float32), confidence=conf,
                              weight=np.asarray(table_w, np.float32), camera=cam, names=tuple(names),
                              tag=f"case{i:04d}_n{noise:g}_d{drop:g}")
                cases.append(SyntheticCase(i, float(noise), float(drop), go, pose.astype(np.float32), betas, transl,
                                           cam, fi, (out.joints[0].numpy() + transl).astype(np.float32)))
    return cases


def iter_batches(cases: Sequence[SyntheticCase], size: int) -> Iterator[List[SyntheticCase]]:
    for i in range(0, len(cases), size):
        yield list(cases[i : i + size])
