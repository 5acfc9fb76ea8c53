"""Synthetic "world landmarks" on *training* poses, to tune what uses MediaPipe's 3D estimate.

    python -m benchmarks.world_landmarks lift --weights 1e-5,1e-4,1e-3        # the lift's prior weight
    python -m benchmarks.world_landmarks fit --noise-px 10 --configs "world_weight=0.0,init=regressor" ""
    python -m benchmarks.world_landmarks time --configs "world_weight=0.0,init=regressor" ""   # CPU time per fit
    python -m benchmarks.world_landmarks facing --configs "world_weight=0.0,init=regressor" ""  # flip decisions

The real capture is the evaluation, so nothing is tuned on it. Instead: scenes from poses of the
open set's train split (:func:`smplify.synth.sample_scenes`), and as "world landmarks" the true body
points of the MediaPipe-33 layout in the camera's axes, hip-centred, spoiled by a noise model chosen
beforehand from what MediaPipe's 3D is known to get wrong (it is a single-view estimate: depth is
its weak axis), not fitted to the capture:

* every point: N(0, 2 cm) in x and y, N(0, 5 cm) in z (depth);
* per person: depth stretched by a factor 1 + N(0, 0.2) (a monocular net's depth scale is loose);
* per limb (each arm, each leg; 15 % each): the limb's depth mirrored about its root joint's depth
  (the classic single-view ambiguity: a forearm towards or away from the camera);
* per person, 3 % : the whole body turned 180° about the vertical axis (front/back confusion);
* the whole set rotated by a random 8° about a random axis (the world frame is only roughly the camera's);
* scale: the landmarks are for a body of 1.7 m standing height, whatever the true body's.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import roma
import torch

#: SMPL limb joints scored (as the real capture's PA-MPJPE): hips, knees, ankles, shoulders, elbows, wrists
LIMB_JOINTS = [2, 5, 8, 1, 4, 7, 17, 19, 21, 16, 18, 20]
#: keypoint name prefixes of each limb's points below its root, and the root keypoint
LIMBS = (("left_shoulder", ("left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb")),
         ("right_shoulder", ("right_elbow", "right_wrist", "right_pinky", "right_index", "right_thumb")),
         ("left_hip", ("left_knee", "left_ankle", "left_heel", "left_foot_index")),
         ("right_hip", ("right_knee", "right_ankle", "right_heel", "right_foot_index")))


def noisy_world(points: torch.Tensor, names, generator: torch.Generator) -> torch.Tensor:
    """Synthetic world landmarks: points (B, M, 3) true camera-frame points of keypoints ``names`` ->
    (B, M, 3) spoiled as the module docstring says, hip-centred."""
    g = generator
    B, M, _ = points.shape
    n = {k: i for i, k in enumerate(names)}
    hips = points[:, [n["left_hip"], n["right_hip"]]].mean(1, keepdim=True)
    X = points - hips
    # limb depth mirrored about the root's depth
    for root, below in LIMBS:
        flip = torch.rand(B, generator=g) < 0.15
        rows = [n[k] for k in below if k in n]
        zr = X[:, n[root], 2][:, None]
        X[:, rows, 2] = torch.where(flip[:, None], 2 * zr - X[:, rows, 2], X[:, rows, 2])
    turn = torch.rand(B, generator=g) < 0.03
    Ry = roma.rotvec_to_rotmat(torch.tensor([0.0, math.pi, 0.0])).expand(B, 3, 3)
    X = torch.where(turn[:, None, None], X @ Ry.transpose(1, 2), X)
    X[..., 2] *= (1 + 0.2 * torch.randn(B, 1, generator=g))
    axis = torch.nn.functional.normalize(torch.randn(B, 3, generator=g), dim=-1)
    R = roma.rotvec_to_rotmat(axis * math.radians(8.0))
    X = X @ R.transpose(1, 2)
    X = X + torch.randn(B, M, 3, generator=g) * torch.tensor([0.02, 0.02, 0.05])
    height = (points[..., 1].amax(1) - points[..., 1].amin(1)).clamp(min=0.5)  # y down: feet to head
    return X * (1.7 / height)[:, None, None]


def training_scenes(body, B: int = 256, seed: int = 5):
    """Scenes from training poses, the MediaPipe-33 targets, and noisy world landmarks."""
    from priors.posedata import open_poses
    from smplify.keypoints.layouts import MEDIAPIPE33
    from smplify.keypoints.mapping import layout_targets
    from smplify.evaluation.scenes import sample_scenes

    g = torch.Generator().manual_seed(seed)
    poses = torch.as_tensor(open_poses("train"))
    sc = sample_scenes(body, poses, B, g)
    index, names, table_w = layout_targets(MEDIAPIPE33, body.landmark_names)
    idx = torch.as_tensor(index)
    world = noisy_world(sc.points[:, idx], names, g)
    return sc, idx, names, torch.as_tensor(table_w), world


def pa_limbs(joints_pred: torch.Tensor, joints_true: torch.Tensor) -> torch.Tensor:
    """(B,) PA-MPJPE (mm) over the 12 limb joints."""
    from smplify.metrics import pa_mpjpe

    return pa_mpjpe(joints_pred[:, LIMB_JOINTS].double(), joints_true[:, LIMB_JOINTS].double()) * 1000


def tune_lift(weights, B: int = 256):
    from smplify import api
    from smplify.lift import lift_pose

    body = api.load_body()
    prior = api.load_prior("gmm")
    sc, idx, names, tw, world = training_scenes(body, B)
    index = idx[None].expand(B, -1)
    with torch.no_grad():
        true_j = body.joints_and_landmarks(sc.global_orient, sc.body_pose, sc.betas).joints
        # the noisy landmarks themselves, at the limb joints (their PA-MPJPE: what the lift starts from)
        pos = {k: i for i, k in enumerate(names)}
        mp = ["right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_shoulder",
              "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist"]
        from smplify.metrics import pa_mpjpe
        raw = pa_mpjpe(world[:, [pos[k] for k in mp]].double(), true_j[:, LIMB_JOINTS].double()) * 1000
    print(f"raw synthetic world landmarks: PA {raw.mean():.1f} median {raw.median():.1f} mm")
    for pw in weights:
        for bw in (pw,):
            r = lift_pose(body, index, world, tw.expand(B, -1), prior=prior, prior_weight=pw, bend_weight=bw)
            with torch.no_grad():
                j = body.joints_and_landmarks(r.global_orient, r.body_pose).joints
            e = pa_limbs(j, true_j)
            print(f"lift prior {pw:g} bend {bw:g}: PA {e.mean():.1f} median {e.median():.1f} p90 "
                  f"{e.quantile(0.9):.1f} mm, fit error {r.error_m.mean() * 1000:.1f} mm, iters {r.iterations.float().mean():.0f}",
                  flush=True)


def training_cases(body, n: int = 96, noise_px: float = 5.0, dropout: float = 0.1, seed: int = 11):
    """Synthetic fitting cases on training poses (:func:`smplify.benchmark.synthetic.make_cases`), each with
    noisy world landmarks (:func:`noisy_world`) on its keypoint rows."""
    from dataclasses import replace

    from priors.posedata import open_poses
    from smplify.evaluation.synthetic import make_cases
    from smplify.keypoints.layouts import MEDIAPIPE33
    from smplify.keypoints.mapping import layout_targets

    poses = open_poses("train")
    rng = np.random.default_rng(seed)
    poses = poses[rng.choice(len(poses), 2000, replace=False)]
    layout = layout_targets(MEDIAPIPE33, body.landmark_names)
    cases = make_cases(body, layout, n=n, noise_levels=(noise_px,), dropouts=(dropout,), seed=seed, poses=poses)
    T = lambda name: torch.tensor(np.stack([getattr(c, name) for c in cases]))
    with torch.no_grad():
        pts = body.joints_and_landmarks(T("global_orient"), T("body_pose"), T("betas"), T("transl")).points
    idx = torch.as_tensor(layout[0])
    world = noisy_world(pts[:, idx], layout[1], torch.Generator().manual_seed(seed)).numpy()
    for c, w in zip(cases, world):
        c.fit_input = replace(c.fit_input, world=w.astype(np.float32), world_visibility=np.ones(len(w), np.float32))
    return cases


def tune_fit(configs, n: int = 96, noise_px: float = 5.0):
    """Fit the training cases with each FitConfig override set; print limb PA-MPJPE (mean, median, p90)."""
    from smplify import api
    from smplify.config import FitConfig

    body = api.load_body()
    cases = training_cases(body, n, noise_px)
    T = lambda name: torch.tensor(np.stack([getattr(c, name) for c in cases]))
    with torch.no_grad():
        true_j = body.joints_and_landmarks(T("global_orient"), T("body_pose"), T("betas")).joints
    for kw in configs:
        fitter = api.make_fitter("gmm", config=FitConfig(**kw))
        rs = fitter.fit([c.fit_input for c in cases])
        P = lambda name: torch.tensor(np.stack([getattr(r, name) for r in rs]))
        with torch.no_grad():
            j = body.joints_and_landmarks(P("global_orient"), P("body_pose"), P("betas")).joints
        e = pa_limbs(j, true_j)
        px = np.mean([r.mean_error_px for r in rs])
        print(f"{kw}: limb PA {e.mean():.1f} median {e.median():.1f} p90 {e.quantile(0.9):.1f} mm, 2D {px:.1f} px, "
              f"flipped {np.mean([r.flipped for r in rs]):.2f}", flush=True)


def time_fits(configs, repeats: int = 8, batch: int = 48):
    """CPU time per fit, side by side (interleaved repeats), on real detections with world landmarks: frames 3,
    17 and 29 of every camera of the real capture (only timed here, nothing is scored or tuned). Batch 1
    (median over fits) and ``batch`` (those 12 inputs repeated). The GMM prior unless a config names one."""
    from .bench_defaults import time_configs

    times = time_configs({str(kw): dict({"prior": "gmm"}, **kw) for kw in configs}, repeats, batch, time.process_time)
    for k, (t1, tb) in times.items():
        print(f"{k}: batch 1 median {1000 * t1:.1f} ms CPU, batch {batch} {1000 * tb:.2f} ms CPU per fit", flush=True)


def facing_counts(configs):
    """Flip decisions on the real capture (frames 0-49, detected): per camera, the fits whose facing (the normal of
    the hips-and-shoulders plane, camera frame) is more than 90° from the truth's. Cameras 3 and 4 see the person's
    back. Counted, not tuned on."""
    import cv2

    from smplify import api
    from smplify.config import FitConfig
    from smplify.evaluation import realcapture as rc

    def facing(j):  # (B, 12, 3) in TRC_POINTS order: RHip 0, LHip 3, RShoulder 6, LShoulder 9
        f = np.cross((j[:, 9] + j[:, 6]) - (j[:, 3] + j[:, 0]), (j[:, 3] + j[:, 9]) - (j[:, 0] + j[:, 6]))
        return f / np.linalg.norm(f, axis=-1, keepdims=True)

    cap = rc.load_capture()
    inputs = rc.capture_inputs(cap, "detected")
    for kw in configs:
        f = api.make_fitter("gmm", config=FitConfig(**kw))
        rs = f.fit([api.keypoints_to_input(i.keypoints, f.body, camera=i.intrinsics) for i in inputs])
        P = lambda k: torch.tensor(np.stack([getattr(r, k) for r in rs]))
        with torch.no_grad():
            J = f.body.joints_and_landmarks(P("global_orient"), P("body_pose"), P("betas")).joints.numpy()
        J = J[:, list(rc.SMPL_JOINTS)]
        out = []
        for cam in cap.cameras:
            idx = [n for n, i in enumerate(inputs) if i.camera == cam.name]
            tru = cap.limb_truth()[[inputs[n].frame for n in idx]] @ cv2.Rodrigues(cam.rvec)[0].T + cam.tvec
            out.append(f"{cam.name} {int((np.sum(facing(J[idx]) * facing(tru), -1) < 0).sum())}/{len(idx)}")
        print(f"{kw}: wrong facing " + ", ".join(out), flush=True)


def _parse_config(text: str) -> dict:
    """'world_weight=1e3,init=lift,lift_iterations=8' -> {'world_weight': 1000.0, 'init': 'lift', 'lift_iterations': 8}."""
    out = {}
    for kv in filter(None, text.split(",")):
        k, v = kv.split("=")
        try:
            out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["lift", "fit", "time", "facing"])
    ap.add_argument("--configs", nargs="*", default=[""], help="FitConfig overrides, e.g. world_weight=1000,init=lift")
    ap.add_argument("--weights", default="1e-5,1e-4,1e-3")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--noise-px", type=float, default=5.0, help="2D keypoint noise of the fit cases (px)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.what == "lift":
        tune_lift([float(w) for w in a.weights.split(",")], a.n)
    elif a.what == "fit":
        tune_fit([_parse_config(c) for c in a.configs], a.n, a.noise_px)
    elif a.what == "time":
        time_fits([_parse_config(c) for c in a.configs])
    else:
        facing_counts([_parse_config(c) for c in a.configs])


if __name__ == "__main__":
    main()
