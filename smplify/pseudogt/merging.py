"""Merging pseudo-GT shard folders: each sample once, every file copied to a temporary name and renamed."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..fileio import atomic_write
from .consolidation import Thresholds, consolidate


def merge(dirs, out, thresholds: Thresholds = Thresholds()) -> dict:
    """Combine shard folders (each sample once) and consolidate.

    Every file is copied to a temporary name and renamed, and a sample's ``.npz`` before its
    ``.json`` (the finished marker), so a merge killed at any moment resumes to the same result.
    """
    out = Path(out)
    for sub in ("samples", "failed"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out / sub).glob(".*.tmp"):
            stale.unlink()  # half-copied files of a killed merge

    def copy(f: Path, dest: Path) -> None:
        atomic_write(dest, lambda tmp: shutil.copy2(f, tmp))

    for d in map(Path, dirs):
        for marker in sorted((d / "samples").glob("*.json")):
            if marker.name.startswith("."):
                continue
            dest = out / "samples" / marker.name
            if dest.exists():
                continue  # finished already (from this merge's earlier run or another folder)
            npz = marker.with_suffix(".npz")
            if not npz.exists():
                continue  # not a finished sample
            copy(npz, dest.with_suffix(".npz"))
            copy(marker, dest)
        for f in sorted((d / "failed").glob("*.json")):
            if not f.name.startswith(".") and not (out / "failed" / f.name).exists():
                copy(f, out / "failed" / f.name)
    return consolidate(out, thresholds)
