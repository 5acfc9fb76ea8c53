"""Single-view fits of a real multi-camera capture, scored against its triangulated 3D.

The capture (``shared/data/realcapture``: four calibrated 60 fps videos, an OpenSim TRC of 21
triangulated OpenPose BODY_25B points, an OpenCV calibration) lets every frame of every camera be
fitted *alone*, as a photo, and compared with real 3D. Two modes:

* ``detected``: MediaPipe runs on the frame (as ``smplify fit`` would on a photo); the camera is
  what a user gets without EXIF (the field-of-view default) unless ``true_focal``.
* ``perfect``: the TRC points projected through the calibration are the keypoints (BODY_25B names
  mapped onto our landmark table), with the true intrinsics: what the fit does when 2D is right.

Score (the capture's README): PA-MPJPE over 12 limb joints, SMPL joints :data:`SMPL_JOINTS` against
TRC points :data:`TRC_POINTS`, Procrustes with scale, mm. A detector's "hip" is not SMPL's hip joint,
so even a perfect fit leaves an offset.

    from smplify.evaluation.realcapture import load_capture, capture_inputs, evaluate
    cap = load_capture()                                  # $SMPLIFY_REALCAPTURE or ../shared/data/realcapture
    rows = evaluate(cap, {"gmm": FitConfig(prior="gmm")}, mode="detected")   # -> [RealCaptureRow]

or ``smplify evaluate-capture --priors none,gmm --mode detected`` (see ``--help``).
Detections are cached outside the tree (``$SMPLIFY_CACHE`` or ``~/.cache/smplify``), keyed by the
video's size and modification time and the detector.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

#: SMPL joints scored, in the order of :data:`TRC_POINTS`
SMPL_JOINTS = (2, 5, 8, 1, 4, 7, 17, 19, 21, 16, 18, 20)
TRC_POINTS = ("RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "RShoulder", "RElbow", "RWrist",
              "LShoulder", "LElbow", "LWrist")
#: TRC (BODY_25B) point -> our keypoint name (``smplify.keypoints.layouts``); Head has no counterpart
TRC_TO_KEYPOINT = {
    "RHip": "right_hip", "RKnee": "right_knee", "RAnkle": "right_ankle", "RBigToe": "right_big_toe",
    "RSmallToe": "right_small_toe", "RHeel": "right_heel", "LHip": "left_hip", "LKnee": "left_knee",
    "LAnkle": "left_ankle", "LBigToe": "left_big_toe", "LSmallToe": "left_small_toe", "LHeel": "left_heel",
    "Neck": "neck", "Nose": "nose", "RShoulder": "right_shoulder", "RElbow": "right_elbow",
    "RWrist": "right_wrist", "LShoulder": "left_shoulder", "LElbow": "left_elbow", "LWrist": "left_wrist",
}


def default_root() -> Path:
    """$SMPLIFY_REALCAPTURE, else ``shared/data/realcapture`` beside the checkout."""
    env = os.environ.get("SMPLIFY_REALCAPTURE")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "realcapture"


@dataclass
class CaptureCamera:
    """One calibrated camera. K (3, 3), dist (4,) k1 k2 p1 p2, rvec (3,) and tvec (3,) world -> camera;
    calib_size (width, height) of the calibration; video the mp4 of its frames."""

    name: str
    K: np.ndarray
    dist: np.ndarray
    rvec: np.ndarray
    tvec: np.ndarray
    calib_size: tuple
    video: Path


@dataclass
class Capture:
    """A capture: cameras, truth (T, P, 3) metres in the calibration's world axes, and point names."""

    root: Path
    cameras: List[CaptureCamera]
    truth: np.ndarray
    point_names: tuple

    @property
    def frames(self) -> int:
        return len(self.truth)

    def limb_truth(self) -> np.ndarray:
        """(T, 12, 3) the scored TRC points."""
        return self.truth[:, [self.point_names.index(n) for n in TRC_POINTS]]


def read_trc(path) -> tuple:
    """An OpenSim TRC -> ((T, P, 3) float64 in the file's axes, point names)."""
    lines = Path(path).read_text().splitlines()
    names = tuple(n for n in lines[3].split("\t")[2:] if n.strip())
    rows = [ln.split("\t") for ln in lines[5:] if ln.strip()]
    data = np.array([[float(v) for v in r[2:2 + 3 * len(names)]] for r in rows], np.float64)
    return data.reshape(len(rows), len(names), 3), names


