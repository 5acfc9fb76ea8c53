"""Chunks as Ray tasks: each task loads, fits and writes one chunk to the shared ``--out`` exactly as
a local run does (:func:`~smplify.pseudogt.work.run_chunk`), so a killed driver resumes the same way
(finished chunks are skipped) and a killed worker's chunk is retried by Ray (``max_retries``).

Ray is an optional extra (``pip install 'smplify[ray]'``). ``auto`` or an address joins a running
cluster; only ``local`` starts one, here, with ``workers`` CPUs. Every host needs smplify installed
and the input and ``--out`` at the same paths (a shared filesystem).
"""
from __future__ import annotations

from typing import List

from ..errors import InputError, one_line
from .chunks import Chunk, ChunkStore
from .work import FitSpec, run_chunk

MAX_RETRIES = 3  # a chunk whose worker died (killed, out of memory, node lost) is run again


def connect(address: str, workers: int) -> bool:
    """Initialise Ray unless it is already; True if this call did (and so shuts it down)."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs the optional package ray: pip install 'smplify[ray]'") from None
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # no cluster at 'auto', a bad address: one line
        raise InputError(f"--ray {address}: cannot join a Ray cluster ({one_line(exc)}); start one with "
                         f"`ray start --head`, or pass --ray local to start one here") from None
    return True


def disconnect() -> None:
    import ray

    ray.shutdown()


def run_on_ray(spec: FitSpec, store: ChunkStore, todo: List[Chunk], bar) -> None:
    """Run the chunks as tasks on the Ray this process is connected to (:func:`connect`)."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(run_chunk)
    cap = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))  # chunks in flight: bounded memory
    out = str(store.out.resolve())
    upcoming, running = iter(todo), {}
    while True:
        while len(running) < cap:
            c = next(upcoming, None)
            if c is None:
                break
            running[task.remote(spec, out, c)] = c
        if not running:
            break
        done, _ = ray.wait(list(running), num_returns=1)
        for ref in done:
            ray.get(ref)  # a chunk that failed for good (an error in it, not a lost worker) stops the run
            bar.update(len(running.pop(ref).samples))
