"""Run one fitting configuration over synthetic cases: metrics per case, CSV + markdown.

Rows are appended to the CSV as each batch finishes (and flushed), so an interrupted run
leaves every finished case readable.
"""
from __future__ import annotations

import csv
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch

from ..fitter import Fitter
from ..metrics import mpjpe, pa_mpjpe
from .synthetic import SyntheticCase, iter_batches

FIELDS = ["prior", "case", "noise_px", "dropout", "mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "reproj_px", "prior_nll",
          "iterations", "time_s", "flipped", "converged", "failed"]
METRICS = ["mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "reproj_px", "prior_nll", "iterations", "time_s"]


def evaluate_batch(fitter: Fitter, cases: Sequence[SyntheticCase], label: str, yardstick=None) -> List[dict]:
    """Fit a batch of cases and measure each against its truth."""
    t0 = time.perf_counter()
    results = fitter.fit([c.fit_input for c in cases])
    dt = (time.perf_counter() - t0) / max(1, len(cases))
    body = fitter.body
    rows = []
    with torch.no_grad():
        P = lambda name: torch.tensor(np.stack([getattr(r, name) for r in results]))
        T = lambda name: torch.tensor(np.stack([getattr(c, name) for c in cases]))
        fit = body.mesh(P("global_orient"), P("body_pose"), P("betas"), P("transl"))
        true = body.mesh(T("global_orient"), T("body_pose"), T("betas"), T("transl"))
        e_mpjpe = mpjpe(fit.joints, true.joints) * 1000
        e_pa = pa_mpjpe(fit.joints, true.joints) * 1000
        pve = ((fit.vertices - fit.joints[:, :1]) - (true.vertices - true.joints[:, :1])).norm(dim=-1).mean(-1) * 1000
        nll = yardstick.nll(P("body_pose")[:, :63]) if yardstick is not None else torch.full((len(cases),), float("nan"))
    for i, (c, r) in enumerate(zip(cases, results)):
        rows.append({"prior": label, "case": c.case_id, "noise_px": c.noise_px, "dropout": c.dropout,
                     "mpjpe_mm": float(e_mpjpe[i]), "pa_mpjpe_mm": float(e_pa[i]), "pve_mm": float(pve[i]),
                     "reproj_px": r.mean_error_px, "prior_nll": float(nll[i]), "iterations": r.iterations,
                     "time_s": dt, "flipped": int(r.flipped), "converged": int(r.converged), "failed": int(r.failed),
                     "stage_losses": r.stage_losses})
    return rows


def run_cases(fitter: Fitter, cases: Sequence[SyntheticCase], csv_path: Path, label: str, batch_size: int = 64,
              yardstick=None, progress: Optional[Callable] = None) -> List[dict]:
    """Fit all cases in batches, appending each batch's rows to ``csv_path``."""
    csv_path = Path(csv_path)
    new = not csv_path.exists()
    all_rows = []
    with open(csv_path, "a", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        for batch in iter_batches(cases, batch_size):
            rows = evaluate_batch(fitter, batch, label, yardstick)
            w.writerows(rows)
            fh.flush()
            all_rows += rows
            if progress:
                progress(len(batch))
    return all_rows


def read_rows(csv_path) -> List[dict]:
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in FIELDS[2:]:
            r[k] = float(r[k])
    return rows


def summarise(rows: Iterable[dict], by=("prior", "noise_px", "dropout")) -> Dict[tuple, dict]:
    """Mean and median of each metric per group."""
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in by)].append(r)
    out = {}
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        s = {"n": len(rs)}
        for m in METRICS:
            v = np.array([r[m] for r in rs], float)
            v = v[np.isfinite(v)]
            s[m + "_mean"] = float(v.mean()) if len(v) else math.nan
            s[m + "_median"] = float(np.median(v)) if len(v) else math.nan
        s["failed"] = int(sum(r["failed"] for r in rs))
        out[key] = s
    return out


def markdown(summary: Dict[tuple, dict], by=("prior", "noise_px", "dropout")) -> str:
    head = list(by) + ["n", "MPJPE mm", "PA-MPJPE mm", "PVE mm", "2D px", "GMM NLL", "iters", "ms/fit", "failed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, s in summary.items():
        cells = [str(k) for k in key] + [str(s["n"])]
        for m in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "reproj_px", "prior_nll"):
            cells.append(f"{s[m + '_mean']:.1f} / {s[m + '_median']:.1f}")
        cells += [f"{s['iterations_mean']:.0f}", f"{s['time_s_mean'] * 1000:.1f}", str(s["failed"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nCells are mean / median."
