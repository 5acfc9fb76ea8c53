"""Pose sets for training priors: the converted open mocap, AMASS files, plain pose arrays.

Every reader returns (N, 63) float32 axis-angle poses of SMPL body joints 1..21.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from smplify.paths import OPEN_POSES
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


#: largest axis-angle value (radians) a pose file may hold; AMASS stays well inside 2π
MAX_ROTATION = 50.0


def _check(poses: np.ndarray, where) -> np.ndarray:
    poses = np.asarray(poses, np.float32)
    if poses.ndim != 2 or poses.shape[1] != 63:
        raise PoseDataError(f"{where}: expected (N, 63) poses, got shape {poses.shape}")
    if poses.size == 0:
        raise PoseDataError(f"{where}: no poses")
    if not np.isfinite(poses).all():
        raise PoseDataError(f"{where}: poses contain NaN or infinite values")
    big = float(np.abs(poses).max()) if poses.size else 0.0
    if big > MAX_ROTATION:
        raise PoseDataError(f"{where}: poses contain values up to {big:.3g}; axis-angle rotations are radians "
                            f"(|value| <= {MAX_ROTATION:g})")
    return poses


def _read_key(z, key: str, p: Path) -> np.ndarray:
    try:
        return z[key]
    except ValueError:  # object arrays need pickle, which we never use on data files
        raise PoseDataError(f"{p.name}: array {key!r} is stored as Python objects, not numbers ({p})") from None
    except Exception as exc:  # a damaged zip member (CRC error, truncated) -> one line, no traceback
        raise PoseDataError(f"{p.name}: cannot read array {key!r} ({type(exc).__name__}: {exc}) ({p})") from None


def _open_npz(p: Path):
    if not p.is_file():
        raise PoseDataError(f"{p}: not found")
    if p.stat().st_size == 0:
        raise PoseDataError(f"{p.name}: empty file (0 bytes) ({p})")
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as exc:  # OSError, ValueError, EOFError, zipfile.BadZipFile ...
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise PoseDataError(f"{p.name}: not a readable .npz ({reason}) ({p})") from None
    if isinstance(z, np.ndarray):  # a bare .npy: the array is the poses
        return {"poses": z}
    return z


def has_poses(path) -> bool:
    """Whether ``path`` is a motion/pose npz (has a ``poses`` array). AMASS folders also hold
    ``shape.npz`` (betas only) and SMPL-X ``*_stagei.npz`` files, which are not motion."""
    try:
        z = _open_npz(Path(path))
    except PoseDataError:
        return True  # let the reader report the problem
    try:
        return "poses" in (z.files if hasattr(z, "files") else z)
    finally:
        if hasattr(z, "close"):
            z.close()


def _framerate(z, p: Path, default: float = 120.0) -> float:
    for key in ("mocap_framerate", "mocap_frame_rate"):  # AMASS SMPL+H / SMPL-X spellings
        if key in z.files:
            try:
                fps = float(np.asarray(_read_key(z, key, p)).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                raise PoseDataError(f"{p.name}: {key!r} is not a number ({p})") from None
            if not np.isfinite(fps) or fps <= 0:
                raise PoseDataError(f"{p.name}: {key!r} must be a positive frame rate, got {fps} ({p})")
            return fps
    return default


def read_pose_file(path, target_fps: float = 15.0, info: dict | None = None) -> np.ndarray:
    """Body poses from an npz: ours (``poses`` (N, 63) + ``split``: the train split), AMASS
    (``poses`` (T, 156 | 165) + ``mocap_framerate`` or ``mocap_frame_rate``: subsampled to
    ``target_fps``), or plain arrays (``poses`` (N, 63 | 69 | 72)).

    Every problem (empty file, not an npz, no ``poses``, object arrays, wrong shape, NaN) is a
    one-line :class:`PoseDataError` naming the file. ``info``, if given, receives what the file
    says about itself (kind, frames, and for our open set its per-sequence sources and licences).
    """
    p = Path(path)
    z = _open_npz(p)
    files = z.files if hasattr(z, "files") else list(z)
    try:
        if "poses" not in files:
            raise PoseDataError(f"{p.name}: no 'poses' array (found {', '.join(files) or 'nothing'}) ({p})")
        poses = _read_key(z, "poses", p)
        if poses.dtype.kind not in "fiu":
            raise PoseDataError(f"{p.name}: 'poses' must be numbers, got dtype {poses.dtype} ({p})")
        if poses.ndim != 2:
            raise PoseDataError(f"{p.name}: 'poses' must be 2-D (frames, numbers), got shape {poses.shape} ({p})")
        kind = "plain"
        if "split" in files:  # our open pose set: training split only
            split = _read_key(z, "split", p)
            if split.shape != (len(poses),):
                raise PoseDataError(f"{p.name}: 'split' has shape {split.shape}, expected ({len(poses)},) ({p})")
            if poses.shape[1] != 63:
                raise PoseDataError(f"{p.name}: 'poses' has {poses.shape[1]} columns; expected 63 ({p})")
            poses = poses[split == "train"]
            kind = "open pose set (train split)"
            if info is not None and "report_json" in files:
                import json

                try:
                    info["sequences"] = json.loads(str(_read_key(z, "report_json", p)))
                except ValueError:
                    pass
        elif poses.shape[1] in (156, 165):  # AMASS: SMPL-H / SMPL-X full pose
            fps = _framerate(z, p)
            kind = f"AMASS ({'SMPL+H' if poses.shape[1] == 156 else 'SMPL-X'}, {fps:g} fps)"
            poses = poses[:: max(1, round(fps / target_fps)), 3:66]
        elif poses.shape[1] == 72:
            poses = poses[:, 3:66]
        elif poses.shape[1] == 69:
            poses = poses[:, :63]
        elif poses.shape[1] != 63:
            raise PoseDataError(f"{p.name}: 'poses' has {poses.shape[1]} columns; expected 63, 69, 72 (SMPL) or "
                                f"156/165 (AMASS) ({p})")
    finally:
        if hasattr(z, "close"):
            z.close()
    poses = _check(poses, f"{p.name} ({p})")
    if info is not None:
        info.update(file=str(p), kind=kind, frames=int(len(poses)))
    return poses


def collect_with_info(paths: Sequence, mirror: bool = True, log=None):
    """Like :func:`collect`, also returning what the files say about their sources:
    ``{"files": [...], "skipped": [...], "sources": {...}, "licences": [...]}``.

    Files found inside a folder without a ``poses`` array (AMASS ``shape.npz``, SMPL-X
    ``*_stagei.npz``) are skipped with a note; a file named explicitly must hold poses.
    """
    files: List[Path] = []
    skipped: List[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*.npz")):
                if has_poses(f):
                    files.append(f)
                else:
                    skipped.append(str(f))
        elif p.exists():
            files.append(p)
        else:
            raise PoseDataError(f"{p}: not found")
    for f in skipped:
        (log or _note)(f"note: skipping {f} (no 'poses' array: not a motion file)")
    if not files:
        raise PoseDataError(f"no pose files in {', '.join(map(str, paths))}"
                            + (f" ({len(skipped)} npz file(s) without 'poses' skipped)" if skipped else ""))
    chunks, infos = [], []
    for f in files:
        info: dict = {}
        chunks.append(read_pose_file(f, info=info))
        infos.append(info)
    poses = np.concatenate(chunks)
    sources, licences = {}, []
    for info in infos:
        for name, seq in (info.pop("sequences", None) or {}).items():
            if isinstance(seq, dict) and not seq.get("heldout"):
                sources[name] = {k: seq[k] for k in ("source", "licence", "frames") if k in seq}
                if seq.get("licence") and seq["licence"] not in licences:
                    licences.append(seq["licence"])
        if info.get("kind", "").startswith("AMASS") and "AMASS licence (user-provided data)" not in licences:
            licences.append("AMASS licence (user-provided data)")
    out = {"files": infos, "skipped": skipped, "sources": sources, "licences": licences}
    return (np.concatenate([poses, mirror_poses(poses)]) if mirror else poses), out


def _note(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


def collect(paths: Sequence, mirror: bool = True) -> np.ndarray:
    """All poses from files and folders (``*.npz`` found recursively), mirrored copies added."""
    return collect_with_info(paths, mirror)[0]


def open_poses(split: str = "train") -> np.ndarray:
    """(N, 63) poses of the shipped open set: 'train' or 'heldout' (no mirroring)."""
    with np.load(OPEN_POSES, allow_pickle=False) as z:
        return z["poses"][z["split"] == split].astype(np.float32)


def load_eval_poses(paths: Sequence, fps: float = 10.0) -> np.ndarray:
    """Poses a user tests on (``--poses FILE...``): AMASS ``.npz`` (``poses``, subsampled to ``fps``), our
    npz (all its poses, every split), plain pose arrays, or BVH files (``.bvh``, ``.bvh.gz``: converted by
    IK). No mirroring. Every problem is a one-line :class:`PoseDataError` naming the file."""
    chunks = []
    for p in map(Path, paths):
        if not p.exists():
            raise PoseDataError(f"{p}: not found")
        if p.name.endswith((".bvh", ".bvh.gz")):
            from .mocap import bvh_body_poses

            try:
                chunks.append(_check(bvh_body_poses(p, fps), f"{p.name} ({p})"))
            except (ValueError, IndexError, OSError) as exc:
                raise PoseDataError(f"{p.name}: cannot convert BVH ({' '.join(str(exc).split())[:200]}) ({p})") from None
            continue
        z = _open_npz(p)
        try:
            files = z.files if hasattr(z, "files") else list(z)
            ours = "split" in files and "poses" in files
            poses = _read_key(z, "poses", p).astype(np.float32) if ours else None
        finally:
            if hasattr(z, "close"):
                z.close()
        chunks.append(_check(poses, f"{p.name} ({p})") if ours else read_pose_file(p, target_fps=fps))
    if not chunks:
        raise PoseDataError("no pose files given")
    return np.concatenate(chunks)
