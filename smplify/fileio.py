"""Writing files so that a file that exists is complete (temp file in the same folder, then rename)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` fills a temporary dot-file beside ``path``; it is then renamed over ``path``.

    A crash at any moment leaves either the old file or the new one, never a half-written file
    (leftover temporaries are named ``.<name>.<pid>.tmp`` and removed on failure).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_savez(path, compressed: bool = False, **arrays) -> Path:
    """``np.savez`` (or ``savez_compressed``) through :func:`atomic_write`."""
    save = np.savez_compressed if compressed else np.savez

    def write(tmp):
        with open(tmp, "wb") as fh:  # a file handle: numpy would append .npz to a bare name
            save(fh, **arrays)

    return atomic_write(path, write)


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
