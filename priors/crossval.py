"""Leave-one-group-out evaluation of pose priors: evaluation that cannot flatter.

    smplify crossval --out docs/results/crossval    # every group in turn (about an hour)
    smplify crossval --out /tmp/cv --groups dance,salsa --n 8 --priors none,limits,chain

For each activity group of the open pose set (``group`` in open_poses.npz: climbing, dance, salsa,
locomotion, exercise, sports, jumping, everyday, holosoma_climb), the learned priors are trained on
the *other* groups only (mirrored copies added), and synthetic cases are made from the held-out
group's poses (random adult shapes, viewpoints and photo cameras; perfect 2D and 8 px noise, 0 and
30 % keypoint dropout). Every prior is fitted with the same start (the mean pose of the fold's
training poses, translation by similar triangles), the same schedule and the same optimiser, at
every weight scale of ``--scales``; rows stream to ``crossval.csv`` (an interrupted run resumes:
finished (group, prior, scale) cells are skipped).

The weight of a prior for group g is the scale that scored best on the *other* groups (each of
them held out from its own fold's prior); g's own fits never choose it. (Those other folds' priors
were trained with g's poses among their training data; g's cases are never used to choose.)
The summary (``summary.md``, ``summary.json``) gives PA-MPJPE per group and overall, and the change
against ``none``.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .posedata import OPEN_POSES, mirror_poses

FIELDS = ["group", "prior", "scale", "case", "noise_px", "dropout", "pa_mpjpe_mm", "mpjpe_mm", "reproj_px",
          "iterations", "time_s", "failed"]
DEFAULT_PRIORS = "none,bend,limits,gmm,chain,chain+limits,vae"
DEFAULT_SCALES = "0.1,0.3,1"


@dataclass
class GroupedPoses:
    poses: np.ndarray  # (N, 63) float32
    group: np.ndarray  # (N,) int
    group_names: List[str]

    def split(self, held_out: str):
        k = self.group_names.index(held_out)
        return self.poses[self.group != k], self.poses[self.group == k]


def load_grouped(path=OPEN_POSES) -> GroupedPoses:
    """Poses of a pose set with per-pose activity groups (``group``, ``group_names``; a set without
    them is grouped by sequence)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: pose set not found (python -m smplify.cli.build_pose_data)")
    with np.load(p, allow_pickle=False) as z:
        poses = z["poses"].astype(np.float32)
        if "group" in z.files:
            return GroupedPoses(poses, z["group"].astype(np.int64), [str(s) for s in z["group_names"]])
        if "sequence" in z.files:
            return GroupedPoses(poses, z["sequence"].astype(np.int64), [str(s) for s in z["sequence_names"]])
    raise ValueError(f"{p}: no 'group' or 'sequence' array to hold out by")


# ---- priors per fold ------------------------------------------------------------------------
DATA_FREE = ("none", "bend", "limits")  # prior kinds with nothing to train


