"""Training the keypoint regressor on synthetic pairs, and fine-tuning it on fits.

Each step samples fresh scenes (:mod:`smplify.evaluation.scenes`: training poses, random adult
shapes, viewpoints and cameras), picks a keypoint layout per scene (MediaPipe-33 or
COCO-17 through the landmark table), adds pixel noise (0-8 px) and drops keypoints
(0-30 %), and regresses pose, shape and camera. Loss: rotation matrices, 3D joints
(root-relative, through the body model), betas and camera.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import roma
import torch
from torch import nn

from ..body import BodyModel
from ..evaluation.scenes import sample_scenes
from .model import KeypointRegressor, decode_outputs, encode_inputs, predict  # noqa: F401 (predict: re-exported)


@dataclass
class LayoutTargets:
    """A keypoint layout on this body model: index (M,) into body points, table weight (M,)."""

    name: str
    index: torch.Tensor
    weight: torch.Tensor



def layouts_for(body: BodyModel) -> list:
    """The layouts the regressor is trained on (MediaPipe-33, COCO-17) mapped onto this body model."""
    from ..keypoints.layouts import COCO17, MEDIAPIPE33
    from ..keypoints.mapping import layout_targets

    out = []
    for name, names in (("mediapipe33", MEDIAPIPE33), ("coco17", COCO17)):
        idx, _, w = layout_targets(names, body.landmark_names)
        out.append(LayoutTargets(name, torch.as_tensor(idx), torch.as_tensor(w)))
    return out

def camera_targets(pelvis_cam: torch.Tensor, focal, pp, centre, diag) -> torch.Tensor:
    """(u, v, w) of a camera-frame pelvis position; inverse of :func:`decode_outputs`'s camera."""
    z = pelvis_cam[:, 2]
    px = pelvis_cam[:, :2] / z[:, None] * focal + pp
    return torch.cat([(px - centre) / diag[:, None], torch.log(z * diag / focal.mean(-1))[:, None]], -1)


def synthetic_batch(body: BodyModel, poses: torch.Tensor, layouts: Sequence[LayoutTargets], B: int,
                    g: torch.Generator, max_noise: float = 8.0, max_dropout: float = 0.3):
    """One batch of (index, xy, weight) inputs with their true parameters."""
    sc = sample_scenes(body, poses, B, g)
    M = max(len(l.index) for l in layouts)
    index = torch.zeros(B, M, dtype=torch.long)
    weight = torch.zeros(B, M)
    which = torch.randint(len(layouts), (B,), generator=g)
    for k, lay in enumerate(layouts):
        rows = (which == k).nonzero().squeeze(1)
        m = len(lay.index)
        index[rows, :m] = lay.index
        weight[rows, :m] = lay.weight
    xy = torch.gather(sc.uv, 1, index[..., None].expand(-1, -1, 2))
    scale = (sc.uv.amax(1) - sc.uv.amin(1)).norm(dim=-1) / 256.0  # noise relative to a 256 px person
    xy = xy + torch.randn(xy.shape, generator=g) * (torch.rand(B, 1, 1, generator=g) * max_noise) * scale[:, None, None]
    drop = torch.rand(B, M, generator=g) < torch.rand(B, 1, generator=g) * max_dropout
    weight = torch.where(drop, torch.zeros_like(weight), weight)
    return sc, index, xy, weight


def regression_loss(model: KeypointRegressor, body: BodyModel, index, xy, weight, focal, pp, target: dict):
    """Loss terms for a batch against target params (global_orient, body_pose (63), betas, transl)."""
    feats, centre, diag = encode_inputs(index, xy, weight, model.num_points)
    R, betas, cam = model(feats)
    B = R.shape[0]
    R_gt = roma.rotvec_to_rotmat(torch.cat([target["global_orient"][:, None], target["body_pose"].view(B, 21, 3)], 1))
    with torch.no_grad():
        gt = body.joints_and_landmarks(target["global_orient"], target["body_pose"], target["betas"], target["transl"])
        cam_gt = camera_targets(gt.joints[:, 0], focal, pp, centre, diag)
    rv = roma.rotmat_to_rotvec(R)
    pred = body.joints_and_landmarks(rv[:, 0], rv[:, 1:].flatten(1), betas)
    j_pred = pred.joints - pred.joints[:, :1]
    j_gt = gt.joints - gt.joints[:, :1]
    terms = {"rot": (R - R_gt).pow(2).sum((-1, -2)).mean(), "joints": (j_pred - j_gt).norm(dim=-1).mean() * 10,
             "betas": (betas - target["betas"]).pow(2).mean() * 0.1, "camera": (cam - cam_gt).pow(2).sum(-1).mean()}
    return terms


def save_regressor(model: KeypointRegressor, path, meta: dict) -> None:
    """State dict (loadable with ``torch.load(weights_only=True)``) + JSON metadata, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..fileio import atomic_write, atomic_write_text

    state = {k: v.half() for k, v in model.state_dict().items()}  # float16 on disk: half the size
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    atomic_write_text(path.with_suffix(".json"), json.dumps(dict(meta, config=model.config()), indent=2))


def train(body: BodyModel, poses: torch.Tensor, layouts: Sequence[LayoutTargets], steps: int = 3000,
          batch: int = 256, lr: float = 1e-3, seed: int = 0, model: Optional[KeypointRegressor] = None,
          progress: bool = True) -> tuple:
    """Train on synthetic pairs. Returns (model, summary dict)."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = model or KeypointRegressor(len(body.point_names), body.num_betas)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    t0 = time.time()
    bar = tqdm(range(steps), desc="train-regressor", disable=not progress, unit="step")
    ema = None
    for step in bar:
        sc, index, xy, weight = synthetic_batch(body, poses, layouts, batch, g)
        target = {"global_orient": sc.global_orient, "body_pose": sc.body_pose, "betas": sc.betas, "transl": sc.transl}
        terms = regression_loss(model, body, index, xy, weight, sc.focal, sc.principal_point, target)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        lv = float(loss.detach())
        ema = lv if ema is None else 0.98 * ema + 0.02 * lv
        if step % 20 == 0:
            bar.set_postfix(loss=f"{ema:.3f}", joints_mm=f"{float(terms['joints'].detach()) * 100:.0f}")
    summary = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "final_loss": ema,
               "train_time_s": time.time() - t0, "layouts": [l.name for l in layouts], "train_poses": int(len(poses))}
    return model, summary
