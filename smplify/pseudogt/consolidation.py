"""Consolidation: every finished sample stacked (sorted by id) into ``pseudo_gt.npz`` and sorted into
accepted and rejected by :class:`Thresholds` (``quality.csv``, ``accepted.txt``, ``rejected.csv``,
``summary.json``, ``quality_histograms.png``)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np

from ..fileio import atomic_savez, atomic_write, atomic_write_text


@dataclass
class Thresholds:
    max_error: float = 0.05  # mean reprojection error / keypoint-box diagonal
    max_nll: float = 0.0  # GMM negative log-likelihood of the body pose
    min_keypoints: int = 8  # keypoints with confidence >= the fit's min_confidence
    require_converged: bool = False

    def reasons(self, q: dict) -> List[str]:
        r = []
        if not np.isfinite(q["norm_error"]) or q["norm_error"] > self.max_error:
            r.append(f"reprojection error {q['norm_error']:.3f} of the box > {self.max_error}")
        if q["prior_nll"] > self.max_nll:
            r.append(f"pose prior NLL {q['prior_nll']:.1f} > {self.max_nll}")
        if q["confident_keypoints"] < self.min_keypoints:
            r.append(f"{q['confident_keypoints']} confident keypoints < {self.min_keypoints}")
        if self.require_converged and not q["converged"]:
            r.append("did not converge")
        if q.get("failed"):
            r.append("optimisation diverged")
        return r


def consolidate(out, thresholds: Thresholds = Thresholds()) -> dict:
    """Stack finished samples (sorted by id) and sort them into accepted and rejected."""
    out = Path(out)
    ids = sorted(p.stem for p in (out / "samples").glob("*.json") if not p.name.startswith("."))
    keys = ("global_orient", "body_pose", "betas", "transl", "focal_length", "principal_point", "image_size")
    stacks = {k: [] for k in keys}
    models = {"body_model": [], "body_model_path": []}
    rows, rejected = [], []
    for sid in ids:
        rep = json.loads((out / "samples" / f"{sid}.json").read_text())
        with np.load(out / "samples" / f"{sid}.npz", allow_pickle=False) as z:
            for k in keys:
                stacks[k].append(z[k].reshape(-1) if k in ("focal_length", "principal_point", "image_size") else z[k][0])
            for k in models:
                models[k].append(str(z[k]) if k in z.files else "")
        q = rep["quality"]
        reasons = thresholds.reasons(q)
        rows.append(dict(id=sid, image=rep.get("image"), accepted=int(not reasons), **q))
        if reasons:
            rejected.append((sid, "; ".join(reasons)))
    failed = sorted((json.loads(p.read_text()) for p in (out / "failed").glob("*.json") if not p.name.startswith(".")),
                    key=lambda d: d["id"])
    arrays = {k: np.stack(v) if v else np.zeros((0,)) for k, v in stacks.items()}
    arrays["ids"] = np.array(ids)
    for k, v in models.items():  # per sample: which body model the parameters belong to
        arrays[k] = np.array(v, dtype=str)
    arrays["accepted"] = np.array([r["accepted"] for r in rows], bool)
    for q in ("norm_error", "prior_nll", "confident_keypoints", "converged", "flipped"):
        arrays[q] = np.array([r[q] for r in rows], float)
    atomic_savez(out / "pseudo_gt.npz", **arrays)

    def write_csv(t):
        with open(t, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["id", "image", "accepted", "mean_error_px", "norm_error", "box_diagonal_px",
                                    "prior_nll", "confident_keypoints", "converged", "flipped", "failed"])
            w.writeheader()
            w.writerows(rows)

    atomic_write(out / "quality.csv", write_csv)
    atomic_write_text(out / "accepted.txt", "".join(f"{r['id']}\n" for r in rows if r["accepted"]))

    def write_rej(t):
        with open(t, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "reason"])
            w.writerows(rejected + [(f["id"], "failed: " + f["reason"]) for f in failed])

    atomic_write(out / "rejected.csv", write_rej)
    summary = {"samples": len(ids) + len(failed), "fitted": len(ids), "accepted": int(arrays["accepted"].sum()),
               "rejected": len(rejected), "failed": len(failed), "thresholds": thresholds.__dict__,
               "body_models": sorted(set(models["body_model_path"])),  # more than one: a resume changed --model
               "failures": failed[:20]}
    _histograms(rows, out / "quality_histograms.png", thresholds)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _histograms(rows, path: Path, th: Thresholds) -> None:
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    for a, key, lim, lab in ((ax[0], "norm_error", th.max_error, "reprojection error / box diagonal"),
                             (ax[1], "prior_nll", th.max_nll, "GMM pose NLL"),
                             (ax[2], "confident_keypoints", th.min_keypoints, "confident keypoints")):
        v = np.array([r[key] for r in rows], float)
        a.hist(v[np.isfinite(v)], bins=30, color="#6d8fbf")
        a.axvline(lim, color="r", ls="--", label="threshold")
        a.set_xlabel(lab)
        a.legend(fontsize=7)
    fig.suptitle(f"{sum(r['accepted'] for r in rows)} accepted of {len(rows)} fitted")
    fig.tight_layout()
    atomic_write(path, lambda t: fig.savefig(t, dpi=100, format="png"))
    plt.close(fig)
