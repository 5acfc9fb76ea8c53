"""Fine-tuning the keypoint regressor on accepted pseudo-GT fits, with synthetic replay, and its
held-out synthetic benchmark before and after."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import FitConfig


def refine_regressor(out, body, steps: int = 200, lr: float = 2e-5, seed: int = 0, weights=None,
                     benchmark_cases: int = 60, min_confidence: float = FitConfig.min_confidence) -> dict:
    """Fine-tune the regressor on the accepted fits (fits supervise the network); report its
    benchmark error on held-out synthetic cases before and after.

    body: the body model the fits were made with (their parameters belong to it); weights: the
    regressor to start from (default: the shipped one); keypoints below ``min_confidence`` (the fits')
    are shown to it as missing.
    """
    import torch

    from priors.posedata import open_poses

    from ..paths import REGRESSOR_WEIGHTS
    from ..regressor import load_regressor, regressor_slots, to_slots
    from ..regressor.train import layouts_for, regression_loss, save_regressor, synthetic_batch

    out = Path(out)
    acc = [l.strip() for l in (out / "accepted.txt").read_text().splitlines() if l.strip()]
    if not acc:
        return {"refined": False, "reason": "no accepted samples"}
    weights = Path(weights or REGRESSOR_WEIGHTS)
    model = load_regressor(weights)
    slots = regressor_slots(model, body)
    before = regressor_benchmark(model, body, n=benchmark_cases, seed=seed)
    data = _accepted_fits(out, set(acc))
    M = max(len(d["kp_index"]) for d in data)
    pad = lambda a, fill=0: np.concatenate([a, np.full((M - len(a),) + a.shape[1:], fill, a.dtype)])
    index = torch.tensor(np.stack([pad(d["kp_index"]) for d in data]))
    xy = torch.tensor(np.stack([pad(d["kp_xy"]) for d in data]))
    w = torch.tensor(np.stack([pad(d["kp_confidence"] * d["kp_weight"] * (d["kp_confidence"] >= min_confidence)) for d in data]))
    index, w = to_slots(slots, index, w)
    focal = torch.tensor(np.stack([d["focal_length"] for d in data]))
    pp = torch.tensor(np.stack([d["principal_point"] for d in data]))
    target = {k: torch.tensor(np.stack([d[k] for d in data])) for k in ("global_orient", "betas", "transl")}
    target["body_pose"] = torch.tensor(np.stack([d["body_pose"][:63] for d in data]))
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    train_poses, layouts = torch.tensor(open_poses("train")), layouts_for(body)
    for _ in range(steps):
        b = torch.randint(len(data), (min(64, len(data)),), generator=g)
        terms = regression_loss(model, body, index[b], xy[b], w[b], focal[b], pp[b], {k: v[b] for k, v in target.items()})
        # replay synthetic pairs in every step, so a small set of fits refines without forgetting
        sc, si, sxy, sw = synthetic_batch(body, train_poses, layouts, 64, g)
        si, sw = to_slots(slots, si, sw)
        syn = regression_loss(model, body, si, sxy, sw, sc.focal, sc.principal_point,
                              {"global_orient": sc.global_orient, "body_pose": sc.body_pose, "betas": sc.betas,
                               "transl": sc.transl})
        loss = sum(terms.values()) + sum(syn.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    after = regressor_benchmark(model, body, n=benchmark_cases, seed=seed)
    dest = out / "regressor_refined.pt"
    save_regressor(model, dest, dict(getattr(model, "meta", {}), refined_on=len(data), steps=steps,
                                     refined_from=str(weights), body_model=body.name))
    return {"refined": True, "samples": len(data), "steps": steps, "body_model": body.name,
            "start_weights": str(weights), "benchmark_cases": benchmark_cases,
            "benchmark_pa_mpjpe_mm_before": before, "benchmark_pa_mpjpe_mm_after": after, "weights": str(dest)}


def _accepted_fits(out: Path, accepted: set) -> list:
    """The accepted samples' parameters, camera and keypoints (one dict each), read chunk by chunk."""
    from .chunks import ChunkStore

    store, data, taken = ChunkStore(out), [], set()
    for rec in store.records():
        rows = [(i, d["id"]) for i, d in enumerate(rec["samples"]) if d["id"] in accepted and d["id"] not in taken]
        if not rows:
            continue
        z = store.arrays(rec["chunk"])
        for i, sid in rows:
            n = int(z["kp_count"][i])
            d = {k: z[k][i] for k in ("global_orient", "body_pose", "betas", "transl", "focal_length", "principal_point")}
            d.update({k: z[k][i][:n] for k in ("kp_index", "kp_xy", "kp_confidence", "kp_weight")})
            data.append(d)
            taken.add(sid)
    return data


def regressor_benchmark(model, body, n: int = 60, seed: int = 0) -> float:
    """Regressor-alone PA-MPJPE (mm) on held-out synthetic cases (MediaPipe layout, 3 px noise)."""
    import torch

    from ..evaluation.synthetic import make_cases
    from ..keypoints.layouts import MEDIAPIPE33
    from ..keypoints.mapping import layout_targets
    from ..metrics import pa_mpjpe
    from ..regressor import predict, regressor_slots, to_slots

    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=n, noise_levels=(3.0,),
                       dropouts=(0.1,), seed=seed)
    fi = [c.fit_input for c in cases]
    index, w = to_slots(regressor_slots(model, body), torch.tensor(np.stack([f.index for f in fi])),
                         torch.tensor(np.stack([f.confidence * f.weight for f in fi])))
    p = predict(model, body, index, torch.tensor(np.stack([f.xy for f in fi])), w,
                torch.tensor([f.camera.focal for f in fi]), torch.tensor([f.camera.principal_point for f in fi]))
    with torch.no_grad():
        J = body.joints_and_landmarks(p["global_orient"], p["body_pose"], p["betas"], p["transl"]).joints
    return float((pa_mpjpe(J, torch.tensor(np.stack([c.joints3d for c in cases]))) * 1000).mean())
