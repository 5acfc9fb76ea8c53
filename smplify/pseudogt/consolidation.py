"""Consolidation: every finished chunk's samples stacked (sorted by id) into ``pseudo_gt.npz`` and
sorted into accepted and rejected by :class:`Thresholds` (``quality.csv``, ``accepted.txt``,
``rejected.csv``, ``summary.json``, ``quality_histograms.png``).

It streams: a first pass reads the chunk records (ids, inputs, quality: ~200 bytes a sample), a
second pass reads one chunk's arrays at a time and writes its rows at their sorted places in
``.npy`` files on disk, which are then packed into the npz. Memory does not grow with the
parameter arrays. A sample id that two chunks give to different inputs (merged folders of other
data) is an error naming both; the same input twice is kept once.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..errors import InputError
from ..fileio import atomic_write, atomic_write_text
from .chunks import ChunkStore, check_not_legacy

PARAM_KEYS = ("global_orient", "body_pose", "betas", "transl", "focal_length", "principal_point", "image_size")
QUALITY_KEYS = ("mean_error_px", "norm_error", "box_diagonal_px", "outside_keypoints", "prior_nll",
                "confident_keypoints", "converged", "flipped", "failed")
INT_QUALITY = {"outside_keypoints", "confident_keypoints"}
BOOL_QUALITY = {"converged", "flipped", "failed"}


@dataclass
class Thresholds:
    max_error: float = 0.05  # mean reprojection error / keypoint-box diagonal
    max_nll: float = 0.0  # GMM negative log-likelihood of the body pose
    min_keypoints: int = 8  # keypoints with confidence >= the fit's min_confidence
    require_converged: bool = False
    max_outside: int = 0  # confident keypoints more than half the photo's size beyond its border
    min_box_px: float = 8.0  # the confident keypoints' extent; below it they are degenerate (one pixel)

    def reasons(self, q: dict) -> List[str]:
        r = []
        if not np.isfinite(q["norm_error"]) or q["norm_error"] > self.max_error:
            r.append(f"reprojection error {q['norm_error']:.3f} of the box > {self.max_error}")
        if q["prior_nll"] > self.max_nll:
            r.append(f"pose prior NLL {q['prior_nll']:.1f} > {self.max_nll}")
        if q["confident_keypoints"] < self.min_keypoints:
            r.append(f"{q['confident_keypoints']} confident keypoints < {self.min_keypoints}")
        if q.get("outside_keypoints", 0) > self.max_outside:
            r.append(f"{q['outside_keypoints']} keypoints far outside the photo (> half its size beyond the border)")
        diag = q.get("box_diagonal_px", float("nan"))
        if not (np.isfinite(diag) and diag >= self.min_box_px):
            r.append(f"keypoints degenerate (they span {diag:.3g} px < {self.min_box_px})")
        if self.require_converged and not q["converged"]:
            r.append("did not converge")
        if q.get("failed"):
            r.append("optimisation diverged")
        return r


class _Index:
    """Pass 1: the fitted samples of every chunk (ids, inputs, quality), failures, workers."""

    def __init__(self, store: ChunkStore):
        self.chunks: List[str] = []  # chunk ids, in reading order
        self.rows_of: Dict[str, List[int]] = {}  # chunk -> its rows' positions in ids (-1: duplicate, dropped)
        self.ids: List[str] = []
        self.images: List[str] = []
        self.quality: List[List[float]] = []
        self.failed: Dict[str, dict] = {}
        self.workers: Dict[tuple, dict] = {}
        seen: Dict[str, tuple] = {}  # id -> (fingerprint, image, chunk)

        def first(sid, d, cid) -> bool:
            """True the first time an id is seen; an id seen before with another input is an error."""
            fp, img = d.get("fingerprint", ""), d.get("image", "")
            if sid not in seen:
                seen[sid] = (fp, img, cid)
                return True
            fp0, img0, c0 = seen[sid]
            if fp and fp0 and fp != fp0:
                raise InputError(f"sample id {sid} names two different inputs: {img0} (chunks/{c0}) and {img} "
                                 f"(chunks/{cid}); merge only folders made from the same data")
            return False

        for rec in store.records():
            cid = rec["chunk"]
            self.chunks.append(cid)
            rows = []
            for d in rec["samples"]:
                sid = d["id"]
                if first(sid, d, cid):
                    rows.append(len(self.ids))
                    self.ids.append(sid)
                    self.images.append(sys.intern(d.get("image") or ""))
                    q = d["quality"]
                    self.quality.append([float(q.get(k, 0) if q.get(k) is not None else np.nan) for k in QUALITY_KEYS])
                else:
                    rows.append(-1)
            self.rows_of[cid] = rows
            for d in rec["failed"]:
                if first(d["id"], d, cid):
                    self.failed[d["id"]] = {"id": d["id"], "image": d.get("image"), "reason": d["reason"]}
            for w in rec.get("workers", []):
                key = (w.get("role"), w.get("host"), w.get("pid"))
                agg = self.workers.setdefault(key, {"role": key[0], "host": key[1], "pid": key[2], "samples": 0,
                                                    "peak_rss_mb": 0.0})
                agg["samples"] += int(w.get("samples", 0))
                agg["peak_rss_mb"] = max(agg["peak_rss_mb"], float(w.get("peak_rss_mb", 0)))


def _q(row: List[float]) -> dict:
    return {k: (int(v) if k in INT_QUALITY else bool(v) if k in BOOL_QUALITY else v) for k, v in zip(QUALITY_KEYS, row)}


class _RowFile:
    """An ``.npy`` file of ``n`` rows written at given row positions, a chunk at a time (no memory map)."""

    def __init__(self, path: Path, n: int, row: np.ndarray):
        self.path, self.dtype, self.row_shape = path, row.dtype, row.shape
        self.fh = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.fh, {"descr": np.lib.format.dtype_to_descr(row.dtype),
                                                       "fortran_order": False, "shape": (n,) + row.shape})
        self.offset = self.fh.tell()
        self.row_bytes = row.nbytes
        self.fh.truncate(self.offset + n * self.row_bytes)

    def put(self, dest: np.ndarray, rows: np.ndarray, key: str, where: str) -> None:
        if rows.shape[1:] != self.row_shape or rows.dtype != self.dtype:
            raise InputError(f"{where}: {key} is {rows.dtype}{rows.shape[1:]}, other chunks hold "
                             f"{self.dtype}{self.row_shape} (fits of different body models cannot be stacked)")
        order = np.argsort(dest)
        dest, rows = dest[order], rows[order]
        breaks = np.flatnonzero(np.diff(dest) != 1) + 1  # runs of consecutive places: one write each
        for s, e in zip(np.r_[0, breaks], np.r_[breaks, len(dest)]):
            self.fh.seek(self.offset + int(dest[s]) * self.row_bytes)
            self.fh.write(np.ascontiguousarray(rows[s:e]).tobytes())

    def close(self) -> None:
        self.fh.close()


def _stack_chunks(store: ChunkStore, idx: _Index, rank: np.ndarray, tmpdir: Path) -> Dict[str, Path]:
    """Pass 2: every chunk's parameter arrays written at their sorted rows; {key: .npy path}."""
    files: Dict[str, _RowFile] = {}
    n = len(idx.ids)
    try:
        for cid in idx.chunks:
            rows = np.asarray(idx.rows_of[cid], np.int64)
            keep = np.flatnonzero(rows >= 0)
            if not len(keep):
                continue
            arrays = store.arrays(cid)
            for k in PARAM_KEYS:
                if k not in files:
                    files[k] = _RowFile(tmpdir / f"{k}.npy", n, arrays[k][0])
                files[k].put(rank[rows[keep]], arrays[k][keep], k, store.npz_path(cid))
    finally:
        for f in files.values():
            f.close()
    return {k: f.path for k, f in files.items()}


