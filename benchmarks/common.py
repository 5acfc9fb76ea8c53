"""Shared benchmark helpers: timing medians, peak memory, markdown tables, result files."""
from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _status_mb(key: str):
    """A memory line of /proc/self/status in MiB (None where there is no such file)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB): VmHWM, which — unlike ru_maxrss — does not
    inherit the forking parent's peak across exec."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Resident memory of this process now (MiB; NaN where /proc is missing)."""
    now = _status_mb("VmRSS")
    return now if now is not None else float("nan")


def time_call(fn, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine()}


def markdown_table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def save(name: str, payload: dict, table: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    payload = dict(payload, machine=machine(), date=time.strftime("%Y-%m-%d"))
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{name}.md").write_text(table + "\n")
