"""Compare two runs' outputs (before/after a refactor): accuracy CSVs, loss curves, fitted npz parameters.

    python -m benchmarks.compare_outputs BEFORE_DIR AFTER_DIR [BEFORE_DIR AFTER_DIR ...]

Per pair of folders: every results.csv / images.csv column except timings must be equal; curves.jsonl
curves equal to float tolerance; every .npz array equal to float tolerance (strings exactly; of a
``*_path`` only the file name); every .json
report equal except times. Prints one line per pair and exits 1 if any differs.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

TIMING = {"time_s", "fit_time_s", "throughput_samples_per_s", "ms_per_fit"}
RTOL, ATOL = 1e-5, 1e-6


def _csv(a: Path, b: Path) -> list:
    ra, rb = list(csv.DictReader(a.open())), list(csv.DictReader(b.open()))
    if len(ra) != len(rb):
        return [f"{a.name}: {len(ra)} vs {len(rb)} rows"]
    out = []
    for i, (x, y) in enumerate(zip(ra, rb)):
        for k in x:
            if k in TIMING:
                continue
            if x[k] != y.get(k):
                try:
                    if np.isclose(float(x[k]), float(y[k]), rtol=RTOL, atol=ATOL):
                        continue
                except (TypeError, ValueError):
                    pass
                out.append(f"{a.name} row {i} {k}: {x[k]} vs {y.get(k)}")
    return out


def _close(x, y, where: str) -> list:
    if isinstance(x, dict) and isinstance(y, dict):
        if set(x) != set(y):
            return [f"{where}: keys {sorted(set(x) ^ set(y))}"]
        return [d for k in x if k not in TIMING for d in _close(x[k], y[k], f"{where}.{k}")]
    if isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return [f"{where}: length {len(x)} vs {len(y)}"]
        return [d for i, (p, q) in enumerate(zip(x, y)) for d in _close(p, q, f"{where}[{i}]")]
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        return [] if np.isclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True) else [f"{where}: {x} vs {y}"]
    return [] if x == y else [f"{where}: {x!r} vs {y!r}"]


def _npz(a: Path, b: Path) -> list:
    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        if set(za.files) != set(zb.files):
            return [f"{a.name}: arrays {sorted(set(za.files) ^ set(zb.files))}"]
        out = []
        for k in za.files:
            x, y = za[k], zb[k]
            if k.endswith("_path"):  # the checkout the run came from: only the file name must agree
                x, y = np.array(Path(str(x)).name), np.array(Path(str(y)).name)
            if x.dtype.kind in "USb" or y.dtype.kind in "USb":
                if not np.array_equal(x, y):
                    out.append(f"{a.name}:{k} {x} vs {y}")
            elif x.shape != y.shape or not np.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True):
                out.append(f"{a.name}:{k} max |diff| "
                           f"{np.abs(x.astype(float) - y.astype(float)).max() if x.shape == y.shape else 'shape'}")
        return out


def compare(before: Path, after: Path) -> list:
    diffs, n = [], 0
    for a in sorted(before.rglob("*")):
        b = after / a.relative_to(before)
        if a.suffix not in (".csv", ".jsonl", ".npz", ".json"):
            continue
        if not b.exists():
            diffs.append(f"{b}: missing")
            continue
        n += 1
        if a.suffix == ".csv":
            diffs += _csv(a, b)
        elif a.suffix == ".npz":
            diffs += _npz(a, b)
        elif a.suffix == ".jsonl":
            la, lb = a.read_text().splitlines(), b.read_text().splitlines()
            diffs += _close([json.loads(l) for l in la], [json.loads(l) for l in lb], a.name)
        else:
            diffs += _close(json.loads(a.read_text()), json.loads(b.read_text()), a.name)
    print(f"{before} vs {after}: {n} files compared, {len(diffs)} differences")
    for d in diffs[:20]:
        print("  " + d)
    return diffs


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or len(args) % 2:
        print(__doc__)
        return 2
    bad = [d for a, b in zip(args[::2], args[1::2]) for d in compare(Path(a), Path(b))]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
