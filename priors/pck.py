"""2D-only poses of PyPI ``pose-classification-kit`` (MIT), lifted to 3D body poses by our own fitter.

    pip download --no-deps pose-classification-kit==1.1.5 -d DIR     # a 24 MB wheel; never installed
    python -m smplify.cli.lift_pck --wheel DIR/pose_classification_kit-1.1.5-py3-none-any.whl --out lifted.npz

The wheel holds ``pose_classification_kit/datasets/Body/<Class>_body.json``: 20 classes (squat, plank,
low push-up, seated, standing with arms raised, T, military salute, six traffic signals, four yoga
poses; 10,681 people), each an OpenPose BODY_25 detection stored as ``{"x": [25], "y": [25], "a": [25],
"detection_accuracy": float}``. The kit's recorder (``src/video_analysis/openpose_thread.py``) centred
every person on the box of its detected keypoints, turned y *up*, and divided by a body-size factor (the
mean of torso, neck, thigh, shin and shoulder lengths each scaled to ~16 "heads"), dropping people with
any coordinate outside [-1, 1]: 1 unit ≈ the body's height, the camera, image and principal point are
gone. Missing keypoints have x = y = a = 0.

Reading goes straight from the wheel (a zip): :func:`read_wheel`. Lifting (:func:`lift`) puts each
person on an assumed photo (:data:`IMAGE_PX` square, :data:`PX_PER_UNIT` pixels per unit, the project's
default 55° field of view; the true camera is unknown, and a person centred on the box is what a
crop looks like) and fits it with the fitter, from a given mean pose, with a given prior, in batches.
Lifts that fit badly are dropped by :func:`keep_mask` (rule there).

Nothing here is a runtime dependency: the wheel is only read when one asks for it.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from smplify.keypoints.layouts import OPENPOSE_BODY25

WHEEL_VERSION = "1.1.5"
WHEEL_NAME = f"pose_classification_kit-{WHEEL_VERSION}-py3-none-any.whl"
#: SHA-256 of the PyPI wheel these numbers were measured on
WHEEL_SHA256 = "c3ea7053f67422f779572449d4f4a9d2270233904fd56fddc5c465d102be41c8"
BODY_DIR = "pose_classification_kit/datasets/Body/"
SOURCE = "pose-classification-kit 1.1.5 (PyPI, MIT, (c) 2020 Arthur Findelair)"

#: the assumed photo: square, this many pixels a side, person centred, PX_PER_UNIT pixels per normalised unit
IMAGE_PX = 1000
PX_PER_UNIT = 500.0
#: the 12 limb keypoints every kept person must have (confidence >= the fitter's min_confidence), so that
#: no limb of a lifted pose is the prior's guess alone
LIMB_POINTS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
               "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
#: a lift is dropped when its mean reprojection error exceeds this (px on the assumed photo: 2 % of the
#: 500 px body), or when the fitter reports it failed
MAX_REPROJ_PX = 10.0


class PCKError(ValueError):
    """A wheel or JSON that is not the pose-classification-kit layout we read."""


@dataclass
class PCKPoses:
    xy: np.ndarray  # (N, 25, 2) float32, normalised: x right, y UP, centred on the person's keypoint box
    confidence: np.ndarray  # (N, 25) float32, OpenPose's; 0 = missing
    label: np.ndarray  # (N,) int16 index into class_names
    class_names: List[str]
    sha256: str = ""
    version: str = ""
    licence: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, idx) -> "PCKPoses":
        idx = np.asarray(idx)
        return PCKPoses(self.xy[idx], self.confidence[idx], self.label[idx], self.class_names, self.sha256,
                        self.version, self.licence, dict(self.meta))


def _norm(name: str) -> str:
    """'right_big_toe', 'right_bigtoe' and OpenPose's own 'RBigToe' alike -> 'rightbigtoe'."""
    name = re.sub(r"^([RL])(?=[A-Z])", lambda m: {"R": "right", "L": "left"}[m.group(1)], str(name))
    return name.lower().replace("_", "")


def _mapping(m) -> list:
    """Keypoint names of a file: a list, or OpenPose's {"0": "Nose", ..., "25": "Background"} (half the classes)."""
    if isinstance(m, dict):
        m = [m[k] for k in sorted(m, key=int)]
        m = [s for s in m if s != "Background"]
    return [_norm(s) for s in m]


