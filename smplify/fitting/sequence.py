"""Fitting a video: every frame fitted alone (one batch), then all frames refined jointly with one body shape
and a temporal smoothness term.

1. :class:`~smplify.fitting.Fitter` fits the detected frames as one batch (frames are rows): the per-frame
   start (regressor), flip test and stages of a photo, at a photo's cost per frame or less.
2. :func:`facing_flips`: frames whose root turned more than 90° from one frame to the next face the other way
   from the clip; MediaPipe's video mode swaps left and right for whole stretches of a side view, so these
   frames are fitted again with the sides swapped back (:func:`swap_sides`) and kept so where they then face
   the clip's way. Frames still flipped, like frames with nobody detected (or too few keypoints), start the
   refinement from their neighbours, interpolated (:func:`interpolate_values`).
3. :func:`refine_sequence`: all T frames' translation, root orientation and pose as (T, ...) parameters with
   ONE shared betas, the last stage's data and prior terms (pure functions of :mod:`smplify.objective`) plus
   :func:`acceleration_term` on the 24 joints in camera coordinates (translation, orientation and pose in
   one: the camera is fixed, the body moves) and optionally on the pose angles, minimised with the project's
   L-BFGS on autograd. Missing frames weigh 0 in the data term, so the smoothness term interpolates them;
   they are flagged, never dropped.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..camera import Camera, project
from ..config import SequenceConfig, Stage
from ..objective import bend_term, direction_term, reprojection_term, shape_term
from ..optim import lbfgs
from ..rotations import rotmat_to_rotvec, rotvec_to_rotmat
from .batch import Batch, make_batch
from .objective import Objective
from .result import FitInput, FitResult


# ---- pure tensor functions ------------------------------------------------------------------------------
def second_difference(x: torch.Tensor, fps: float) -> torch.Tensor:
    """Acceleration by central second differences: (T, ...) -> (T-2, ...), (x[t+1] − 2x[t] + x[t−1])·fps²
    (units of x per s²). Fewer than 3 frames: an empty (0, ...) tensor."""
    if x.shape[0] < 3:
        return x[:0]
    return (x[2:] - 2 * x[1:-1] + x[:-2]) * (fps * fps)


def acceleration_term(x: torch.Tensor, fps: float) -> torch.Tensor:
    """Constant-velocity penalty Σ_t ‖ẍ_t‖² over the T−2 inner frames: (T, ...) -> () scalar."""
    return second_difference(x, fps).pow(2).sum()


def mean_acceleration(points: np.ndarray, fps: float) -> float:
    """Mean acceleration magnitude (units per s²) of points (T, J, 3): the mean over inner frames and
    points of ‖ẍ‖ (the evaluation's jitter measure)."""
    a = second_difference(torch.as_tensor(np.asarray(points, np.float64)), fps)
    return float(a.norm(dim=-1).mean()) if a.numel() else float("nan")


def _neighbours(known: torch.Tensor):
    """For every frame of known (T,) bool: the nearest known frame at or before it and at or after it (T,)
    each (the same one before the first and after the last known frame), and the fraction (T,) of the way
    from the first to the second."""
    idx = known.nonzero().squeeze(1)
    if len(idx) == 0:
        raise ValueError("no known frame to interpolate from")
    t = torch.arange(len(known), device=known.device)
    pos = torch.searchsorted(idx, t)
    lo, hi = idx[(pos - 1).clamp(min=0, max=len(idx) - 1)], idx[pos.clamp(max=len(idx) - 1)]
    lo = torch.where(lo > t, hi, lo)
    hi = torch.where(hi < t, lo, hi)
    return lo, hi, ((t - lo).float() / (hi - lo).clamp(min=1).float()).clamp(0, 1)


def interpolate_values(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Linear interpolation over frames: values (T, D), known (T,) bool (at least one) -> (T, D), the known
    rows kept, the others interpolated between their nearest known neighbours (held before the first and
    after the last)."""
    lo, hi, a = _neighbours(known)
    a = a.to(values.dtype)[:, None]
    return torch.where(known[:, None], values, (1 - a) * values[lo] + a * values[hi])


def slerp_rotvecs(r0: torch.Tensor, r1: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rotations, element-wise: r0, r1 (..., 3) axis-angle, a (...) in [0, 1]
    -> (..., 3): R0·exp(a·log(R0ᵀR1)), the short way round (the relative angle is at most π)."""
    R0 = rotvec_to_rotmat(r0)
    rel = rotmat_to_rotvec(R0.transpose(-1, -2) @ rotvec_to_rotmat(r1))
    return rotmat_to_rotvec(R0 @ rotvec_to_rotmat(a[..., None] * rel))


def nearest_rotation(M: torch.Tensor) -> torch.Tensor:
    """The rotation matrix nearest (Frobenius) each 3×3 matrix M (..., 3, 3): U·diag(1, 1, det)·Vᵀ."""
    U, _, Vh = torch.linalg.svd(M)
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return U @ D @ Vh


def interpolate_rotvecs(rotvecs: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """:func:`interpolate_values` for rotations (T, 3) axis-angle: spherical interpolation."""
    lo, hi, a = _neighbours(known)
    return torch.where(known[:, None], rotvecs, slerp_rotvecs(rotvecs[lo], rotvecs[hi], a.to(rotvecs.dtype)))


def temporal_filter(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian filter over frames: values (T, D), sigma in frames (≤ 0: unchanged) -> (T, D); the ends are
    padded by repeating the first and last frame."""
    if sigma <= 0 or values.shape[0] < 2:
        return values
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=values.dtype, device=values.device) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    v = values.T[:, None]  # (D, 1, T)
    v = torch.nn.functional.pad(v, (r, r), mode="replicate")
    return torch.nn.functional.conv1d(v, k)[:, 0].T


def filter_rotvecs(rotvecs: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`temporal_filter` for rotations (T, 3) axis-angle: the rotation matrices filtered, then the
    nearest rotation (:func:`nearest_rotation`)."""
    if sigma <= 0 or rotvecs.shape[0] < 2:
        return rotvecs
    R = rotvec_to_rotmat(rotvecs).reshape(-1, 9)
    return rotmat_to_rotvec(nearest_rotation(temporal_filter(R, sigma).reshape(-1, 3, 3)))


def facing_flips(global_orient: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(T,) bool: the known frames that face the other way from the clip's main facing.

    A root rotation that changes by more than 90° between consecutive known frames is no motion (at video
    rates that is thousands of degrees a second) but a flip: the detector swapped left and right, or a
    frame's flip test chose the other facing. Such jumps cut the clip into segments that alternate between
    two facings; the facing most frames have is the clip's, the frames of the other are flagged. A real turn
    is gradual and cuts nothing. global_orient (T, 3)
    axis-angle; known (T,) bool."""
    idx = known.nonzero().squeeze(1)
    out = torch.zeros_like(known)
    if len(idx) < 2:
        return out
    R = rotvec_to_rotmat(global_orient[idx])
    tr = (R[1:] * R[:-1]).sum((-1, -2))  # trace(RᵢᵀRᵢ₊₁) < 1 <=> more than 90° apart
    parity = torch.cat([torch.zeros(1, dtype=torch.long, device=R.device), torch.cumsum((tr < 1).long(), 0)])
    odd = parity % 2 == 1
    out[idx] = odd if int(odd.sum()) * 2 <= len(idx) else ~odd
    return out


def swap_sides(inp: FitInput) -> FitInput:
    """The same detection with left and right swapped: each 'left_*' keypoint takes its 'right_*' partner's
    pixels, confidence and world landmark and vice versa (keypoints without a partner unchanged)."""
    names = list(inp.names)
    at = {n: i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, n in enumerate(names):
        other = "right" + n[4:] if n.startswith("left") else "left" + n[5:] if n.startswith("right") else n
        if other != n and other in at:
            perm[i] = at[other]
    return dataclasses.replace(
        inp, xy=np.asarray(inp.xy)[perm], confidence=np.asarray(inp.confidence)[perm],
        world=None if inp.world is None else np.asarray(inp.world)[perm],
        world_visibility=None if inp.world_visibility is None else np.asarray(inp.world_visibility)[perm])


# ---- the joint refinement --------------------------------------------------------------------------------
@dataclass
class SequenceRun:
    """What :func:`refine_sequence` returns. x (T, D) in the fitter's layout (one betas in every row);
    loss: the final objective; terms: its parts (floats); iterations; time_s."""

    x: torch.Tensor
    loss: float
    terms: dict
    iterations: int
    time_s: float


def sequence_terms(objective: Objective, x: torch.Tensor, batch: Batch, fps: float) -> dict:
    """Every term of the joint objective, unweighted, each a scalar: data, pose_prior, bend, shape, world (the
    bone-direction term of MediaPipe's world landmarks; summed over frames), joint_accel (24 joints, camera
    coordinates, (m/s²)²), pose_accel (body pose, (rad/s²)²).
    x (T, D) in ``objective.layout``; batch: T rows (a missing frame's weights are 0)."""
    sl = objective.layout
    pose = objective.body_pose_of(x)
    out = objective.body.joints_and_landmarks(x[:, sl["global_orient"]], pose, x[:, sl["betas"]], x[:, sl["transl"]])
    pts = out.points
    sel = torch.gather(pts, 1, batch.index[..., None].expand(-1, -1, 3))
    proj = project(sel, batch.focal * torch.exp(x[:, sl["focal"]]), batch.pp)
    return {
        "data": reprojection_term(proj, batch.xy, batch.w, batch.scale, objective.config.sigma).sum(),
        "pose_prior": (0.5 * x[:, sl["pose"]].pow(2).sum(-1) if objective.latent else objective.prior.nll(pose)).sum(),
        "bend": bend_term(pose).sum(),
        "shape": shape_term(x[:, sl["betas"]]).sum(),
        # the bone directions of MediaPipe's world landmarks, as in a photo's fit (0 where the batch has none)
        "world": (direction_term(sel, batch.bone_coeff, batch.bone_dir, batch.bone_w,
                                 objective.config.world_sigma).sum() if batch.has_bones else x.new_zeros(())),
        "joint_accel": acceleration_term(out.joints, fps),
        "pose_accel": acceleration_term(pose, fps),
    }


def sequence_total(terms: dict, stage: Stage, cfg: SequenceConfig, world_weight: float = 0.0) -> torch.Tensor:
    """The weighted sum of :func:`sequence_terms`: ``stage``'s prior weights (the photo's last stage),
    ``world_weight`` (the photo's) and the temporal weights of ``cfg``."""
    return (terms["data"] + stage.pose_prior * terms["pose_prior"] + stage.bend * terms["bend"]
            + stage.shape * terms["shape"] + world_weight * terms["world"] + cfg.joint_accel * terms["joint_accel"]
            + cfg.pose_accel * terms["pose_accel"])


def refine_sequence(objective: Objective, x0: torch.Tensor, batch: Batch, fps: float, cfg: SequenceConfig,
                    stage: Stage, history: int = 50) -> SequenceRun:
    """Minimise :func:`sequence_total` over all frames at once from x0 (T, D): per-frame translation,
    orientation and pose, one betas (the mean of x0's, or per frame where ``cfg.share_betas`` is False);
    the focal column stays as in x0. L-BFGS (:func:`smplify.optim.lbfgs`, one row of T·(6+P)+S unknowns) on
    autograd. Returns a :class:`SequenceRun`."""
    t0 = time.perf_counter()
    sl = objective.layout
    T, D = x0.shape
    nf = sl["betas"].start  # transl, orient, pose: the per-frame columns, first in the layout
    S = sl.size("betas")
    rest = x0[:, sl["betas"].stop:].detach()  # the focal column
    betas0 = x0[:, sl["betas"]].mean(0, keepdim=True) if cfg.share_betas else x0[:, sl["betas"]]

    def unpack(z: torch.Tensor) -> torch.Tensor:
        frames = z[0, : T * nf].reshape(T, nf)
        betas = z[0, T * nf:].reshape(-1, S).expand(T, S)
        return torch.cat([frames, betas, rest], 1)

    z0 = torch.cat([x0[:, :nf].reshape(-1), betas0.reshape(-1)])[None].detach()
    ww = objective.config.world_weight

    def closure(z, rows=None):
        return sequence_total(sequence_terms(objective, unpack(z), batch, fps), stage, cfg, ww)[None]

    r = lbfgs(closure, z0, max_iter=cfg.iterations, history=history, ftol=objective.config.ftol,
              max_ls=objective.config.line_search_steps)
    x = unpack(r.x).detach()
    if not torch.isfinite(x).all():  # never NaN: keep the start
        x = x0.clone()
    with torch.no_grad():
        terms = sequence_terms(objective, x, batch, fps)
        loss = float(sequence_total(terms, stage, cfg, ww))
    return SequenceRun(x, loss, {k: float(v) for k, v in terms.items()}, int(r.iterations[0]),
                       time.perf_counter() - t0)


# ---- the whole fit ----------------------------------------------------------------------------------------
@dataclass
class SequenceResult:
    """A fitted clip of T frames. Parameters use smplx's names; arrays are numpy float32.

    global_orient (T, 3), body_pose (T, 69), betas (S,) one shape for the clip ((T, S) from
    ``fit_sequence(per_frame_only=True)``), transl (T, 3) camera
    coordinates (OpenCV axes, metres); fps; camera: the (fixed) camera of the clip; detected (T,) bool: the
    detector found the person with at least ``min_keypoints`` confident keypoints; interpolated (T,) bool: the
    data term did not see the frame (not detected) — its body comes from the neighbours; facing_fixed (T,)
    bool: its per-frame fit faced the other way (:func:`facing_flips`) and the refinement started it from the
    neighbours; sides_swapped (T,) bool: its detection had left and right swapped (fitted with them swapped
    back, the frame then faces the clip's way; :func:`swap_sides`); reprojection_px (T,)
    mean error over the frame's confident keypoints (NaN where interpolated); per_frame: the per-frame
    fits (stage 1) of the detected frames, in order; loss_terms: the joint objective's parts."""

    global_orient: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    fps: float
    camera: Camera
    detected: np.ndarray
    interpolated: np.ndarray
    facing_fixed: np.ndarray
    sides_swapped: np.ndarray
    reprojection_px: np.ndarray
    per_frame: List[FitResult] = field(default_factory=list)
    loss_terms: dict = field(default_factory=dict)
    iterations: int = 0
    time_s: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per step (per_frame, refine, ...)
    frame_names: List[str] = field(default_factory=list)
    prior: str = ""
    body_model: str = ""

    @property
    def frames(self) -> int:
        return len(self.transl)

    @property
    def params(self) -> dict:
        """smplx's names, (T, ...) arrays; betas (S,)."""
        return {"global_orient": self.global_orient, "body_pose": self.body_pose, "betas": self.betas,
                "transl": self.transl}


def _placeholder(like: FitInput) -> FitInput:
    """A frame with nobody (usable) detected: the keypoint layout of a detected frame, every weight 0."""
    return FitInput(index=like.index, xy=np.zeros_like(like.xy), confidence=np.zeros_like(like.confidence),
                    weight=like.weight, camera=like.camera, names=like.names, tag="missing")


def fit_sequence(fitter, frames: Sequence[Optional[FitInput]], fps: float, frame_names: Sequence[str] = (),
                 per_frame_only: bool = False) -> SequenceResult:
    """Fit a clip: ``frames`` one :class:`FitInput` per frame in order (None where nobody was detected),
    all with the same camera; ``fitter`` a :class:`~smplify.fitting.Fitter`. See the module docstring.
    ``per_frame_only``: the per-frame fits as they are, each with its own betas ((T, S) in the result),
    frames without one interpolated; no facing vote, no joint refinement (for comparisons)."""
    t_all = time.perf_counter()
    c = fitter.config
    sc: SequenceConfig = c.sequence
    T = len(frames)
    if T == 0:
        raise ValueError("a clip needs at least one frame")
    min_conf = c.min_confidence
    usable = [f is not None and int((np.asarray(f.confidence) >= min_conf).sum()) >= sc.min_keypoints for f in frames]
    if not any(usable):
        raise ValueError(f"nobody detected in any of the {T} frames (at least {sc.min_keypoints} keypoints "
                         f"at confidence >= {min_conf:g})")
    rows = [i for i in range(T) if usable[i]]
    t0 = time.perf_counter()
    per = fitter.fit([frames[i] for i in rows])
    t_per = time.perf_counter() - t0
    sl, dev = fitter.layout, fitter.device
    x = torch.zeros(T, sl.dim, device=dev)

    def put(i: int, res: FitResult) -> None:  # a per-frame fit into row i of x
        x[i, sl["transl"]] = torch.as_tensor(res.transl, device=dev)
        x[i, sl["global_orient"]] = torch.as_tensor(res.global_orient, device=dev)
        x[i, sl["betas"]] = torch.as_tensor(res.betas, device=dev)
        if fitter.latent:  # the pose group is a VAE latent: encode the fitted pose back
            with torch.no_grad():
                x[i, sl["pose"]] = fitter.prior.encode_mean(torch.as_tensor(res.body_pose[None, :63], device=dev))[0]
        else:
            x[i, sl["pose"]] = torch.as_tensor(res.body_pose[:63], device=dev)

    for i, res in zip(rows, per):
        put(i, res)
    frames = list(frames)
    detected = torch.tensor(usable, device=dev)
    swapped = torch.zeros(T, dtype=torch.bool, device=dev)
    flipped = detected & False
    if T > 1 and not per_frame_only:
        flipped = facing_flips(x[:, sl["global_orient"]], detected)
        if flipped.any() and sc.retry_swapped_sides:  # left and right swapped by the detector? refit those frames so
            again = flipped.nonzero().squeeze(1).tolist()
            trial = x.clone()
            redo = fitter.fit([swap_sides(frames[i]) for i in again])
            t_per += sum(r.time_s for r in redo)
            for i, res in zip(again, redo):
                trial[i, sl["global_orient"]] = torch.as_tensor(res.global_orient, device=dev)
            still = facing_flips(trial[:, sl["global_orient"]], detected)
            for i, res in zip(again, redo):
                if not still[i]:  # swapped, the frame faces the clip's way: keep it so
                    put(i, res)
                    frames[i] = swap_sides(frames[i])
                    swapped[i] = True
            flipped = facing_flips(x[:, sl["global_orient"]], detected)
    known = detected & ~flipped
    if not known.any():  # every frame voted out: keep them all
        known, flipped = detected, detected & False
    x = interpolate_values(x, known)
    x[:, sl["global_orient"]] = interpolate_rotvecs(x[:, sl["global_orient"]], known)
    if not per_frame_only and sc.init_smoothing > 0:  # the refinement starts from the per-frame fits low-passed
        sigma = sc.init_smoothing * fps
        go = filter_rotvecs(x[:, sl["global_orient"]], sigma)
        x = temporal_filter(x, sigma)
        x[:, sl["global_orient"]] = go
    like = frames[rows[0]]
    batch = make_batch([frames[i] if usable[i] else _placeholder(like) for i in range(T)], min_conf, dev,
                       bones=c.world_weight > 0)
    timings = {"per_frame": t_per}
    terms, iters = {}, 0
    if not per_frame_only:
        run = refine_sequence(fitter.objective, x, batch, fps, sc, c.schedule()[-1], c.lbfgs_history)
        x, terms, iters = run.x, run.terms, run.iterations
        timings["refine"] = run.time_s
    with torch.no_grad():
        pose = fitter.body_pose_of(x)
        pts = fitter.body.joints_and_landmarks(x[:, sl["global_orient"]], pose, x[:, sl["betas"]],
                                               x[:, sl["transl"]]).points
        sel = torch.gather(pts, 1, batch.index[..., None].expand(-1, -1, 3))
        proj = project(sel, batch.focal * torch.exp(x[:, sl["focal"]]), batch.pp)
        err = (proj - batch.xy).norm(dim=-1)
        vis = batch.w > 0
        reproj = torch.where(vis.any(1), (err * vis).sum(1) / vis.sum(1).clamp(min=1),
                             torch.full_like(err[:, 0], float("nan")))
    xn = x.cpu().numpy().astype(np.float32)
    poses = np.concatenate([pose.cpu().numpy(), np.zeros((T, 6))], 1).astype(np.float32)
    betas = xn[:, sl["betas"]].mean(0) if sc.share_betas and not per_frame_only else xn[:, sl["betas"]]
    return SequenceResult(
        global_orient=xn[:, sl["global_orient"]], body_pose=poses, betas=betas, transl=xn[:, sl["transl"]],
        fps=float(fps), camera=like.camera, detected=np.array(usable), interpolated=~np.array(usable),
        facing_fixed=flipped.cpu().numpy(), sides_swapped=swapped.cpu().numpy(),
        reprojection_px=reproj.cpu().numpy().astype(np.float32), per_frame=per,
        loss_terms=terms, iterations=iters, time_s=time.perf_counter() - t_all, timings=timings,
        frame_names=list(frame_names) or [str(i) for i in range(T)], prior=c.prior, body_model=fitter.body.name)
