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
    """Pass 1: the fitted samples of every chunk, compactly (ids, an image number, quality as floats),
    sorted by id with duplicates resolved; failures; the processes that did the work."""

    def __init__(self, store: ChunkStore):
        self.store = store
        self.chunks: List[str] = []  # chunk ids, in reading order
        ids: List[str] = []  # every fitted row, in reading order
        chunk_of, image_of, quality = [], [], []  # per chunk: numpy arrays of its rows
        self.image_names: Dict[str, int] = {}
        self.failed: Dict[str, dict] = {}
        self.workers: Dict[tuple, dict] = {}
        for c, rec in enumerate(store.records()):
            cid = rec["chunk"]
            self.chunks.append(cid)
            rows = rec["samples"]
            ids += [d["id"] for d in rows]
            chunk_of.append(np.full(len(rows), c, np.int32))
            image_of.append(np.array([self.image_names.setdefault(d.get("image") or "", len(self.image_names))
                                      for d in rows], np.int32))
            quality.append(np.array([[np.nan if d["quality"].get(k) is None else float(d["quality"][k])
                                      for k in QUALITY_KEYS] for d in rows], float).reshape(len(rows), len(QUALITY_KEYS)))
            for d in rec["failed"]:
                old = self.failed.get(d["id"])
                if old is None:
                    self.failed[d["id"]] = dict(d, chunk=cid)
                else:
                    self._same_input(d["id"], [(old, old["chunk"]), (d, cid)])
            for w in rec.get("workers", []):
                key = (w.get("role"), w.get("host"), w.get("pid"))
                agg = self.workers.setdefault(key, {"role": key[0], "host": key[1], "pid": key[2], "samples": 0,
                                                    "peak_rss_mb": 0.0})
                agg["samples"] += int(w.get("samples", 0))
                agg["peak_rss_mb"] = max(agg["peak_rss_mb"], float(w.get("peak_rss_mb", 0)))
        cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)
        self.chunk_of, self.image_of = cat(chunk_of, np.int32), cat(image_of, np.int32)
        self.quality = np.concatenate(quality) if quality else np.zeros((0, len(QUALITY_KEYS)))
        self.row_in_chunk = np.concatenate([np.arange(len(x)) for x in chunk_of]) if chunk_of else np.zeros(0, int)
        # sorted by id, the first chunk first; an id again: the same input is kept once, another is an error
        order = sorted(range(len(ids)), key=ids.__getitem__)  # a stable sort: ties stay in reading order
        keep = [j for j in range(len(order)) if j == 0 or ids[order[j]] != ids[order[j - 1]]]
        if len(keep) < len(order):
            self._check_duplicates(ids, order)
        self.order = np.array([order[j] for j in keep], np.int64)  # sorted position -> row
        self.rank = np.full(len(ids), -1, np.int64)  # row -> sorted position (-1: a duplicate, dropped)
        self.rank[self.order] = np.arange(len(self.order))
        self.ids = ids
        fitted = {ids[r] for r in self.order} if self.failed else set()
        for sid in [k for k in self.failed if k in fitted]:  # failed once, fitted in another chunk
            del self.failed[sid]

    def _same_input(self, sid: str, entries) -> None:
        """entries: (sample dict, chunk id) of one id; different fingerprints are an error naming both."""
        (d0, c0), *rest = entries
        for d, c in rest:
            if d.get("fingerprint") and d0.get("fingerprint") and d["fingerprint"] != d0["fingerprint"]:
                raise InputError(f"sample id {sid} names two different inputs: {d0.get('image')} (chunks/{c0}) and "
                                 f"{d.get('image')} (chunks/{c}); merge only folders made from the same data")

    def _check_duplicates(self, ids: List[str], order: List[int]) -> None:
        """Look the duplicated ids' fingerprints up in their chunks' records (rare: overlapping folders)."""
        dup = {}
        for j in range(1, len(order)):
            if ids[order[j]] == ids[order[j - 1]]:
                dup.setdefault(ids[order[j]], {order[j - 1]}).add(order[j])
        rows = {r for rs in dup.values() for r in rs}
        wanted = {int(self.chunk_of[r]) for r in rows}
        found = {}
        for c, rec in enumerate(self.store.records()):
            if c in wanted:
                for i, d in enumerate(rec["samples"]):
                    found[(c, i)] = (d, rec["chunk"])
        for sid, rs in dup.items():
            self._same_input(sid, [found[(int(self.chunk_of[r]), int(self.row_in_chunk[r]))] for r in sorted(rs)])

    def __len__(self) -> int:
        return len(self.order)


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


def _stack_chunks(store: ChunkStore, idx: _Index, tmpdir: Path) -> Dict[str, Path]:
    """Pass 2: every chunk's parameter arrays written at their sorted rows; {key: .npy path}.
    Also collects each row's body model names (few distinct values) as numbers into a small table."""
    files: Dict[str, _RowFile] = {}
    n = len(idx)
    idx.models = {k: np.zeros(n, np.int32) for k in ("body_model", "body_model_path")}
    idx.model_names = {k: {} for k in idx.models}
    try:
        for c, cid in enumerate(idx.chunks):
            rows = np.flatnonzero(idx.chunk_of == c)
            dest = idx.rank[rows]
            keep = dest >= 0
            if not keep.any():
                continue
            arrays = store.arrays(cid)
            local = idx.row_in_chunk[rows][keep]
            for k in PARAM_KEYS:
                if k not in files:
                    files[k] = _RowFile(tmpdir / f"{k}.npy", n, arrays[k][0])
                files[k].put(dest[keep], arrays[k][local], k, store.npz_path(cid))
            for k, table in idx.model_names.items():
                names = arrays[k].tolist()
                idx.models[k][dest[keep]] = [table.setdefault(names[i], len(table)) for i in local]
    finally:
        for f in files.values():
            f.close()
    return {k: f.path for k, f in files.items()}


