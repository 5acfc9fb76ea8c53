"""The real capture as video clips: each camera's frames fitted as one clip, scored against the TRC.

For each camera (a 60 fps clip) and detector mode (MediaPipe's 'video' tracking or 'image' per frame):

* 2D: the detected keypoints against the truth projected through the calibration (median px over the
  scored points) and their jitter (mean 2D acceleration, px/frame²);
* per-frame: every frame fitted alone (:func:`smplify.fitting.sequence.fit_sequence` with
  ``per_frame_only``: the photo fit, each frame its own betas), with the photo-default camera;
* sequence: the same detections fitted as one clip (one betas, temporal smoothness).

Scores, on the 12 limb joints of :mod:`smplify.evaluation.realcapture`: PA-MPJPE (mm, per frame, mean), and
the mean joint acceleration (m/s²) of the fit and of the truth, computed after ONE similarity transform per
clip (Procrustes over all frames and joints at once, fit -> truth): it puts the fit in the truth's frame and
scale (the default camera's focal length is not the true one) without adding per-frame alignment noise.
The camera-frame acceleration (the fit as it is, the truth moved into the camera) is reported beside it.

    smplify evaluate-video [--modes video,image] [--cameras 1,2] [--prior gmm]

The capture's frames were never used to tune anything (the temporal weights come from
:mod:`smplify.evaluation.clips`, ``smplify tune-sequence``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np


@dataclass
class ClipRow:
    """One (camera, mode, fit) of the capture."""

    camera: str
    mode: str
    fit: str  # per-frame | sequence
    pa_mpjpe: float
    accel: float  # after one similarity per clip, m/s²
    accel_camera: float  # the fit in camera coordinates, m/s²
    accel_truth: float
    reproj_px: float
    det_px: float  # 2D: detection vs projected truth, median px
    det_jitter: float  # 2D: mean keypoint acceleration, px/frame²
    missing: int  # frames without a usable detection
    seconds: float


def clip_similarity(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """pred (T, J, 3) mapped by the one similarity (rotation, translation, scale) that best fits all its
    points onto truth (T, J, 3): (T, J, 3)."""
    import torch

    from ..metrics import procrustes_align

    P = torch.as_tensor(pred.reshape(1, -1, 3), dtype=torch.float64)
    Q = torch.as_tensor(truth.reshape(1, -1, 3), dtype=torch.float64)
    return procrustes_align(P, Q).numpy().reshape(pred.shape)


def truth_in_camera(cap, cam) -> np.ndarray:
    """(T, 12, 3) the scored TRC points in ``cam``'s coordinates (metres)."""
    from scipy.spatial.transform import Rotation

    R = Rotation.from_rotvec(cam.rvec).as_matrix()
    return cap.limb_truth() @ R.T + cam.tvec


def detection_2d(cap, cam, keypoints: Sequence) -> tuple:
    """(median px error of the scored points against the projected truth, mean 2D acceleration px/frame²)."""
    from ..keypoints.layouts import MEDIAPIPE33
    from .realcapture import TRC_POINTS, TRC_TO_KEYPOINT, project_points

    names = [TRC_TO_KEYPOINT[n] for n in TRC_POINTS]
    idx = [MEDIAPIPE33.index(n) for n in names]
    truth = project_points(cap.limb_truth(), cam)  # (T, 12, 2)
    dx = (cam.calib_size[0] - keypoints[next(i for i, k in enumerate(keypoints) if k is not None)].image_size[0]) / 2
    errs, xy = [], np.full((len(keypoints), len(idx), 2), np.nan)
    for t, k in enumerate(keypoints):
        if k is None:
            continue
        xy[t] = np.asarray(k.xy)[idx] + [dx, 0]
        errs.append(np.linalg.norm(xy[t] - truth[t], axis=-1))
    acc = np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1)
    return float(np.median(np.concatenate(errs))), float(np.nanmean(acc))


def evaluate_clips(cap, modes: Sequence[str] = ("video", "image"), cameras: Optional[Sequence[str]] = None,
                   prior: str = "chain", config=None) -> List[ClipRow]:
    """Every camera as a clip, per detector mode: per-frame and sequence fits scored (see the module doc)."""
    import time
    from dataclasses import replace

    import torch

    from ..api import keypoints_to_input, make_fitter
    from ..camera import make_camera
    from ..config import FitConfig
    from ..fitting.sequence import fit_sequence, mean_acceleration
    from ..keypoints.video import detect_clip, open_clip
    from .realcapture import SMPL_JOINTS, score_joints

    cfg = replace(config or FitConfig(), prior=prior)
    fitter = make_fitter(prior, None, cfg)
    rows = []
    truth = cap.limb_truth()
    for cam in cap.cameras:
        if cameras and not {cam.name, cam.name[4:], cam.name[4:].lstrip("0")} & {str(c) for c in cameras}:
            continue
        truth_cam = truth_in_camera(cap, cam)
        for mode in modes:
            kps = detect_clip(open_clip(cam.video), mode)
            k = kps.keypoints[: cap.frames]
            det_px, det_jit = detection_2d(cap, cam, k)
            first = next(x for x in k if x is not None)
            camera = make_camera(tuple(first.image_size))
            frames = [None if x is None else keypoints_to_input(x, fitter.body, camera=camera) for x in k]
            for label, only in (("per-frame", True), ("sequence", False)):
                t0 = time.perf_counter()
                res = fit_sequence(fitter, frames, kps.clip.fps, per_frame_only=only)
                secs = time.perf_counter() - t0
                betas = np.asarray(res.betas)
                betas = np.broadcast_to(betas, (res.frames, betas.shape[-1])) if betas.ndim == 1 else betas
                with torch.no_grad():
                    J = fitter.body.joints_and_landmarks(
                        torch.as_tensor(res.global_orient), torch.as_tensor(res.body_pose),
                        torch.as_tensor(np.ascontiguousarray(betas)), torch.as_tensor(res.transl)).joints.numpy()
                pa = score_joints(J, truth)
                Js = J[:, list(SMPL_JOINTS)].astype(np.float64)
                rows.append(ClipRow(cam.name, mode, label, float(pa.mean()),
                                    mean_acceleration(clip_similarity(Js, truth), res.fps),
                                    mean_acceleration(Js, res.fps), mean_acceleration(truth_cam, res.fps),
                                    float(np.nanmean(res.reprojection_px)), det_px, det_jit,
                                    int(res.interpolated.sum()), secs))
    return rows


def table(rows: Sequence[ClipRow]) -> str:
    """Markdown: one line per (camera, mode, fit)."""
    out = ["| camera | detector mode | fit | PA-MPJPE mm | accel m/s² (clip-aligned) | accel / truth | "
           "accel camera frame | truth accel | reproj px | 2D error px (median) | 2D jitter px/frame² | missing | "
           "fit s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.camera} | {r.mode} | {r.fit} | {r.pa_mpjpe:.1f} | {r.accel:.2f} | "
                   f"{r.accel / r.accel_truth:.1f}× | {r.accel_camera:.2f} | {r.accel_truth:.2f} | "
                   f"{r.reproj_px:.1f} | "
                   f"{r.det_px:.1f} | {r.det_jitter:.2f} | {r.missing} | {r.seconds:.1f} |")
    return "\n".join(out)
