"""Synthetic video clips with known 3D truth, for tuning and testing the sequence fit.

A clip plays one mocap sequence of the open pose set (``priors/assets/open_poses.npz``, 15 fps; by default
the *training* sequences, never the held-out one or the real capture) at ``fps`` (each joint's rotation
spherically interpolated), with a random adult shape, a root that turns slowly about the vertical and
drifts sideways and in depth, a 1080×1920 camera with a 55° field of view, and MediaPipe-33 keypoints with
pixel noise, outliers, per-keypoint dropout and whole frames where nobody is detected.

    smplify tune-sequence --clips 6 --frames 60 --joint-accel 0.03,0.1,0.3,1 --smoothing 0.1   # the tuning table
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..camera import Camera, focal_from_fov, project
from ..fitting import FitInput
from ..paths import OPEN_POSES
from ..rotations import rotmat_to_rotvec, rotvec_to_rotmat


@dataclass
class SyntheticClip:
    """T frames: truth in camera coordinates (joints (T, 24, 3), smplx parameters) and the fit's inputs
    (None where the frame has nobody detected)."""

    name: str
    fps: float
    frames: List[Optional[FitInput]]
    joints: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    dropped: np.ndarray  # (T,) bool
    swapped: np.ndarray  # (T,) bool: left and right swapped in the keypoints


def sequence_poses(split: str = "train", path=OPEN_POSES) -> List[np.ndarray]:
    """The open pose set's sequences of one split, each (N, 63) axis-angle at 15 fps, in recorded order."""
    with np.load(path, allow_pickle=False) as z:
        poses, seq, sp = z["poses"], z["sequence"], z["split"]
    return [poses[(seq == s) & (sp == split)].astype(np.float32) for s in np.unique(seq[sp == split])]


def resample_rotvecs(rotvecs: np.ndarray, factor: float) -> np.ndarray:
    """(N, J·3) axis-angle frames -> (round((N−1)·factor)+1, J·3), each joint slerped."""
    N = len(rotvecs)
    r = torch.as_tensor(rotvecs, dtype=torch.float32).reshape(N, -1, 3)
    t = torch.linspace(0, N - 1, int(round((N - 1) * factor)) + 1)
    lo = t.floor().long().clamp(max=N - 2)
    a = (t - lo)[:, None]
    from ..fitting.sequence import slerp_rotvecs

    return slerp_rotvecs(r[lo], r[lo + 1], a.expand(-1, r.shape[1])).reshape(len(t), -1).numpy()


