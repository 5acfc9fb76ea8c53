"""Writing files so that a file that exists is complete (temp file in the same folder, then rename);
files that belong together replaced as a set (:func:`write_set`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temps(path, pattern: str = None) -> int:
    """Remove ``.<name>.<pid>.tmp`` files beside ``path`` left by killed runs (their process is gone); count.
    With ``pattern`` (e.g. ``"*"``), every such file in the folder ``path`` whose name matches it."""
    path, n = Path(path), 0
    folder, names = (path, pattern) if pattern is not None else (path.parent, path.name)
    for t in folder.glob(f".{names}.*.tmp"):
        pid = t.name[:-4].rsplit(".", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
            try:
                t.unlink()
                n += 1
            except OSError:
                pass
    return n


class WriteError(OSError):
    """A file that could not be written: one line naming it and the reason."""


def write_set(files: Dict[Path, Callable[[Path], object]], remove: Iterable = ()) -> List[Path]:
    """Write files that belong together so that they are replaced as a set.

    Every ``write(tmp)`` fills a temporary dot-file beside its path first; only when all of them
    are written are they renamed over their paths (in the order given: put a "finished" marker last),
    and the files in ``remove`` (an earlier set's members this set has not) deleted. Any failure or
    interrupt before that leaves the earlier set untouched and no temporary file behind. A path that
    is a folder, or a write that fails (full disk...), raises :class:`WriteError` naming the file.
    Stale temporaries of killed runs beside the paths are removed first.
    """
    tmps: Dict[Path, Path] = {}
    try:
        for path, write in files.items():
            path = Path(path)
            if path.is_dir():
                raise WriteError(f"{path}: is a folder, cannot write a file there")
            remove_stale_temps(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmps[path] = tmp
            try:
                write(tmp)
            except OSError as exc:
                raise WriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
        for path, tmp in tmps.items():
            os.replace(tmp, path)
        for old in map(Path, remove):
            if old.is_file() and old not in tmps:
                old.unlink()
    finally:
        for tmp in tmps.values():
            if tmp.exists():
                tmp.unlink()
    return list(tmps)