def _npy_entry(zf: zipfile.ZipFile, key: str, dtype, n: int, blocks) -> None:
    """An (n,) array written into the npz block by block (``blocks`` yields consecutive pieces)."""
    dtype = np.dtype(dtype)
    with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                                  "shape": (n,)})
        for b in blocks:
            fh.write(np.ascontiguousarray(b, dtype).tobytes())


BLOCK = 65536


def _string_column(zf, key: str, values, n: int) -> None:
    """A str array from a sequence of n Python strings (or a table lookup), in blocks of BLOCK."""
    width = max([len(v) for v in values] or [1]) or 1
    _npy_entry(zf, key, f"<U{width}", n, (np.array(values[i: i + BLOCK], f"<U{width}") for i in range(0, n, BLOCK)))


def _write_npz(path: Path, idx: _Index, big: Dict[str, Path], accepted: np.ndarray) -> None:
    """``pseudo_gt.npz`` (uncompressed, as ``np.savez``): the parameter .npy files copied through,
    the per-sample columns written in blocks."""
    n = len(idx)

    class _Sorted:  # idx.ids in sorted order, sliceable, without a second list
        def __getitem__(self, sl):
            return [idx.ids[r] for r in idx.order[sl]]

        def __iter__(self):
            return (idx.ids[r] for r in idx.order)

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for k in PARAM_KEYS:
                if k in big:
                    zf.write(big[k], f"{k}.npy")
                else:
                    _npy_entry(zf, k, float, 0, [])
            _string_column(zf, "ids", _Sorted(), n)
            for k, table in getattr(idx, "model_names", {}).items():  # per sample: whose parameters
                names = np.array(list(table) or [""], dtype=str)
                _npy_entry(zf, k, names.dtype, n, (names[idx.models[k][i: i + BLOCK]] for i in range(0, n, BLOCK)))
            if not n:
                for k in ("body_model", "body_model_path"):
                    _npy_entry(zf, k, "<U1", 0, [])
            _npy_entry(zf, "accepted", bool, n, [accepted])
            for k in ("norm_error", "prior_nll", "confident_keypoints", "converged", "flipped"):
                _npy_entry(zf, k, float, n, [idx.quality[idx.order, QUALITY_KEYS.index(k)]])

    atomic_write(path, write)


def consolidate(out, thresholds: Thresholds = Thresholds()) -> dict:
    """Stack finished chunks' samples (sorted by id) and sort them into accepted and rejected."""
    out = Path(out)
    check_not_legacy(out)
    store = ChunkStore(out)
    idx = _Index(store)
    n = len(idx)
    Q = idx.quality
    accepted = np.array([not thresholds.reasons(_q(Q[r])) for r in idx.order], bool)
    tmpdir = out / f".consolidate.{os.getpid()}.tmp"
    tmpdir.mkdir(exist_ok=True)
    try:
        big = _stack_chunks(store, idx, tmpdir) if n else {}
        _write_npz(out / "pseudo_gt.npz", idx, big, accepted)
    finally:
        for f in tmpdir.glob("*"):
            f.unlink()
        tmpdir.rmdir()
    images = list(idx.image_names)

    def write_csv(t):
        with open(t, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(("id", "image", "accepted") + QUALITY_KEYS)
            for j, r in enumerate(idx.order):
                q = _q(Q[r])
                w.writerow([idx.ids[r], images[idx.image_of[r]], int(accepted[j])] + [q[k] for k in QUALITY_KEYS])

    atomic_write(out / "quality.csv", write_csv)
    atomic_write(out / "accepted.txt", lambda t: Path(t).write_text(
        "".join(f"{idx.ids[r]}\n" for j, r in enumerate(idx.order) if accepted[j])))
    failed = [{"id": k, "image": idx.failed[k].get("image"), "reason": idx.failed[k]["reason"]}
              for k in sorted(idx.failed)]

    def write_rej(t):
        with open(t, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "reason"])
            w.writerows((idx.ids[r], "; ".join(thresholds.reasons(_q(Q[r]))))
                        for j, r in enumerate(idx.order) if not accepted[j])
            w.writerows((f["id"], "failed: " + f["reason"]) for f in failed)

    atomic_write(out / "rejected.csv", write_rej)
    n_acc = int(accepted.sum())
    models = sorted(getattr(idx, "model_names", {}).get("body_model_path", {}))
    summary = {"samples": n + len(failed), "fitted": n, "accepted": n_acc, "rejected": n - n_acc,
               "failed": len(failed), "chunks": len(idx.chunks), "thresholds": thresholds.__dict__,
               "body_models": models,  # more than one: a resume changed --model
               "failures": failed[:20],
               "workers": sorted(idx.workers.values(), key=lambda w: (str(w["host"]), str(w["role"]), w["pid"] or 0))}
    _histograms(Q[idx.order], accepted, out / "quality_histograms.png", thresholds)
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
