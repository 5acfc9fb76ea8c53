"""Run one fitting configuration over synthetic cases: metrics per case, CSV + markdown.

Rows are appended to the CSV as each batch finishes (and flushed), so an interrupted run
leaves every finished case readable. The CSV holds one number per metric (``FIELDS``);
each fit's convergence — the objective after every iteration (``loss_curve``, all stages
concatenated) and after every stage (``stage_losses``) — goes, batch by batch, to a
JSON-lines file beside it (:data:`CURVES_NAME`), one object per fit.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch

from ..fitting import Fitter
from ..metrics import mpjpe, pa_mpjpe
from .synthetic import SyntheticCase, iter_batches

FIELDS = ["prior", "case", "noise_px", "dropout", "mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "reproj_px", "prior_nll",
          "iterations", "time_s", "flipped", "converged", "failed"]
METRICS = ["mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "reproj_px", "prior_nll", "iterations", "time_s"]
CURVES_NAME = "curves.jsonl"  # per fit: prior, case, noise_px, dropout, loss_curve, stage_losses, stage_iterations


def evaluate_batch(fitter: Fitter, cases: Sequence[SyntheticCase], label: str, yardstick=None,
                   keep: Optional[dict] = None) -> List[dict]:
    """Fit a batch of cases and measure each against its truth. ``keep``: {fit_input tag: None}; the
    FitResult of each of those cases is stored in it (e.g. for a qualitative grid without refitting)."""
    t0 = time.perf_counter()
    results = fitter.fit([c.fit_input for c in cases])
    if keep is not None:
        for c, r in zip(cases, results):
            if c.fit_input.tag in keep:
                keep[c.fit_input.tag] = r
    dt = (time.perf_counter() - t0) / max(1, len(cases))
    body = fitter.body  # on the fitter's device
    dev = fitter.device
    rows = []
    with torch.no_grad():
        P = lambda name: torch.tensor(np.stack([getattr(r, name) for r in results]), device=dev)
        T = lambda name: torch.tensor(np.stack([getattr(c, name) for c in cases]), device=dev)
        fit = body.mesh(P("global_orient"), P("body_pose"), P("betas"), P("transl"))
        true = body.mesh(T("global_orient"), T("body_pose"), T("betas"), T("transl"))
        e_mpjpe = mpjpe(fit.joints, true.joints) * 1000
        e_pa = pa_mpjpe(fit.joints, true.joints) * 1000
        pve = ((fit.vertices - fit.joints[:, :1]) - (true.vertices - true.joints[:, :1])).norm(dim=-1).mean(-1) * 1000
        nll = yardstick.nll(P("body_pose")[:, :63].cpu()) if yardstick is not None else torch.full((len(cases),), float("nan"))
    for i, (c, r) in enumerate(zip(cases, results)):
        rows.append({"prior": label, "case": c.case_id, "noise_px": c.noise_px, "dropout": c.dropout,
                     "mpjpe_mm": float(e_mpjpe[i]), "pa_mpjpe_mm": float(e_pa[i]), "pve_mm": float(pve[i]),
                     "reproj_px": r.mean_error_px, "prior_nll": float(nll[i]), "iterations": r.iterations,
                     "time_s": dt, "flipped": int(r.flipped), "converged": int(r.converged), "failed": int(r.failed),
                     # not CSV columns: written to the curves file by run_cases
                     "stage_losses": list(r.stage_losses), "loss_curve": list(r.loss_curve),
                     "stage_iterations": list(r.stage_iterations)})
    return rows


def curve_record(row: dict) -> dict:
    """The JSON-lines record of one fit's convergence."""
    return {k: row.get(k) for k in ("prior", "case", "noise_px", "dropout", "iterations", "loss_curve", "stage_losses",
                                 "stage_iterations")}


def read_curves(path) -> List[dict]:
    """Records of :data:`CURVES_NAME` (a torn last line of an interrupted run is skipped)."""
    out = []
    if not Path(path).exists():
        return out
    with open(path) as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def run_cases(fitter: Fitter, cases: Sequence[SyntheticCase], csv_path: Path, label: str, batch_size: int = 64,
              yardstick=None, progress: Optional[Callable] = None, curves_path=None,
              keep: Optional[dict] = None) -> List[dict]:
    """Fit all cases in batches, appending each batch's rows to ``csv_path`` and, when
    ``curves_path`` is given, each fit's loss curve to that JSON-lines file (``keep``: see
    :func:`evaluate_batch`)."""
    csv_path = Path(csv_path)
    new = not csv_path.exists()
    all_rows = []
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(open(csv_path, "a", newline=""))
        curves = stack.enter_context(open(curves_path, "a")) if curves_path is not None else None
        w = csv.DictWriter(fh, FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        for batch in iter_batches(cases, batch_size):
            rows = evaluate_batch(fitter, batch, label, yardstick, **({"keep": keep} if keep is not None else {}))
            w.writerows(rows)
            fh.flush()
            if curves is not None:
                curves.write("".join(json.dumps(curve_record(r)) + "\n" for r in rows))
                curves.flush()
            all_rows += rows
            if progress:
                progress(len(batch))
    return all_rows


def read_rows(csv_path) -> List[dict]:
    """The CSV's rows with numbers as floats (a torn last row of a killed run is skipped)."""
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        try:
            for k in FIELDS[2:]:
                r[k] = float(r[k])
        except (TypeError, ValueError):
            continue
        out.append(r)
    return out


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
