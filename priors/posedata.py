"""Pose sets for training priors: the converted open mocap, AMASS files, plain pose arrays.

Every reader returns (N, 63) float32 axis-angle poses of SMPL body joints 1..21.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

OPEN_POSES = Path(__file__).resolve().parent / "assets" / "open_poses.npz"
HELDOUT = ("holosoma_climb_4",)  # never seen by a prior, the regressor or any tuning
#: SMPL body joints 1..21 as (left, right) pairs; the rest (spine, neck, head) are central
MIRROR_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))


class PoseDataError(ValueError):
    """A pose file that cannot be used (empty, wrong shape, NaN)."""


def mirror_poses(poses: np.ndarray) -> np.ndarray:
    """Left/right mirror of (N, 63) body poses: swap paired joints, negate y and z of each rotation."""
    p = np.asarray(poses).reshape(-1, 21, 3).copy()
    for a, b in MIRROR_PAIRS:
        p[:, [a - 1, b - 1]] = p[:, [b - 1, a - 1]]
    p[..., 1:] *= -1
    return p.reshape(-1, 63)


def _check(poses: np.ndarray, where) -> np.ndarray:
    poses = np.asarray(poses, np.float32)
    if poses.size == 0:
        raise PoseDataError(f"{where}: no poses")
    if not np.isfinite(poses).all():
        raise PoseDataError(f"{where}: poses contain NaN or infinite values")
    return poses


def read_pose_file(path, target_fps: float = 15.0) -> np.ndarray:
    """Body poses from an npz: ours (``poses`` (N, 63) + ``split``: the train split), AMASS
    (``poses`` (T, 156 | 165) + ``mocap_framerate``: subsampled to ``target_fps``), or plain
    arrays (``poses`` (N, 63 | 69 | 72))."""
    p = Path(path)
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PoseDataError(f"{p}: cannot read ({exc})") from None
    with z:
        if "poses" not in z.files:
            raise PoseDataError(f"{p}: no 'poses' array (found {', '.join(z.files) or 'nothing'})")
        poses = z["poses"]
        if poses.ndim != 2:
            raise PoseDataError(f"{p}: 'poses' must be 2-D, got shape {poses.shape}")
        if "split" in z.files:  # our open pose set: training split only
            poses = poses[z["split"] == "train"]
        elif poses.shape[1] in (156, 165):  # AMASS: SMPL-H / SMPL-X full pose
            fps = float(z["mocap_framerate"]) if "mocap_framerate" in z.files else 120.0
            poses = poses[:: max(1, round(fps / target_fps)), 3:66]
        elif poses.shape[1] == 72:
            poses = poses[:, 3:66]
        elif poses.shape[1] == 69:
            poses = poses[:, :63]
        elif poses.shape[1] != 63:
            raise PoseDataError(f"{p}: 'poses' has {poses.shape[1]} columns; expected 63, 69, 72 (SMPL) or "
                                f"156/165 (AMASS)")
    return _check(poses, p)


def collect(paths: Sequence, mirror: bool = True) -> np.ndarray:
    """All poses from files and folders (``*.npz`` found recursively), mirrored copies added."""
    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.npz"))
        elif p.exists():
            files.append(p)
        else:
            raise PoseDataError(f"{p}: not found")
    if not files:
        raise PoseDataError(f"no pose files in {', '.join(map(str, paths))}")
    poses = np.concatenate([read_pose_file(f) for f in files])
    return np.concatenate([poses, mirror_poses(poses)]) if mirror else poses


def open_poses(split: str = "train") -> np.ndarray:
    """(N, 63) poses of the shipped open set: 'train' or 'heldout' (no mirroring)."""
    with np.load(OPEN_POSES, allow_pickle=False) as z:
        return z["poses"][z["split"] == split].astype(np.float32)
