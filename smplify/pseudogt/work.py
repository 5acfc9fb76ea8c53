"""The work of one chunk, wherever it runs (this process, a detector process, a Ray worker):
load its samples (the detector on photos), fit them in one batch, judge each fit's quality, and
return the chunk's arrays and record for :class:`~smplify.pseudogt.chunks.ChunkStore`.

Everything here is picklable or built once per process (the detector by
:mod:`smplify.keypoints.detect`, the fitter by :func:`chunk_fitter`).
"""
from __future__ import annotations

import os
import resource
import socket
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..config import FitConfig
from ..errors import one_line
from .chunks import Chunk, ChunkRecord, ChunkStore
from .samples import Sample, load_sample

FAR_OUTSIDE = 0.5  # a keypoint beyond the photo by more than this fraction of its width/height is "far outside"
#: torch threads a chunk is fitted with, in every process: float results depend on the thread count
#: (the split of sums), so one count everywhere makes a chunk's numbers the same wherever it runs
#: (this process, a worker process, a Ray worker on another host); parallelism comes from processes.
FIT_THREADS = 1


@dataclass(frozen=True)
class FitSpec:
    """How every chunk is fitted (the same in every process): prior name, body model file and
    gender, fit configuration, and a focal length in pixels for every sample (None: EXIF/default)."""

    prior: str = "gmm"
    model: Optional[str] = None
    gender: str = "neutral"
    config: Optional[FitConfig] = None
    focal: Optional[float] = None