def train_prior(kind: str, train: np.ndarray, cache: Optional[Path], tag: str, seed: int = 0, log=print):
    """The prior ``kind`` trained on (N, 63) ``train`` poses (already mirrored), cached as ``cache/tag-kind.*``.

    kinds: none, bend, limits (data-free); gmm (8 components, covariance regularisation 1e-2, SMPLify's max
    form); gmm-sharp (the old recipe: regularisation 1e-4); chain (per-chain GMMs, :mod:`priors.chains`);
    chain:k16:r1e-2 (16 components per chain, regularisation 1e-2), chain:b (the limb chains plus a
    whole-body mixture, :data:`priors.chains.CHAINS_WITH_BODY`); vae (encoder-penalty mode); any two
    joined by '+' are summed (e.g. chain+limits).
    """
    from .chains import ChainGMMPrior, SumPrior
    from .registry import get_pose_prior

    if "+" in kind:
        parts = [train_prior(k, train, cache, tag, seed, log) for k in kind.split("+")]
        return SumPrior(parts, name=kind)
    if kind in DATA_FREE:  # nothing to train
        return get_pose_prior(kind)
    t0 = time.time()
    if kind in ("gmm", "gmm-sharp"):
        from .gmm import GMMPrior

        f = cache / f"{tag}-{kind}.npz" if cache else None
        if f is not None and f.exists():
            return GMMPrior.load(f)
        reg = 1e-2 if kind == "gmm" else 1e-4
        from sklearn.mixture import GaussianMixture

        gm = GaussianMixture(8, covariance_type="full", reg_covar=reg, max_iter=300, n_init=1,
                             random_state=seed).fit(train)
        prior = GMMPrior(gm.means_, gm.covariances_, gm.weights_, {"components": 8, "reg_covar": reg,
                                                                    "samples": int(len(train))})
    elif kind.split(":")[0] == "chain":  # chain[:k<components>][:r<reg>][:b], e.g. chain:k16:r1e-2
        from .chains import CHAINS, CHAINS_WITH_BODY

        opts = {t[0]: t[1:] for t in kind.split(":")[1:]}
        f = cache / f"{tag}-{kind.replace(':', '_')}.npz" if cache else None
        if f is not None and f.exists():
            return ChainGMMPrior.load(f)
        prior = ChainGMMPrior.fit(train, components=int(opts.get("k", 8)), reg_covar=float(opts.get("r", 1e-3)),
                                  seed=seed, chains=CHAINS_WITH_BODY if "b" in opts else CHAINS)
    elif kind == "vae":
        from .vae import VAEPrior

        f = cache / f"{tag}-vae.pt" if cache else None
        if f is not None and f.exists():
            return VAEPrior.load(f)
        from smplify.body import BodyModel, load_model_file

        prior = VAEPrior.fit(train, BodyModel(load_model_file()), epochs=VAE_EPOCHS, hidden=VAE_HIDDEN, seed=seed,
                             progress=False)
    else:
        raise ValueError(f"unknown prior kind {kind!r}")
    log(f"  trained {kind} on {len(train)} poses in {time.time() - t0:.0f} s")
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        prior.save(f)
        # what a resumed run reads back (the chain files hold float32 covariances): a fresh run and a resumed one
        # then score alike (climbing, gmm+chain x3: 61.0 mm from the trained object, 60.8 from its file)
        return type(prior).load(f)
    return prior


VAE_EPOCHS, VAE_HIDDEN = 20, 256  # what the shipped VAE is trained with, too (train.py --epochs/--hidden)


def scaled(prior, scale: float):
    """The prior with its nll (and least-squares form) multiplied by ``scale``."""
    from .chains import SumPrior

    if scale == 1.0 or getattr(prior, "name", "") == "none":
        return prior
    return SumPrior([prior], [scale], name=getattr(prior, "name", "prior"))


# ---- fitting ----------------------------------------------------------------------------------
def train_regressor(body, train: np.ndarray, cache: Optional[Path], tag: str, steps: int, seed: int = 0, log=print):
    """The keypoint regressor trained on the fold's (mirrored) training poses only, cached as ``tag-regressor.pt``."""
    from smplify.regressor.train import layouts_for
    from smplify.regressor.model import load_regressor
    from smplify.regressor.train import save_regressor, train as train_reg

    f = cache / f"{tag}-regressor-{steps}.pt" if cache else None
    if f is not None and f.exists():
        return load_regressor(f)
    t0 = time.time()
    model, summary = train_reg(body, torch.as_tensor(train), layouts_for(body), steps=steps, seed=seed, progress=False)
    log(f"  trained regressor ({steps} steps) on {len(train)} poses in {time.time() - t0:.0f} s")
    if f is None:
        return model.eval()
    save_regressor(model, f, summary)
    return load_regressor(f)


def fold_fitter(body, prior, start_pose, regressor=None):
    """The fitter every crossval fit uses (and :func:`priors.pck.lift`): L-BFGS, the VAE in penalty mode, from
    the fold's own training mean ``start_pose`` (63,) (the same for every prior), or from the fold's
    ``regressor`` (its estimate, the shorter schedule; the unseen joints from that mean)."""
    from smplify.config import FitConfig
    from smplify.fitting import Fitter

    cfg = FitConfig(init="mean" if regressor is None else "regressor", start_pose="shared", optimizer="lbfgs",
                    vae_mode="penalty")
    return Fitter(body, cfg, prior=prior, regressor=regressor,
                  start_pose=np.asarray(torch.as_tensor(start_pose), np.float32).reshape(63))


