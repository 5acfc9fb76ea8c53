"""One run at a time on a pseudo-GT output folder: ``<out>/.lock`` names its holder (pid, host, start).

A second run on the same folder stops with a one-line error naming the holder. A lock left by a
process that no longer exists on this host (a run killed with SIGKILL) is taken over; a lock from
another host is never guessed stale (remove the file by hand once that run is gone).
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..errors import InputError


class LockedError(InputError):
    """The output folder is held by another live run."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Context manager: hold ``<folder>/.lock`` for the duration of a run or merge."""

    def __init__(self, folder, what: str = "pseudo-gt"):
        self.path = Path(folder) / ".lock"
        self.what = what
        self.mine = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": what}

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump(self.mine, fh)
        return True

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                return self
            h = self._holder()
            if not h:  # being written this instant, or unreadable: look again
                time.sleep(0.05)
                h = self._holder()
            pid, host = h.get("pid"), h.get("host")
            stale = host == self.mine["host"] and isinstance(pid, int) and not _alive(pid)
            if h and not stale:
                raise LockedError(f"{self.path.parent}: in use by another {h.get('command', 'run')} (pid {pid} on "
                                  f"{host}, started {h.get('started')}); wait for it, or remove {self.path} if "
                                  f"that run is gone")
            try:  # stale (its process is dead) or unreadable: take it over
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise LockedError(f"{self.path.parent}: could not take the lock {self.path}")

    def release(self) -> None:
        if self._holder().get("pid") == self.mine["pid"] and self._holder().get("host") == self.mine["host"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