@dataclass
class Loaded:
    """A sample after loading: its keypoints and fingerprint, or why it cannot be fitted."""

    sample: Sample
    keypoints: object = None
    fingerprint: str = ""
    error: Optional[str] = None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MiB): VmHWM where there is /proc (ru_maxrss
    would carry a big parent's peak across exec), else ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_info(role: str, samples: int) -> dict:
    return {"role": role, "host": socket.gethostname(), "pid": os.getpid(), "samples": samples,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def load_samples(samples: Sequence[Sample]) -> Tuple[List[Loaded], dict]:
    """Load (detect) every sample; a bad one is recorded with its one-line reason, not raised."""
    out = []
    for s in samples:
        try:
            kps, fp = load_sample(s)
            out.append(Loaded(s, kps, fp))
        except Exception as exc:  # bad photo / nobody / malformed entry: record and go on
            out.append(Loaded(s, error=one_line(exc)))
    return out, worker_info("detect" if any(s.kind == "photo" for s in samples) else "load", len(samples))


def quality(res, fit_input, nll: float, min_confidence: float) -> dict:
    """The numbers the thresholds judge a fit by; keypoints below ``min_confidence`` count as missing.

    box_diagonal_px: the confident keypoints' extent (0 when they all sit on one pixel);
    outside_keypoints: confident keypoints more than half the photo's size beyond its border.
    """
    w = fit_input.confidence >= min_confidence
    xy = fit_input.xy[w].astype(np.float64)
    diag = float(np.linalg.norm(xy.max(0) - xy.min(0))) if len(xy) > 1 else float("nan")
    W, H = (float(v) for v in fit_input.camera.image_size)
    far = ((xy[:, 0] < -FAR_OUTSIDE * W) | (xy[:, 0] > (1 + FAR_OUTSIDE) * W) |
           (xy[:, 1] < -FAR_OUTSIDE * H) | (xy[:, 1] > (1 + FAR_OUTSIDE) * H))
    err = float(res.mean_error_px)
    return {"mean_error_px": err, "norm_error": err / diag if diag > 0 and np.isfinite(diag) else float("inf"),
            "prior_nll": nll, "confident_keypoints": int(w.sum()), "converged": bool(res.converged),
            "flipped": bool(res.flipped), "failed": bool(res.failed), "box_diagonal_px": diag,
            "outside_keypoints": int(far.sum())}


class ChunkFitter:
    """A fitter and the GMM that scores poses, built once per process."""

    def __init__(self, spec: FitSpec):
        from .. import api

        self.spec = spec
        self.fitter = api.make_fitter(spec.prior, spec.model, spec.config, gender=spec.gender)
        self.yard = api.load_prior("gmm", None)

    def fit(self, chunk: Chunk, loaded: Sequence[Loaded], workers: Sequence[dict] = ()) -> Tuple[ChunkRecord, Dict]:
        import torch

        from .. import api
        from ..outputs.writers import result_arrays

        t0 = time.perf_counter()
        rec = ChunkRecord(chunk.id)
        items, keep = [], []
        for ld in loaded:
            s = ld.sample
            if ld.error is None:
                try:
                    items.append(api.keypoints_to_input(ld.keypoints, self.fitter.body, focal=self.spec.focal, tag=s.id))
                    keep.append(ld)
                    continue
                except Exception as exc:
                    ld.error = one_line(exc)
            rec.failed.append({"id": s.id, "image": s.path, "index": s.index, "fingerprint": ld.fingerprint,
                               "reason": ld.error})
        arrays: Dict[str, np.ndarray] = {}
        if items:
            threads = torch.get_num_threads()
            torch.set_num_threads(FIT_THREADS)
            try:
                results = self.fitter.fit(items)
            finally:
                torch.set_num_threads(threads)
            with torch.no_grad():
                nll = self.yard.nll(torch.tensor(np.stack([r.body_pose[:63] for r in results]))).numpy()
            rows = [result_arrays(r, self.fitter.body.data.path) for r in results]
            for k in ("global_orient", "body_pose", "betas", "transl"):
                arrays[k] = np.concatenate([r[k] for r in rows])
            for k in ("focal_length", "principal_point", "image_size"):
                arrays[k] = np.stack([r[k].reshape(-1) for r in rows])
            for k in ("body_model", "body_model_path"):
                arrays[k] = np.array([str(r[k]) for r in rows])
            M = max(len(it.index) for it in items)
            pad = lambda a: np.concatenate([a, np.zeros((M - len(a),) + a.shape[1:], a.dtype)])
            arrays["kp_count"] = np.array([len(it.index) for it in items], np.int32)
            for k, attr in (("kp_index", "index"), ("kp_xy", "xy"), ("kp_confidence", "confidence"),
                            ("kp_weight", "weight")):
                arrays[k] = np.stack([pad(np.asarray(getattr(it, attr))) for it in items])
            for ld, it, res, nl in zip(keep, items, results, nll):
                rec.samples.append({"id": ld.sample.id, "image": ld.sample.path, "index": ld.sample.index,
                                    "fingerprint": ld.fingerprint,
                                    "quality": quality(res, it, float(nl), self.fitter.config.min_confidence)})
        rec.seconds = round(time.perf_counter() - t0, 3)
        rec.workers = list(workers) + [worker_info("fit", len(items))]
        return rec, arrays


_FITTERS: Dict[str, ChunkFitter] = {}


def chunk_fitter(spec: FitSpec) -> ChunkFitter:
    """The process's :class:`ChunkFitter` for ``spec`` (built on first use, kept for the next chunks)."""
    key = repr(spec)
    if key not in _FITTERS:
        _FITTERS.clear()
        _FITTERS[key] = ChunkFitter(spec)
    return _FITTERS[key]


def run_chunk(spec: FitSpec, out: str, chunk: Chunk) -> dict:
    """Load, fit and write one chunk (a Ray task's body). Idempotent: a finished chunk is left as is.

    While it works, ``chunks/.<chunk id>.running`` names the process (host, pid), for operators and
    for the test that kills a worker mid-chunk.
    """
    import json

    store = ChunkStore(out)
    if store.finished(chunk.id):
        return {"chunk": chunk.id, "samples": len(chunk.samples), "skipped": True}
    running = store.dir / f".{chunk.id}.running"
    running.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    try:
        loaded, info = load_samples(chunk.samples)
        rec, arrays = chunk_fitter(spec).fit(chunk, loaded, [info])
        store.write(rec, arrays)
    finally:
        running.unlink(missing_ok=True)
    return {"chunk": chunk.id, "samples": len(chunk.samples), "skipped": False}