def make_clip(body, layout_input, poses: np.ndarray, frames: int = 60, fps: float = 60.0, seed: int = 0,
              noise_px: float = 4.0, outliers: float = 0.03, keypoint_dropout: float = 0.1,
              frame_dropout: float = 0.05, swap_stretch: int = 0, image_size=(1080, 1920),
              name: str = "clip") -> SyntheticClip:
    """One clip from a 15 fps pose sequence (see the module docstring). ``layout_input``: (index, names,
    table_weight) of the MediaPipe-33 targets (:func:`smplify.keypoints.mapping.layout_targets`).
    ``swap_stretch``: that many consecutive frames (at a random place) have left and right swapped, as
    MediaPipe's video mode does on side views."""
    from ..fitting.sequence import swap_sides

    rng = np.random.default_rng(seed)
    up = resample_rotvecs(poses, fps / 15.0)
    if len(up) < frames:
        raise ValueError(f"{name}: the sequence has {len(up)} frames at {fps:g} fps, {frames} wanted")
    s = int(rng.integers(0, len(up) - frames + 1))
    pose = torch.as_tensor(up[s: s + frames], dtype=torch.float32)
    T = frames
    t = torch.arange(T, dtype=torch.float32) / fps
    yaw = math.radians(rng.uniform(-60, 60)) + math.radians(rng.uniform(-30, 30)) * t
    pitch = torch.full_like(t, math.radians(rng.uniform(-10, 10)))
    zero = torch.zeros_like(t)
    R = (rotvec_to_rotmat(torch.stack([pitch, zero, zero], -1)) @ rotvec_to_rotmat(torch.stack([zero, yaw, zero], -1))
         @ rotvec_to_rotmat(torch.tensor([[math.pi, 0.0, 0.0]])).expand(T, 3, 3))
    go = rotmat_to_rotvec(R)
    betas = torch.as_tensor(rng.normal(0, 1, body.num_betas), dtype=torch.float32)
    d0 = rng.uniform(3.0, 5.0)
    vel = torch.tensor([rng.uniform(-0.4, 0.4), 0.0, rng.uniform(-0.3, 0.3)], dtype=torch.float32)
    W, H = image_size
    f = focal_from_fov(image_size)
    with torch.no_grad():
        out = body.joints_and_landmarks(go, pose, betas.expand(T, -1), torch.zeros(T, 3))
        root = torch.tensor([0.0, 0.1, d0]) + t[:, None] * vel
        transl = root - out.joints[:, 0]
        pts = out.points + transl[:, None]
        uv = project(pts, torch.tensor([[f, f]]).expand(T, 2), torch.tensor([[W / 2.0, H / 2.0]]).expand(T, 2)).numpy()
        joints = (out.joints + transl[:, None]).numpy()
    index, names, table_w = layout_input
    index = np.asarray(index)
    cam = Camera((f, f), (W / 2.0, H / 2.0), tuple(image_size), "synthetic")
    dropped = rng.random(T) < frame_dropout
    if T >= 10:  # and one burst of 3 frames
        b = int(rng.integers(2, T - 5))
        dropped[b: b + 3] = True
    swapped = np.zeros(T, bool)
    if swap_stretch:
        b = int(rng.integers(0, T - swap_stretch + 1))
        swapped[b: b + swap_stretch] = True
    fits: List[Optional[FitInput]] = []
    for i in range(T):
        if dropped[i]:
            fits.append(None)
            continue
        xy = uv[i, index] + rng.normal(0, noise_px, (len(index), 2))
        bad = rng.random(len(index)) < outliers
        xy[bad] += rng.normal(0, 40.0, (int(bad.sum()), 2))
        conf = np.where(rng.random(len(index)) < keypoint_dropout, 0.0, rng.uniform(0.6, 1.0, len(index)))
        fi = FitInput(index=index, xy=xy.astype(np.float32), confidence=conf.astype(np.float32),
                      weight=np.asarray(table_w, np.float32), camera=cam, names=tuple(names), tag=f"{name}:{i}")
        fits.append(swap_sides(fi) if swapped[i] else fi)
    return SyntheticClip(name, fps, fits, joints, go.numpy(), pose.numpy(), betas.numpy(), transl.numpy(), dropped,
                         swapped)


def make_clips(body, n: int = 6, frames: int = 60, fps: float = 60.0, seed: int = 0, split: str = "train",
               **kw) -> List[SyntheticClip]:
    """``n`` clips, cycling over the split's sequences (a different stretch and scene each)."""
    from ..keypoints.layouts import MEDIAPIPE33
    from ..keypoints.mapping import layout_targets

    seqs = sequence_poses(split)
    li = layout_targets(MEDIAPIPE33, body.landmark_names)
    return [make_clip(body, li, seqs[i % len(seqs)], frames, fps, seed * 1000 + i, name=f"{split}{i}", **kw)
            for i in range(n)]


@dataclass
class ClipScore:
    """One fit of one clip: PA-MPJPE and MPJPE (root-aligned) over 24 joints (mm), on all frames and on the
    dropped ones only; mean joint acceleration of the fit and of the truth (m/s², camera coordinates)."""

    pa_mpjpe: float
    mpjpe: float
    pa_mpjpe_dropped: float
    accel: float
    accel_truth: float
    betas_spread: float  # mean per-coefficient std of betas over frames (0 for one shape)