def _write_npz(path: Path, big: Dict[str, Path], small: Dict[str, np.ndarray]) -> None:
    """One uncompressed npz (as ``np.savez``) from .npy files on disk, copied through in blocks."""

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for k, p in big.items():
                zf.write(p, f"{k}.npy")
            for k, a in small.items():
                with zf.open(f"{k}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(a), allow_pickle=False)

    atomic_write(path, write)


def consolidate(out, thresholds: Thresholds = Thresholds()) -> dict:
    """Stack finished chunks' samples (sorted by id) and sort them into accepted and rejected."""
    out = Path(out)
    check_not_legacy(out)
    store = ChunkStore(out)
    idx = _Index(store)
    n = len(idx.ids)
    order = np.array(sorted(range(n), key=idx.ids.__getitem__), np.int64)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    reasons = [thresholds.reasons(_q(idx.quality[i])) for i in order]
    accepted = np.array([not r for r in reasons], bool)
    tmpdir = out / f".consolidate.{os.getpid()}.tmp"
    tmpdir.mkdir(exist_ok=True)
    try:
        big = _stack_chunks(store, idx, rank, tmpdir) if n else {}
        small: Dict[str, np.ndarray] = {k: np.zeros((0,)) for k in PARAM_KEYS if k not in big}
        small["ids"] = np.array([idx.ids[i] for i in order], dtype=str)
        models = {"body_model": [None] * n, "body_model_path": [None] * n}  # per sample: whose parameters
        for cid in idx.chunks:
            rows = idx.rows_of[cid]
            if any(r >= 0 for r in rows):
                with np.load(store.npz_path(cid), allow_pickle=False) as z:
                    for k in models:
                        vals = z[k].tolist()
                        for r, v in zip(rows, vals):
                            if r >= 0:
                                models[k][rank[r]] = sys.intern(v)
        for k, v in models.items():
            small[k] = np.array(v, dtype=str)
        small["accepted"] = accepted
        Q = np.array(idx.quality, float).reshape(n, len(QUALITY_KEYS))[order]
        for k in ("norm_error", "prior_nll", "confident_keypoints", "converged", "flipped"):
            small[k] = Q[:, QUALITY_KEYS.index(k)]
        _write_npz(out / "pseudo_gt.npz", big, small)
    finally:
        for f in tmpdir.glob("*"):
            f.unlink()
        tmpdir.rmdir()

    def write_csv(t):
        with open(t, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(("id", "image", "accepted") + QUALITY_KEYS)
            for j, i in enumerate(order):
                q = _q(idx.quality[i])
                w.writerow([idx.ids[i], idx.images[i], int(accepted[j])] + [q[k] for k in QUALITY_KEYS])

    atomic_write(out / "quality.csv", write_csv)
    atomic_write_text(out / "accepted.txt", "".join(f"{idx.ids[i]}\n" for j, i in enumerate(order) if accepted[j]))
    fitted_ids = set(idx.ids) if idx.failed else set()
    failed = [idx.failed[k] for k in sorted(idx.failed) if k not in fitted_ids]

    def write_rej(t):
        with open(t, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "reason"])
            w.writerows((idx.ids[i], "; ".join(r)) for i, r in zip(order, reasons) if r)
            w.writerows((f["id"], "failed: " + f["reason"]) for f in failed)

    atomic_write(out / "rejected.csv", write_rej)
    n_acc = int(accepted.sum())
    summary = {"samples": n + len(failed), "fitted": n, "accepted": n_acc, "rejected": n - n_acc,
               "failed": len(failed), "chunks": len(idx.chunks), "thresholds": thresholds.__dict__,
               "body_models": sorted(set(small["body_model_path"].tolist())),  # more than one: a resume changed --model
               "failures": failed[:20],
               "workers": sorted(idx.workers.values(), key=lambda w: (str(w["host"]), str(w["role"]), w["pid"] or 0))}
    _histograms(Q, accepted, out / "quality_histograms.png", thresholds)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _histograms(Q: np.ndarray, accepted: np.ndarray, path: Path, th: Thresholds) -> None:
    if not len(Q):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    for a, key, lim, lab in ((ax[0], "norm_error", th.max_error, "reprojection error / box diagonal"),
                             (ax[1], "prior_nll", th.max_nll, "GMM pose NLL"),
                             (ax[2], "confident_keypoints", th.min_keypoints, "confident keypoints")):
        v = Q[:, QUALITY_KEYS.index(key)]
        a.hist(v[np.isfinite(v)], bins=30, color="#6d8fbf")
        a.axvline(lim, color="r", ls="--", label="threshold")
        a.set_xlabel(lab)
        a.legend(fontsize=7)
    fig.suptitle(f"{int(accepted.sum())} accepted of {len(Q)} fitted")
    fig.tight_layout()
    atomic_write(path, lambda t: fig.savefig(t, dpi=100, format="png"))
    plt.close(fig)