def load_capture(root=None) -> Capture:
    """Read calibration, truth and the list of videos of a capture folder (see the module doc)."""
    root = Path(root) if root is not None else default_root()
    calib_path, trc = root / "calibration.toml", sorted(root.glob("*.trc"))
    if not calib_path.is_file() or not trc:
        raise FileNotFoundError(f"{root}: not a real-capture folder (needs calibration.toml and a .trc)")
    calib = tomllib.loads(calib_path.read_text())
    cams = []
    for key in sorted(k for k in calib if k.startswith("cam_")):
        c = calib[key]
        video = root / "videos" / f"cam{key[4:]}.mp4"
        cams.append(CaptureCamera(key, np.array(c["matrix"], np.float64), np.array(c["distortions"], np.float64),
                                  np.array(c["rotation"], np.float64), np.array(c["translation"], np.float64),
                                  tuple(int(v) for v in c["size"]), video))
    points, names = read_trc(trc[0])
    return Capture(root, cams, points[:, :, [2, 0, 1]], names)  # TRC axes -> the calibration's (README)


def project_points(points: np.ndarray, cam: CaptureCamera) -> np.ndarray:
    """World points (..., 3) -> pixels (..., 2) of ``cam`` in its calibration's image (OpenCV model)."""
    import cv2

    flat = np.ascontiguousarray(points.reshape(-1, 3), np.float64)
    px, _ = cv2.projectPoints(flat, cam.rvec, cam.tvec, cam.K, cam.dist)
    return px.reshape(*points.shape[:-1], 2)


def read_frames(video: Path, frames: Sequence[int]) -> Dict[int, np.ndarray]:
    """RGB frames (H, W, 3) uint8 of a video, by index (decoded by :func:`smplify.keypoints.video.iter_frames`,
    stopping after the last one wanted)."""
    from contextlib import closing

    from ..keypoints.video import iter_frames, open_clip

    want, out, seen = {int(f) for f in frames}, {}, 0
    with closing(iter_frames(open_clip(video))) as decoded:
        for i, rgb in enumerate(decoded):
            seen = i + 1
            if i in want:
                out[i] = rgb
                if len(out) == len(want):
                    break
    missing = sorted(want - set(out))
    if missing:
        raise ValueError(f"{video}: frames {missing[:5]} not in the video ({seen} frames)")
    return out


def _cache_dir() -> Path:
    return Path(os.environ.get("SMPLIFY_CACHE", Path.home() / ".cache" / "smplify")) / "realcapture"


def detect_camera(cam: CaptureCamera, frames: Sequence[int], cache: bool = True) -> Dict[int, object]:
    """MediaPipe on the frames of one camera -> {frame: Keypoints2D} (frames with nobody found are absent).

    Results are cached per video (npz: xy, confidence, visibility, MediaPipe's world landmarks) keyed by the
    video's size and mtime and the detector's name, so a second run does not detect again (a frame cached
    without world landmarks is detected again).
    """
    from ..keypoints import Keypoints2D
    from ..keypoints.detect import DETECTOR, DetectionError, detect_rgb
    from ..keypoints.layouts import MEDIAPIPE33

    st = cam.video.stat()
    key = f"{cam.video.stem}_{st.st_size}_{int(st.st_mtime)}_{DETECTOR.replace(' ', '_')}"
    path = _cache_dir() / f"{key}.npz"
    store = dict(np.load(path, allow_pickle=False)) if cache and path.is_file() else {}
    todo = [f for f in frames if f"world_{f}" not in store and f"none_{f}" not in store]
    if todo:
        for f, rgb in read_frames(cam.video, todo).items():
            try:
                k = detect_rgb(rgb, where=f"{cam.video}:{f}")
            except DetectionError:
                store[f"none_{f}"] = np.zeros(0)
                continue
            store[f"xy_{f}"], store[f"conf_{f}"] = k.xy, k.confidence
            store[f"vis_{f}"], store[f"size_{f}"] = np.asarray(k.meta["visibility"], np.float32), np.array(k.image_size)
            store[f"world_{f}"] = k.world if k.world is not None else np.full((len(k.names), 3), np.nan, np.float32)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **store)
            os.replace(tmp, path)
    out = {}
    for f in frames:
        if f"xy_{f}" in store:
            size = tuple(int(v) for v in store[f"size_{f}"])
            vis = store[f"vis_{f}"].astype(np.float32)
            world = store[f"world_{f}"].astype(np.float32)
            has = bool(np.isfinite(world).all())
            out[f] = Keypoints2D("mediapipe33", MEDIAPIPE33, store[f"xy_{f}"].astype(np.float32),
                                 store[f"conf_{f}"].astype(np.float32), size, f"{cam.video}:{f}", None, DETECTOR,
                                 {"visibility": vis.tolist()}, world=world if has else None,
                                 world_visibility=np.clip(vis, 0, 1) if has else None)
    return out