def fit_rows(body, layout, prior, cases, start_pose: torch.Tensor, group: str, label: str, scale: float,
             batch: int = 64, regressor=None) -> List[dict]:
    """Fit ``cases`` with ``prior`` from ``start_pose`` (same for every prior), or from the fold's
    ``regressor`` (its estimate, the fitter's shorter schedule); one row per case."""
    from smplify.evaluation.runner import evaluate_batch

    fitter = fold_fitter(body, prior, start_pose, regressor)
    rows = []
    for i in range(0, len(cases), batch):
        for r in evaluate_batch(fitter, cases[i : i + batch], label):
            rows.append({"group": group, "prior": label, "scale": scale, "case": r["case"],
                         "noise_px": r["noise_px"], "dropout": r["dropout"], "pa_mpjpe_mm": round(r["pa_mpjpe_mm"], 3),
                         "mpjpe_mm": round(r["mpjpe_mm"], 3), "reproj_px": round(r["reproj_px"], 3),
                         "iterations": r["iterations"], "time_s": round(r["time_s"], 4), "failed": r["failed"]})
    return rows


@dataclass
class ExtraPCK:
    """2D-only poses of pose-classification-kit (:mod:`priors.pck`) lifted per fold with that fold's own prior
    (``lift_prior`` at ``lift_scale``, trained on the fold's training groups only, so no held-out pose leaks in),
    at most ``per_class`` people per class, kept by :func:`priors.pck.keep_mask`, mirrored, added to the fold's
    training poses. Rows of priors trained with them are labelled ``<prior>+pck``."""

    wheel: str
    per_class: Optional[int] = 200
    lift_prior: str = "gmm+chain"
    lift_scale: float = 3.0

    def poses(self, train: np.ndarray, cache: Optional[Path], tag: str, seed: int = 0, log=print) -> np.ndarray:
        """(M, 63) lifted poses for this fold (kept ones, not yet mirrored), cached as ``tag-pck-....npz``."""
        from . import pck as P

        key = f"{tag}-pck-lift-{self.lift_prior}-x{self.lift_scale:g}-k{self.per_class or 'all'}"
        f = cache / f"{key}.npz" if cache else None
        if f is not None and f.exists():
            return P.load_lifted(f)
        data = P.read_wheel(self.wheel)
        idx = P.per_class(data, self.per_class, seed=seed, mask=P.usable(data))
        prior = scaled(train_prior(self.lift_prior, train, cache, tag, seed, log), self.lift_scale)
        t0 = time.time()
        lifted = P.lift(data.subset(idx), prior, train.mean(0))
        keep = lifted.keep()
        log(f"  lifted {len(idx)} PCK poses with {self.lift_prior} x{self.lift_scale:g} in {time.time() - t0:.0f} s: "
            f"{int(keep.sum())} kept (median reprojection {np.median(lifted.reproj_px):.1f} px)")
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            P.save_lifted(f, data, idx, lifted, lift_prior=f"{self.lift_prior} x{self.lift_scale:g}")
        return lifted.poses[keep]

    def training(self, train: np.ndarray, cache: Optional[Path], tag: str, seed: int = 0, log=print):
        """(the fold's training poses with the lifted ones and their mirrors added, the tag of its priors)"""
        extra = self.poses(train, cache, tag, seed, log)
        return (np.concatenate([train, extra, mirror_poses(extra)]).astype(np.float32),
                f"{tag}-pck{self.per_class or 'all'}")


PCK_SUFFIX = "+pck"


def _done(csv_path: Path) -> set:
    if not csv_path.exists():
        return set()
    with open(csv_path, newline="") as fh:
        return {(r["group"], r["prior"], float(r["scale"])) for r in csv.DictReader(fh)}


