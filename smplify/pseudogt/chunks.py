"""Finished work on disk, one chunk at a time: ``chunks/<chunk id>.npz`` (the fitted samples' arrays,
stacked) then ``chunks/<chunk id>.json`` (ids, inputs, quality, failures, who fitted it), both by
temp-file-and-rename, the JSON last: a chunk with its JSON is finished, anything else is not.

A chunk id is ``c<index of its first sample in the whole input>-<8 hex digits of its sample ids>``,
so it names the same samples on every run and shard, sorts in input order, and a rerun with
another ``--batch`` cannot mistake a chunk for one holding other samples. Output files grow
with chunks (two a chunk), not with samples.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import numpy as np

from ..errors import InputError
from ..fileio import atomic_savez, atomic_write_text
from .samples import Sample

FORMAT = "smplify-pseudo-gt-chunk/1"


def chunk_id(samples: Sequence[Sample]) -> str:
    h = hashlib.sha1("\n".join(s.id for s in samples).encode("utf-8")).hexdigest()[:8]
    return f"c{samples[0].index:08d}-{h}"


@dataclass
class Chunk:
    """Consecutive samples of one shard, fitted as one batch."""

    id: str
    samples: List[Sample]


def plan_chunks(samples: Sequence[Sample], batch: int) -> List[Chunk]:
    return [Chunk(chunk_id(samples[i: i + batch]), list(samples[i: i + batch])) for i in range(0, len(samples), batch)]


@dataclass
class ChunkRecord:
    """What a finished chunk's JSON holds. samples: one dict a fitted sample (id, image, index,
    fingerprint, quality), in the rows' order of the chunk's npz; failed: id, image, index,
    fingerprint (may be empty), reason; workers: who detected and fitted it (host, pid, peak memory)."""

    chunk: str
    samples: List[dict] = field(default_factory=list)
    failed: List[dict] = field(default_factory=list)
    workers: List[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **self.__dict__}, default=_json_default)


def _json_default(v):
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    raise TypeError(type(v).__name__)


class ChunkStore:
    """The ``chunks/`` folder of a pseudo-GT output."""

    def __init__(self, out):
        self.out = Path(out)
        self.dir = self.out / "chunks"

    def json_path(self, cid: str) -> Path:
        return self.dir / f"{cid}.json"

    def npz_path(self, cid: str) -> Path:
        return self.dir / f"{cid}.npz"

    def prepare(self) -> None:
        """Create the folder; remove half-written files of a killed run (never read as finished)."""
        check_not_legacy(self.out)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    def finished(self, cid: str) -> bool:
        return self.json_path(cid).exists()

    def write(self, record: ChunkRecord, arrays: Dict[str, np.ndarray]) -> None:
        if arrays:
            atomic_savez(self.npz_path(record.chunk), **arrays)
        atomic_write_text(self.json_path(record.chunk), record.to_json())

    def records(self) -> Iterator[dict]:
        """Every finished chunk's JSON, in chunk id order (= input order)."""
        for p in sorted(self.dir.glob("*.json")):
            if not p.name.startswith("."):
                d = json.loads(p.read_text())
                if d.get("format") != FORMAT:
                    raise InputError(f"{p}: not a pseudo-gt chunk record (format {d.get('format')!r})")
                yield d

    def arrays(self, cid: str) -> Dict[str, np.ndarray]:
        with np.load(self.npz_path(cid), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def check_not_legacy(out: Path) -> None:
    """Folders of smplify before chunks held two files a sample (samples/<id>.json + .npz)."""
    legacy = Path(out) / "samples"
    if legacy.is_dir() and any(p.suffix == ".json" and not p.name.startswith(".") for p in legacy.iterdir()):
        raise InputError(f"{out}: holds per-sample results of an earlier smplify (samples/<id>.json); this version "
                         f"writes chunks/ and uses other sample ids: finish that folder with the earlier version "
                         f"or start a new --out")