def perfect_keypoints(cap: Capture, cam: CaptureCamera, frame: int):
    """The frame's truth projected through ``cam`` as BODY_25 keypoints (confidence 1 where the TRC has the
    point, 0 elsewhere), in the calibration's image."""
    from ..keypoints import Keypoints2D
    from ..keypoints.layouts import OPENPOSE_BODY25

    px = project_points(cap.truth[frame], cam)
    xy = np.zeros((len(OPENPOSE_BODY25), 2), np.float32)
    conf = np.zeros(len(OPENPOSE_BODY25), np.float32)
    for p, name in enumerate(cap.point_names):
        kp = TRC_TO_KEYPOINT.get(name)
        if kp in OPENPOSE_BODY25:
            xy[OPENPOSE_BODY25.index(kp)] = px[p]
            conf[OPENPOSE_BODY25.index(kp)] = 1.0
    return Keypoints2D("openpose_body25", OPENPOSE_BODY25, xy, conf, cam.calib_size, f"{cam.video}:{frame}",
                       source="truth projected through the calibration")


@dataclass
class CaptureInput:
    """One single-view fit: camera name, frame, the keypoints and the camera to fit with."""

    camera: str
    frame: int
    keypoints: object  # Keypoints2D
    intrinsics: object  # smplify.camera.Camera


def capture_inputs(cap: Capture, mode: str = "detected", frames: Optional[Sequence[int]] = None,
                   cameras: Optional[Sequence[str]] = None, true_focal: Optional[bool] = None) -> List[CaptureInput]:
    """The inputs of every (camera, frame): ``mode`` 'detected' or 'perfect'. ``true_focal`` (default: True
    for perfect, False for detected) uses the calibration's intrinsics instead of the photo default."""
    from ..camera import Camera, make_camera

    if mode not in ("detected", "perfect"):
        raise ValueError(f"mode must be 'detected' or 'perfect', not {mode!r}")
    frames = list(range(cap.frames)) if frames is None else [int(f) for f in frames]
    true_focal = (mode == "perfect") if true_focal is None else true_focal
    out = []
    for cam in cap.cameras:
        if cameras and not {cam.name, cam.name[4:], cam.name[4:].lstrip("0")} & {str(c) for c in cameras}:
            continue
        kps = detect_camera(cam, frames) if mode == "detected" else {f: perfect_keypoints(cap, cam, f) for f in frames}
        for f in frames:
            if f not in kps:
                continue
            k = kps[f]
            if true_focal:
                # the video may be narrower than the calibration (1080 vs 1088): same centre crop
                dx = (cam.calib_size[0] - k.image_size[0]) / 2.0
                intr = Camera((float(cam.K[0, 0]), float(cam.K[1, 1])), (float(cam.K[0, 2] - dx), float(cam.K[1, 2])),
                              tuple(k.image_size), "user")
            else:
                intr = make_camera(tuple(k.image_size))
            out.append(CaptureInput(cam.name, f, k, intr))
    if not out:
        raise ValueError(f"{cap.root}: no input for cameras {cameras} and frames {frames}")
    return out


@dataclass
class RealCaptureRow:
    """The score of one fit."""

    label: str
    mode: str
    camera: str
    frame: int
    pa_mpjpe_mm: float
    reproj_px: float
    flipped: bool
    failed: bool
    extra: dict = field(default_factory=dict)


