"""Merging pseudo-GT shard folders: every finished chunk copied once (to a temporary name, then
renamed, its ``.npz`` before its ``.json``), then consolidated.

Everything is checked before anything is written: a missing folder, one that holds no finished
chunk, a folder of an earlier per-sample version, and a sample id that two folders give to
different inputs are one-line errors naming the folders or files.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import InputError
from ..fileio import atomic_write
from .chunks import ChunkStore, check_not_legacy
from .consolidation import Thresholds, consolidate
from .lock import RunLock


def _check(dirs) -> list:
    """Each folder's finished chunk records; {id: (fingerprint, where)} across them must agree."""
    stores, seen = [], {}
    for d in map(Path, dirs):
        if not d.is_dir():
            raise InputError(f"{d}: {'not a folder' if d.exists() else 'not found'}")
        check_not_legacy(d)
        store = ChunkStore(d)
        recs = list(store.records()) if store.dir.is_dir() else []
        if not recs:
            raise InputError(f"{d}: no finished pseudo-gt chunks (chunks/*.json): not a pseudo-gt output folder")
        for rec in recs:
            where_chunk = store.json_path(rec["chunk"])
            for s in rec["samples"] + rec["failed"]:
                fp, where = s.get("fingerprint", ""), f"{s.get('image')} ({where_chunk})"
                fp0, where0 = seen.setdefault(s["id"], (fp, where))
                if fp and fp0 and fp != fp0:
                    raise InputError(f"sample id {s['id']} names two different inputs: {where0} and {where}; "
                                     f"merge only folders made from the same data")
        stores.append((store, recs))
    return stores


def merge(dirs, out, thresholds: Thresholds = Thresholds()) -> dict:
    """Combine shard folders (each chunk once) and consolidate. A merge killed at any moment resumes
    to the same result (a chunk's JSON, its finished marker, is copied last)."""
    if not dirs:
        raise InputError("pseudo-gt-merge: no folders to merge")
    stores = _check(dirs)
    out = Path(out)
    with RunLock(out, "pseudo-gt-merge"):
        dest = ChunkStore(out)
        dest.prepare()

        def copy(f: Path, to: Path) -> None:
            atomic_write(to, lambda tmp: shutil.copy2(f, tmp))

        for store, recs in stores:
            if store.dir.resolve() == dest.dir.resolve():
                continue
            for rec in recs:
                cid = rec["chunk"]
                if dest.finished(cid):
                    continue  # from this merge's earlier run or another folder (the same samples: checked)
                if store.npz_path(cid).exists():
                    copy(store.npz_path(cid), dest.npz_path(cid))
                copy(store.json_path(cid), dest.json_path(cid))
        return consolidate(out, thresholds)