def parse_class(text: str, where: str):
    """(xy (n, 25, 2), a (n, 25), label name) from one ``<Class>_body.json``."""
    try:
        d = json.loads(text)
        info, data = d["info"], d["data"]
        label = str(info["label"])
        mapping = _mapping(info["BODY25_Mapping"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PCKError(f"{where}: not a pose-classification-kit body file ({type(exc).__name__}: {exc})") from None
    if mapping != [_norm(s) for s in OPENPOSE_BODY25]:
        raise PCKError(f"{where}: keypoints are not OpenPose BODY_25 in its order ({info['BODY25_Mapping']})")
    if not data:
        raise PCKError(f"{where}: no poses")
    try:
        x = np.array([p["x"] for p in data], np.float32)
        y = np.array([p["y"] for p in data], np.float32)
        a = np.array([p["a"] for p in data], np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise PCKError(f"{where}: a pose lacks x/y/a of 25 numbers ({type(exc).__name__}: {exc})") from None
    if x.shape != (len(data), 25) or y.shape != x.shape or a.shape != x.shape:
        raise PCKError(f"{where}: expected 25 keypoints per pose, got x {x.shape}, y {y.shape}, a {a.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(a).all()):
        raise PCKError(f"{where}: NaN or infinite coordinates")
    a = np.where((x == 0) & (y == 0), 0.0, np.clip(a, 0.0, 1.0)).astype(np.float32)
    return np.stack([x, y], -1), a, label


def read_wheel(path, expected_sha256: Optional[str] = None) -> PCKPoses:
    """Every body pose of the wheel (or of any zip with ``.../datasets/Body/*_body.json``), in class-name order.
    ``expected_sha256``: refuse a different file (one-line :class:`PCKError`)."""
    p = Path(path)
    if not p.is_file():
        raise PCKError(f"{p}: not found (pip download --no-deps pose-classification-kit=={WHEEL_VERSION} -d DIR)")
    raw = p.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if expected_sha256 and sha != expected_sha256:
        raise PCKError(f"{p.name}: SHA-256 {sha} is not the expected {expected_sha256}")
    try:
        z = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise PCKError(f"{p.name}: not a wheel/zip ({exc})") from None
    with z:
        names = sorted(n for n in z.namelist() if re.search(r"datasets/Body/[^/]+_body\.json$", n))
        if not names:
            raise PCKError(f"{p.name}: no datasets/Body/*_body.json inside")
        version, licence = "", ""
        for n in z.namelist():
            if n.endswith(".dist-info/METADATA"):
                m = re.search(r"^Version: (.+)$", z.read(n).decode("utf-8", "replace"), re.M)
                version = m.group(1).strip() if m else ""
            if n.endswith(".dist-info/LICENSE") or (n == "LICENSE" and not licence):
                licence = z.read(n).decode("utf-8", "replace")
        xy, conf, label, classes = [], [], [], []
        for n in names:
            x, a, name = parse_class(z.read(n).decode("utf-8"), f"{p.name}:{n}")
            classes.append(name)
            xy.append(x)
            conf.append(a)
            label.append(np.full(len(x), len(classes) - 1, np.int16))
    return PCKPoses(np.concatenate(xy), np.concatenate(conf), np.concatenate(label), classes, sha, version, licence,
                    {"file": p.name, "members": names})


def usable(pck: PCKPoses, min_confidence: float = 0.3) -> np.ndarray:
    """(N,) bool: people with all :data:`LIMB_POINTS` at or above ``min_confidence`` (the fitter's own cut)."""
    cols = [OPENPOSE_BODY25.index(n) for n in LIMB_POINTS]
    return (pck.confidence[:, cols] >= min_confidence).all(1)


def per_class(pck: PCKPoses, k: Optional[int], seed: int = 0, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices of at most ``k`` people per class (among ``mask``), drawn with ``seed``; all if ``k`` is None."""
    rng = np.random.default_rng(seed)
    ok = np.ones(len(pck), bool) if mask is None else np.asarray(mask, bool)
    out = []
    for c in range(len(pck.class_names)):
        idx = np.flatnonzero(ok & (pck.label == c))
        out.append(np.sort(rng.permutation(idx)[:k]) if k is not None else idx)
    return np.concatenate(out)


def to_keypoints(pck: PCKPoses, i: int, image_px: int = IMAGE_PX, px_per_unit: float = PX_PER_UNIT):
    """Person ``i`` as :class:`~smplify.keypoints.Keypoints2D` on the assumed photo (y turned back down)."""
    from smplify.keypoints import Keypoints2D

    c = pck.confidence[i]
    xy = np.stack([image_px / 2 + pck.xy[i, :, 0] * px_per_unit, image_px / 2 - pck.xy[i, :, 1] * px_per_unit], -1)
    xy = np.where(c[:, None] > 0, xy, image_px / 2).astype(np.float32)
    return Keypoints2D("openpose_body25", OPENPOSE_BODY25, xy, c.astype(np.float32), (image_px, image_px),
                       source="pose-classification-kit", meta={"class": pck.class_names[pck.label[i]], "index": int(i)})


@dataclass
class Lifted:
    poses: np.ndarray  # (N, 63) body poses (axis-angle, joints 1..21)
    reproj_px: np.ndarray  # (N,) mean reprojection error on the assumed photo
    failed: np.ndarray  # (N,) bool
    converged: np.ndarray  # (N,) bool

    def keep(self, max_reproj_px: float = MAX_REPROJ_PX) -> np.ndarray:
        return keep_mask(self.reproj_px, self.failed, max_reproj_px)


def keep_mask(reproj_px, failed, max_reproj_px: float = MAX_REPROJ_PX) -> np.ndarray:
    """The rule for a lift to be used: not failed, finite, mean reprojection error <= ``max_reproj_px``.
    (Convergence is not required: the fixed stage schedule stops most fits at their iteration cap.)"""
    r = np.asarray(reproj_px, np.float64)
    return ~np.asarray(failed, bool) & np.isfinite(r) & (r <= max_reproj_px)


def lift(pck: PCKPoses, prior, start_pose, body=None, batch: int = 128, image_px: int = IMAGE_PX,
         px_per_unit: float = PX_PER_UNIT, log=None) -> Lifted:
    """Fit every person of ``pck`` with ``prior`` from the mean pose ``start_pose`` (63,) (crossval's
    configuration: SMPLify's schedule, L-BFGS, flip test; no world landmarks) on the assumed camera."""
    from smplify.api import keypoints_to_input
    from smplify.body import BodyModel, load_model_file
    from smplify.camera import make_camera

    from .crossval import fold_fitter

    body = body or BodyModel(load_model_file())
    fitter = fold_fitter(body, prior, start_pose)
    camera = make_camera((image_px, image_px))
    poses, reproj, failed, conv = [], [], [], []
    for s in range(0, len(pck), batch):
        items = [keypoints_to_input(to_keypoints(pck, i, image_px, px_per_unit), body, camera=camera, tag=str(i))
                 for i in range(s, min(len(pck), s + batch))]
        for r in fitter.fit(items):
            poses.append(np.asarray(r.body_pose[:63], np.float32))
            reproj.append(r.mean_error_px)
            failed.append(bool(r.failed))
            conv.append(bool(r.converged))
        if log:
            log(f"  lifted {min(len(pck), s + batch)}/{len(pck)}")
    return Lifted(np.stack(poses), np.asarray(reproj, np.float32), np.asarray(failed), np.asarray(conv))


def save_lifted(path, pck: PCKPoses, index: np.ndarray, lifted: Lifted, **extra) -> None:
    """Lifted poses + class + the rule's inputs, as an npz our pose readers take (``poses``: the kept ones)."""
    from smplify.fileio import atomic_savez

    keep = lifted.keep()
    atomic_savez(Path(path), compressed=True, poses=lifted.poses[keep].astype(np.float32),
                 label=pck.label[index][keep], class_names=np.array(pck.class_names),
                 source_index=np.asarray(index)[keep].astype(np.int32), all_reproj_px=lifted.reproj_px,
                 all_failed=lifted.failed, all_index=np.asarray(index, np.int32),
                 wheel_sha256=np.array(pck.sha256), source=np.array(SOURCE), licence=np.array(pck.licence),
                 **{k: np.array(v) for k, v in extra.items()})


def load_lifted(path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z["poses"].astype(np.float32)