def score_joints(joints: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """PA-MPJPE (mm) of (B, 24, 3) SMPL joints (any frame) against (B, 12, 3) TRC limb points -> (B,)."""
    import torch

    from ..metrics import pa_mpjpe

    pred = torch.as_tensor(np.asarray(joints)[:, list(SMPL_JOINTS)], dtype=torch.float64)
    return (pa_mpjpe(pred, torch.as_tensor(truth, dtype=torch.float64)) * 1000).numpy()


def evaluate(cap: Capture, configs: Dict[str, object], mode: str = "detected", frames=None, cameras=None,
             true_focal: Optional[bool] = None, model: Optional[str] = None) -> List[RealCaptureRow]:
    """Fit every (camera, frame) once per labelled :class:`~smplify.config.FitConfig` (one batch each) and
    score it. Every config sees the same inputs, start rule and optimiser it names."""
    import torch

    from ..api import keypoints_to_input, make_fitter

    inputs = capture_inputs(cap, mode, frames, cameras, true_focal)
    truth = cap.limb_truth()
    rows = []
    for label, cfg in configs.items():
        fitter = make_fitter(cfg.prior, model, cfg)
        items = [keypoints_to_input(i.keypoints, fitter.body, camera=i.intrinsics, tag=f"{i.camera}:{i.frame}")
                 for i in inputs]
        results = fitter.fit(items)
        with torch.no_grad():
            P = lambda name: torch.tensor(np.stack([getattr(r, name) for r in results]))
            joints = fitter.body.joints_and_landmarks(P("global_orient"), P("body_pose"), P("betas"), P("transl")).joints
        err = score_joints(joints.numpy(), truth[[i.frame for i in inputs]])
        rows += [RealCaptureRow(label, mode, i.camera, i.frame, float(e), float(r.mean_error_px), bool(r.flipped),
                                bool(r.failed)) for i, r, e in zip(inputs, results, err)]
    return rows


def raw_world_rows(cap: Capture, frames=None, cameras=None, label: str = "world landmarks (unfitted)") -> List[RealCaptureRow]:
    """The detector's own 3D, unfitted: PA-MPJPE of MediaPipe's world landmarks at the 12 scored points
    (its hips, knees, ankles, shoulders, elbows, wrists: the same definitions as the TRC's) against the
    truth, per (camera, frame) with a detection; the rows of :func:`evaluate` (reproj_px NaN)."""
    import torch

    from ..metrics import pa_mpjpe

    inputs = capture_inputs(cap, "detected", frames, cameras)
    truth = cap.limb_truth()
    names = [TRC_TO_KEYPOINT[n] for n in TRC_POINTS]
    rows = []
    for i in inputs:
        k = i.keypoints
        if k.world is None:
            continue
        pred = torch.as_tensor(np.asarray(k.world)[[k.names.index(n) for n in names]][None], dtype=torch.float64)
        e = float(pa_mpjpe(pred, torch.as_tensor(truth[i.frame][None], dtype=torch.float64))[0]) * 1000
        rows.append(RealCaptureRow(label, "detected", i.camera, i.frame, e, float("nan"), False, False))
    return rows


@dataclass
class Summary:
    """PA-MPJPE statistics (mm) of a group of rows."""

    n: int
    mean: float
    median: float
    p90: float
    reproj_px: float

    @classmethod
    def of(cls, rows: Sequence[RealCaptureRow]) -> "Summary":
        e = np.array([r.pa_mpjpe_mm for r in rows])
        px = [r.reproj_px for r in rows if np.isfinite(r.reproj_px)]
        return cls(len(e), float(e.mean()), float(np.median(e)), float(np.percentile(e, 90)),
                   float(np.mean(px)) if px else float("nan"))


def summary_table(rows: Sequence[RealCaptureRow]) -> str:
    """A markdown table: per label, per camera and all cameras, mean / median / p90 PA-MPJPE (mm)."""
    labels = list(dict.fromkeys(r.label for r in rows))
    cams = sorted({r.camera for r in rows})
    head = "| fit | " + " | ".join(f"{c} mean / med / p90" for c in cams) + " | all: mean / med / p90 | reproj px |"
    lines = [head, "|" + "---|" * (len(cams) + 3)]
    for lab in labels:
        mine = [r for r in rows if r.label == lab]
        cells = []
        for c in cams:
            s = Summary.of([r for r in mine if r.camera == c])
            cells.append(f"{s.mean:.1f} / {s.median:.1f} / {s.p90:.1f}")
        s = Summary.of(mine)
        lines.append(f"| {lab} | " + " | ".join(cells) + f" | **{s.mean:.1f}** / {s.median:.1f} / {s.p90:.1f} | "
                     f"{s.reproj_px:.1f} |")
    return "\n".join(lines)


def write_csv(rows: Sequence[RealCaptureRow], path) -> Path:
    """Rows as CSV (label, mode, camera, frame, pa_mpjpe_mm, reproj_px, flipped, failed)."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "mode", "camera", "frame", "pa_mpjpe_mm", "reproj_px", "flipped", "failed"])
        for r in rows:
            w.writerow([r.label, r.mode, r.camera, r.frame, f"{r.pa_mpjpe_mm:.2f}", f"{r.reproj_px:.2f}",
                        int(r.flipped), int(r.failed)])
    return path


def configs_for(priors: Sequence[str], base=None) -> Dict[str, object]:
    """{prior: base config with that prior} (base: the default :class:`FitConfig`)."""
    from ..config import FitConfig

    base = base or FitConfig()
    return {p: replace(base, prior=p) for p in priors}