def run(out, pose_set=OPEN_POSES, priors: Sequence[str] = DEFAULT_PRIORS.split(","),
        scales: Sequence[float] = (0.1, 0.3, 1.0), groups: Optional[Sequence[str]] = None, n: int = 12,
        noise=(0.0, 8.0), dropout=(0.0, 0.3), seed: int = 0, cache: Optional[Path] = None, log=print,
        start: str = "mean", regressor_steps: int = 1500, pck: Optional[ExtraPCK] = None) -> Path:
    """Run (or resume) the leave-one-group-out evaluation; returns the CSV path. ``start='regressor'``:
    every fit starts from a regressor trained on the fold's training poses (rows labelled ``prior@regressor``).
    ``pck``: each learned prior is also trained with the fold's lifted 2D poses (:class:`ExtraPCK`), rows
    ``prior+pck`` (same cases, same start: the fold's mocap mean)."""
    from smplify.evaluation.synthetic import make_cases
    from smplify.body import BodyModel, load_model_file
    from smplify.keypoints.layouts import MEDIAPIPE33
    from smplify.keypoints.mapping import layout_targets

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "crossval.csv"
    done = _done(csv_path)
    data = load_grouped(pose_set)
    groups = list(groups or data.group_names)
    for g in groups:
        if g not in data.group_names:
            raise ValueError(f"unknown group {g!r} (the pose set has {', '.join(data.group_names)})")
    body = BodyModel(load_model_file())
    layout = layout_targets(MEDIAPIPE33, body.landmark_names)
    new = not csv_path.exists() or csv_path.stat().st_size == 0
    with open(csv_path, "a", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        if new:  # written at once: a run killed before its first row still leaves a readable file
            w.writeheader()
            fh.flush()
        for gi, g in enumerate(groups):
            suffix = "@regressor" if start == "regressor" else ""
            variants = [(p, "") for p in priors]
            if pck is not None:
                variants += [(p, PCK_SUFFIX) for p in priors if p not in DATA_FREE]
            todo = [(p, x, s) for p, x in variants for s in ([1.0] if p in ("none",) else scales)
                    if (g, p + x + suffix, float(s)) not in done]
            if not todo:
                continue
            train, test = data.split(g)
            train = np.concatenate([train, mirror_poses(train)])
            log(f"[{gi + 1}/{len(groups)}] held out {g}: {len(test)} test poses, {len(train)} training poses (mirrored)")
            start_pose = torch.as_tensor(train.mean(0), dtype=torch.float32)
            # seeded by the group's place in the pose set, not in --groups: a group gets the same cases in any run
            cases = make_cases(body, layout, n=n, noise_levels=noise, dropouts=dropout,
                               seed=seed + 1000 * data.group_names.index(g),
                               poses=test)
            trained = {}
            tag = f"{Path(pose_set).stem}-no-{g}"
            reg = train_regressor(body, train, cache, tag, regressor_steps, seed, log) if start == "regressor" else None
            fold = {"": (train, tag)}
            for p, x, s in todo:
                if x not in fold:
                    fold[x] = pck.training(train, cache, tag, seed, log)
                    log(f"  {len(fold[x][0])} training poses with the lifted PCK poses (mirrored)")
                if p + x not in trained:
                    trained[p + x] = train_prior(p, fold[x][0], cache, fold[x][1], seed, log)
                t0 = time.time()
                rows = fit_rows(body, layout, scaled(trained[p + x], s), cases, start_pose, g, p + x + suffix, s,
                                regressor=reg)
                w.writerows(rows)
                fh.flush()
                pa = np.mean([r["pa_mpjpe_mm"] for r in rows])
                log(f"  {p + x} x{s:g}: PA-MPJPE {pa:.1f} mm over {len(rows)} fits ({time.time() - t0:.0f} s)")
    return csv_path


def fold_auc(out, pose_set=OPEN_POSES, kinds: Sequence[str] = ("gmm", "chain", "vae"), groups=None,
             cache: Optional[Path] = None, max_poses: int = 2000, log=print, pck: Optional[ExtraPCK] = None) -> dict:
    """ROC AUC (:func:`priors.evaluate.prior_auc`) of each fold's prior on its held-out group's poses:
    {kind: {group: {auc_vs_noise_0.3rad_per_joint: ..., ...}}}; written to ``out/auc.json``. ``pck``: also each
    kind trained with the fold's lifted 2D poses (``kind+pck``)."""
    from .evaluate import prior_auc

    data = load_grouped(pose_set)
    cache = Path(cache) if cache else Path(out) / "cache"
    res: dict = {}
    for g in groups or data.group_names:
        train, test = data.split(g)
        train = np.concatenate([train, mirror_poses(train)])
        test = test[np.random.default_rng(0).permutation(len(test))[:max_poses]]
        tag = f"{Path(pose_set).stem}-no-{g}"
        folds = [("", train, tag)] + ([(PCK_SUFFIX, *pck.training(train, cache, tag, 0, log))] if pck else [])
        for x, tr, tg in folds:
            for k in kinds:
                prior = train_prior(k, tr, cache, tg, 0, log)
                res.setdefault(k + x, {})[g] = prior_auc(prior, test)
                log(f"  {k + x} held out {g}: AUC per joint {res[k + x][g]['auc_vs_noise_0.3rad_per_joint']:.3f}")
    for k, d in res.items():
        d["mean"] = {m: float(np.mean([v[m] for gg, v in d.items() if gg != "mean"]))
                     for m in ("auc_vs_noise_0.3rad", "auc_vs_noise_0.3rad_per_joint", "auc_vs_uniform_in_limits")}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "auc.json").write_text(json.dumps(res, indent=1))
    return res