def score_clip(body, clip: SyntheticClip, result) -> ClipScore:
    """Score a :class:`~smplify.fitting.sequence.SequenceResult` against the clip's truth."""
    from ..fitting.sequence import mean_acceleration
    from ..metrics import mpjpe, pa_mpjpe

    T = len(clip.frames)
    betas = np.broadcast_to(result.betas, (T, len(result.betas[-1]) if result.betas.ndim == 2 else len(result.betas)))
    with torch.no_grad():
        j = body.joints_and_landmarks(torch.as_tensor(result.global_orient), torch.as_tensor(result.body_pose),
                                      torch.as_tensor(np.ascontiguousarray(betas)),
                                      torch.as_tensor(result.transl)).joints
    truth = torch.as_tensor(clip.joints)
    pa = pa_mpjpe(j.double(), truth.double()).numpy() * 1000
    mp = mpjpe(j.double(), truth.double()).numpy() * 1000
    spread = float(np.asarray(result.betas).std(0).mean()) if np.asarray(result.betas).ndim == 2 else 0.0
    dropped = float(pa[clip.dropped].mean()) if clip.dropped.any() else float("nan")
    return ClipScore(float(pa.mean()), float(mp.mean()), dropped,
                     mean_acceleration(j.numpy(), clip.fps), mean_acceleration(clip.joints, clip.fps), spread)


def tune(prior: str = "gmm", clips: int = 6, frames: int = 60, fps: float = 60.0, seed: int = 0, swap: int = 0,
         joint_accel: Sequence[float] = (0.1,), pose_accel: Sequence[float] = (0.0,),
         init_smoothing: Optional[Sequence[float]] = None, iterations: Optional[Sequence[int]] = None,
         echo=print) -> str:
    """The tuning table (markdown): per-frame fits, then the sequence fit at every combination of the given
    :class:`~smplify.config.SequenceConfig` values (None: the default's), on :func:`make_clips`' clips.
    ``echo``: called with each line as it is ready."""
    import itertools
    import time

    from ..api import make_fitter
    from ..fitting.sequence import fit_sequence

    fitter = make_fitter(prior)
    made = make_clips(fitter.body, clips, frames, fps, seed, swap_stretch=swap)
    lines = [f"{len(made)} clips x {frames} frames at {fps:g} fps, prior {prior}, seed {seed}",
             "| fit | PA-MPJPE mm | MPJPE mm | PA-MPJPE dropped frames | accel m/s² (truth) | s/clip |",
             "|---|---|---|---|---|---|"]
    for ln in lines:
        echo(ln)

    def report(label, scores, secs):
        m = lambda k: float(np.nanmean([getattr(s, k) for s in scores]))
        lines.append(f"| {label} | {m('pa_mpjpe'):.1f} | {m('mpjpe'):.1f} | {m('pa_mpjpe_dropped'):.1f} | "
                     f"{m('accel'):.2f} ({m('accel_truth'):.2f}) | {secs:.2f} |")
        echo(lines[-1])

    t0 = time.perf_counter()
    report("per-frame", [score_clip(fitter.body, c, fit_sequence(fitter, c.frames, c.fps, per_frame_only=True))
                         for c in made], (time.perf_counter() - t0) / len(made))
    base = fitter.config
    sq = base.sequence
    for it, sm, pa, ja in itertools.product(iterations or [sq.iterations], init_smoothing or [sq.init_smoothing],
                                            pose_accel, joint_accel):
        fitter.config = replace(base, sequence=replace(sq, joint_accel=ja, pose_accel=pa, init_smoothing=sm,
                                                       iterations=it))
        fitter.objective.config = fitter.config
        t0 = time.perf_counter()
        scores = [score_clip(fitter.body, c, fit_sequence(fitter, c.frames, c.fps)) for c in made]
        report(f"joint_accel {ja:g}, pose_accel {pa:g}, init σ {sm:g} s, {it} it", scores,
               (time.perf_counter() - t0) / len(made))
    fitter.config = fitter.objective.config = base
    return "\n".join(lines)
