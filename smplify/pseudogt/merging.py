"""Merging pseudo-GT shard folders: checked to be shards of one dataset, each sample once, every file
copied to a temporary name and renamed."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError, one_line
from ..fileio import FolderLock, atomic_write, atomic_write_text
from .consolidation import MANIFEST, Thresholds, consolidate, read_manifest


def _sample_digest(npz: Path) -> str:
    """What a finished sample was fitted to (its keypoints), to tell one sample from another under one id."""
    h = hashlib.sha1()
    try:
        with np.load(npz, allow_pickle=False) as z:
            for k in ("kp_index", "kp_xy", "kp_confidence", "image_size"):
                if k in z.files:
                    h.update(np.ascontiguousarray(z[k]).tobytes())
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{npz}: unreadable sample ({one_line(exc)})") from None
    return h.hexdigest()


def check_shards(dirs) -> None:
    """Refuse to merge what is not a set of shards of one dataset: a missing folder, one that holds no
    pseudo-gt output, or one id holding a different person in two folders (:class:`InputError`)."""
    dirs = [Path(d) for d in dirs]
    for d in dirs:
        if not d.exists():
            raise InputError(f"{d}: not found")
        if not d.is_dir() or not ((d / "samples").is_dir() or (d / "failed").is_dir()):
            raise InputError(f"{d}: no pseudo-gt output here (no samples/ or failed/ folder)")
    where = {}  # id -> folders holding it finished
    for d in dirs:
        for marker in sorted((d / "samples").glob("*.json")):
            if not marker.name.startswith(".") and marker.with_suffix(".npz").exists():
                where.setdefault(marker.stem, []).append(d)
    for sid, folders in where.items():  # only ids in more than one folder are read
        if len(folders) > 1:
            first = _sample_digest(folders[0] / "samples" / f"{sid}.npz")
            for d in folders[1:]:
                if _sample_digest(d / "samples" / f"{sid}.npz") != first:
                    raise InputError(f"sample {sid} holds different keypoints in {folders[0]} and {d}: these "
                                     f"folders are not shards of one dataset; merge refused")


def merge(dirs, out, thresholds: Thresholds = Thresholds()) -> dict:
    """Combine shard folders (each sample once) and consolidate.

    The folders are checked first (:func:`check_shards`: missing, not pseudo-gt output, an id that
    holds different people in two of them: :class:`InputError`, nothing written); ``out`` is held
    against a second run (:class:`~smplify.fileio.LockedError`). Every file is copied to a temporary
    name and renamed, and a sample's ``.npz`` before its ``.json`` (the finished marker), so a merge
    killed at any moment resumes to the same result. The shards' manifests are merged too.
    """
    out = Path(out)
    check_shards(dirs)
    with FolderLock(out, "pseudo-gt-merge"):
        return _merge_locked([Path(d) for d in dirs], out, thresholds)


def _merge_locked(dirs, out: Path, thresholds: Thresholds) -> dict:
    for sub in ("samples", "failed"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out / sub).glob(".*.tmp"):
            stale.unlink()  # half-copied files of a killed merge

    def copy(f: Path, dest: Path) -> None:
        atomic_write(dest, lambda tmp: shutil.copy2(f, tmp))

    listed = dict.fromkeys(read_manifest(out))
    for d in dirs:
        listed.update(dict.fromkeys(read_manifest(d)))
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
    if listed:
        atomic_write_text(out / MANIFEST, "".join(f"{sid}\n" for sid in listed))
    return consolidate(out, thresholds)
