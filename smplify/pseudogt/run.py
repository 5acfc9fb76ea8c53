"""The resumable pseudo-GT run: a dataset of photos or keypoints in, SMPL pseudo-ground-truth out.

Design
------
* Samples are enumerated lazily and deterministically (sorted paths; COCO annotations in
  file order), each with a stable id. ``--shard K/N`` keeps every N-th sample from K.
* Samples are fitted in fixed chunks of ``--batch`` consecutive samples, so a chunk always
  holds the same samples and fits to the same numbers, however often the run is resumed.
* Each sample is written as ``samples/<id>.npz`` then ``samples/<id>.json`` (the JSON last,
  both by temp-file-and-rename): a sample with its JSON is finished, anything else is not.
  A failed sample gets ``failed/<id>.json`` with the reason. A rerun skips finished and
  failed samples, so a run killed at any moment (even SIGKILL) resumes to the same result.
* Only one chunk is in memory: peak memory does not grow with the dataset.
* At the end, ``consolidate`` stacks every finished sample (sorted by id) into
  ``pseudo_gt.npz``, writes ``quality.csv``, ``accepted.txt``, ``rejected.csv`` (with the
  reason), ``summary.json`` and ``quality_histograms.png``. ``smplify pseudo-gt-merge``
  combines shard folders and consolidates them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import one_line
from ..fileio import atomic_savez, atomic_write_text
from .consolidation import Thresholds, consolidate
from .samples import enumerate_samples


def _quality(res, fit_input, nll: float, min_confidence: float) -> dict:
    """The numbers the thresholds judge a fit by; keypoints below ``min_confidence`` count as missing."""
    w = fit_input.confidence >= min_confidence
    xy = fit_input.xy[w]
    diag = float(np.linalg.norm(xy.max(0) - xy.min(0))) if len(xy) > 1 else float("nan")
    return {"mean_error_px": res.mean_error_px, "norm_error": res.mean_error_px / diag if diag > 0 else float("inf"),
            "prior_nll": nll, "confident_keypoints": int(w.sum()), "converged": bool(res.converged),
            "flipped": bool(res.flipped), "failed": bool(res.failed), "box_diagonal_px": diag}


def run_pseudo_gt(src, out, prior: str = "gmm", batch: int = 64, shard=(0, 1), thresholds: Thresholds = Thresholds(),
                  config=None, progress: bool = True, max_chunks: Optional[int] = None, model: Optional[str] = None,
                  gender: str = "neutral", focal: Optional[float] = None) -> dict:
    """Fit every (unfinished) sample of the shard; then consolidate. Returns the summary.

    model/gender: the body model (as for ``smplify fit --model/--gender``); focal: the focal length
    in pixels for every sample (default: EXIF, else a 55° field of view). A bad ``src`` raises
    :class:`InputError` before any output is written.
    """
    import torch
    from tqdm import tqdm

    from .. import api
    from ..outputs.writers import result_arrays, result_report

    src, out = Path(src), Path(out)
    k, n = shard
    samples = [s for i, s in enumerate(enumerate_samples(src)) if i % n == k]  # InputError before any output
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "failed").mkdir(exist_ok=True)
    for stale in list((out / "samples").glob(".*.tmp")) + list((out / "failed").glob(".*.tmp")):
        stale.unlink()  # half-written files of a killed run: never read as finished
    done = lambda sid: (out / "samples" / f"{sid}.json").exists() or (out / "failed" / f"{sid}.json").exists()
    fitter = api.make_fitter(prior, model, config, gender=gender)
    yard = api.load_prior("gmm", None)
    chunks = [samples[i : i + batch] for i in range(0, len(samples), batch)]
    todo = [c for c in chunks if not all(done(sid) for sid, _ in c)]
    t0 = time.time()
    bar = tqdm(total=sum(len(c) for c in todo), desc="pseudo-gt", unit="sample", disable=not progress)
    for ci, chunk in enumerate(todo):
        if max_chunks is not None and ci >= max_chunks:
            break
        items, ids = [], []
        for sid, load in chunk:
            try:
                kps = load()
                items.append(api.keypoints_to_input(kps, fitter.body, focal=focal, tag=sid))
                ids.append(sid)
            except Exception as exc:  # bad photo / nobody / malformed entry: record and go on
                if not done(sid):
                    atomic_write_text(out / "failed" / f"{sid}.json", json.dumps({"id": sid, "reason": one_line(exc)}))
        if items:
            results = fitter.fit(items)
            with torch.no_grad():
                nll = yard.nll(torch.tensor(np.stack([r.body_pose[:63] for r in results]))).numpy()
            for sid, it, res, nl in zip(ids, items, results, nll):
                if done(sid):
                    continue
                q = _quality(res, it, float(nl), fitter.config.min_confidence)
                arrays = dict(result_arrays(res, fitter.body.data.path), kp_index=it.index, kp_xy=it.xy,
                              kp_confidence=it.confidence, kp_weight=it.weight)
                atomic_savez(out / "samples" / f"{sid}.npz", **arrays)
                rep = dict(result_report(res), id=sid, quality=q)
                atomic_write_text(out / "samples" / f"{sid}.json", json.dumps(rep, default=float))
        bar.update(len(chunk))
    bar.close()
    summary = consolidate(out, thresholds)
    summary["fit_time_s"] = round(time.time() - t0, 2)
    summary["throughput_samples_per_s"] = round(sum(len(c) for c in todo) / max(1e-9, time.time() - t0), 2)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