# ---- summary ----------------------------------------------------------------------------------
def read_csv(path) -> List[dict]:
    out = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                for k in ("scale", "noise_px", "dropout", "pa_mpjpe_mm", "mpjpe_mm", "reproj_px"):
                    r[k] = float(r[k])
            except (TypeError, ValueError):
                continue
            out.append(r)
    return out


def summarise(rows: List[dict]) -> dict:
    """Per prior: the weight scale chosen for each group by the other groups, its PA-MPJPE there, the
    overall mean (groups weighted equally), the change against none, and per (noise, dropout) level."""
    cell = defaultdict(list)  # (prior, scale, group) -> PA values
    lvl = defaultdict(list)  # (prior, scale, group, noise, dropout) -> PA values
    for r in rows:
        cell[(r["prior"], r["scale"], r["group"])].append(r["pa_mpjpe_mm"])
        lvl[(r["prior"], r["scale"], r["group"], r["noise_px"], r["dropout"])].append(r["pa_mpjpe_mm"])
    groups = sorted({k[2] for k in cell})
    priors = list(dict.fromkeys(r["prior"] for r in rows))
    levels = sorted({(k[3], k[4]) for k in lvl})
    M = {k: float(np.mean(v)) for k, v in cell.items()}
    out = {"groups": groups, "levels": [list(x) for x in levels], "priors": {}}
    for p in priors:
        scales = sorted({k[1] for k in M if k[0] == p})
        complete = [s for s in scales if all((p, s, g) in M for g in groups)]
        if not complete:
            continue
        per_group, chosen, per_level = {}, {}, defaultdict(list)
        for g in groups:
            others = [v for v in groups if v != g] or [g]
            s_best = min(complete, key=lambda s: np.mean([M[(p, s, v)] for v in others]))
            chosen[g], per_group[g] = s_best, M[(p, s_best, g)]
            for nz, dp in levels:
                per_level[(nz, dp)].append(float(np.mean(lvl.get((p, s_best, g, nz, dp), [math.nan]))))
        by_scale = {str(s): float(np.mean([M[(p, s, g)] for g in groups])) for s in complete}
        out["priors"][p] = {"per_group": per_group, "chosen_scale": chosen, "overall": float(np.mean(list(per_group.values()))),
                            "per_level": {f"{nz:g}px/{dp:g}": float(np.nanmean(v)) for (nz, dp), v in per_level.items()},
                            "by_scale_all_groups": by_scale}
    base_name = "none" if "none" in out["priors"] else next((p for p in out["priors"] if p.startswith("none")), None)
    if base_name is not None:
        base = out["priors"][base_name]
        for p, d in out["priors"].items():
            d["change_vs_none_pct"] = 100 * (d["overall"] / base["overall"] - 1)
            d["worse_than_none_groups"] = [g for g in groups if d["per_group"][g] > base["per_group"][g]]
    return out


def markdown(s: dict) -> str:
    groups = s["groups"]
    head = ["prior", *groups, "overall", "vs none"]
    lines = ["PA-MPJPE (mm, all 24 joints) per held-out group; each group's weight scale chosen on the other "
             "groups.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p, d in s["priors"].items():
        cells = [p] + [f"{d['per_group'][g]:.1f}" for g in groups] + [f"**{d['overall']:.1f}**",
                                                                      f"{d.get('change_vs_none_pct', 0):+.1f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    lv = list(next(iter(s["priors"].values()))["per_level"]) if s["priors"] else []
    lines += ["", "By 2D noise / keypoint dropout (mean over groups, tuned scales):", "",
              "| prior | " + " | ".join(lv) + " |", "|" + "---|" * (len(lv) + 1)]
    for p, d in s["priors"].items():
        lines.append(f"| {p} | " + " | ".join(f"{d['per_level'][k]:.1f}" for k in lv) + " |")
    lines += ["", "Mean over all groups at each fixed weight scale (what a shipped default would see):", ""]
    for p, d in s["priors"].items():
        lines.append(f"- {p}: " + ", ".join(f"×{k}: {v:.1f}" for k, v in d["by_scale_all_groups"].items())
                     + "; chosen per group: " + ", ".join(f"{g} ×{d['chosen_scale'][g]:g}" for g in groups))
    return "\n".join(lines) + "\n"
