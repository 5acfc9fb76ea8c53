"""The resumable pseudo-GT run: a dataset of photos or keypoints in, SMPL pseudo-ground-truth out.

Design
------
* Samples are enumerated lazily and deterministically (sorted paths; COCO annotations in
  file order), each with a stable, unique id. ``--shard K/N`` keeps every N-th sample from K.
* Samples are fitted in fixed chunks of ``--batch`` consecutive samples, so a chunk always
  holds the same samples and fits to the same numbers, however often the run is resumed and
  wherever it runs.
* Each finished chunk is written as ``chunks/<chunk id>.npz`` then ``chunks/<chunk id>.json``
  (the JSON last, both by temp-file-and-rename; failed samples are in the JSON with their
  reason). A rerun skips finished chunks, so a run killed at any moment (even SIGKILL)
  resumes to the same result. Output files grow with chunks, not samples.
* Where chunks run: in this process with ``workers=1``; with ``workers=N`` on photos, N
  detector processes (one MediaPipe graph each, built once) detect the next chunks' photos while
  this process fits the current chunk; with ``workers=N`` on keypoints, N processes each load,
  fit and write whole chunks; with ``ray=ADDRESS``, each chunk is a Ray task that loads, fits
  and writes it to the shared ``--out`` (see :mod:`.on_ray`). Every chunk is fitted with the same
  torch thread count (:data:`~smplify.pseudogt.work.FIT_THREADS`), so the results are the same.
* One run at a time on an ``--out`` (:class:`~smplify.pseudogt.lock.RunLock`).
* At the end, :func:`~smplify.pseudogt.consolidation.consolidate` streams the chunks into
  ``pseudo_gt.npz``, ``quality.csv``, ``accepted.txt``, ``rejected.csv`` (with the reason),
  ``summary.json`` and ``quality_histograms.png``; ``smplify pseudo-gt-merge`` combines
  shard folders and consolidates them.
"""
from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path
from typing import List, Optional

from ..config import PSEUDO_GT_BATCH
from ..errors import InputError
from ..fileio import atomic_write_text
from .chunks import Chunk, ChunkStore, check_not_legacy, plan_chunks
from .consolidation import Thresholds, consolidate
from .lock import RunLock
from .samples import enumerate_samples
from .work import FitSpec, chunk_fitter, load_samples, peak_rss_mb, run_chunk

PIECE = 8  # photos a detector process takes at a time


def run_pseudo_gt(src, out, prior: str = "chain", batch: int = PSEUDO_GT_BATCH, shard=(0, 1), thresholds: Thresholds = Thresholds(),
                  config=None, progress: bool = True, max_chunks: Optional[int] = None, model: Optional[str] = None,
                  gender: str = "neutral", focal: Optional[float] = None, workers: Optional[int] = None,
                  ray: Optional[str] = None) -> dict:
    """Fit every unfinished chunk of the shard; then consolidate. Returns the summary.

    model/gender: the body model (as for ``smplify fit --model/--gender``); focal: the focal length
    in pixels for every sample (default: EXIF, else a 55° field of view); workers: processes
    (default: the number of cores; 1: all in this process): on photos, detector processes pipelined
    with the fitting here; on keypoints, processes fitting whole chunks; ray: run chunks
    as Ray tasks ('auto' or an address joins a running cluster, 'local' starts one here; an
    already initialised Ray is used as it is). A bad ``src`` raises :class:`InputError` before any
    output is written; an ``--out`` held by another live run raises :class:`LockedError`.
    """
    src, out = Path(src), Path(out)
    k, n = shard
    samples = [s for i, s in enumerate(enumerate_samples(src)) if i % n == k]  # InputError before any output
    check_not_legacy(out)
    workers = max(1, int(workers or os.cpu_count() or 1))
    spec = FitSpec(prior, model, gender, config, focal)
    joined = False
    if ray is not None:
        from . import on_ray

        joined = on_ray.connect(ray, workers)  # a bad address or no cluster: one line, nothing written
    try:
        with RunLock(out):
            _check_plan(out, batch, shard)
            chunks, found = plan_chunks(samples, batch), len(samples)
            del samples  # the chunks hold them; _run lets them go before consolidating
            summary = _run(spec, out, chunks, found, thresholds, progress, max_chunks, workers, ray)
    finally:
        if joined:
            on_ray.disconnect()
    return summary


def _check_plan(out: Path, batch: int, shard) -> None:
    """The chunks are cut by --batch and --shard: a resume with others would fit everything again
    into other chunks, so ``run.json`` keeps them and a resume must match."""
    plan = {"batch": batch, "shard": f"{shard[0]}/{shard[1]}"}
    path = out / "run.json"
    if path.exists():
        was = json.loads(path.read_text())
        if {k: was.get(k) for k in plan} != plan:
            raise InputError(f"{out}: started with --batch {was.get('batch')} --shard {was.get('shard')}; resume it "
                             f"with those, or use a new --out")
    else:
        atomic_write_text(path, json.dumps(plan))


def _run(spec: FitSpec, out: Path, chunks: List[Chunk], found: int, thresholds: Thresholds, progress: bool,
         max_chunks: Optional[int], workers: int, ray: Optional[str]) -> dict:
    """Fit the unfinished chunks, then consolidate. Empties ``chunks`` before consolidating (memory)."""
    from tqdm import tqdm

    store = ChunkStore(out)
    store.prepare()
    for stale in store.dir.glob(".*.running"):
        stale.unlink(missing_ok=True)
    todo = [c for c in chunks if not store.finished(c.id)]
    if max_chunks is not None:
        todo = todo[:max_chunks]
    total = sum(len(c.samples) for c in todo)
    bar = tqdm(total=total, desc="pseudo-gt", unit="sample", disable=not progress, smoothing=0.05)
    t0 = time.time()
    try:
        if ray is not None:
            from .on_ray import run_on_ray

            mode = f"ray {ray}"
            run_on_ray(spec, store, todo, bar)
        elif workers > 1 and any(s.kind == "photo" for c in todo for s in c.samples):
            mode = f"{workers} detector processes"
            _run_with_detectors(spec, store, todo, bar, workers)
        elif workers > 1 and len(todo) > 1:
            mode = f"{workers} chunk processes"
            _run_chunk_processes(spec, store, todo, bar, workers)
        else:
            mode = "one process"
            _run_inline(spec, store, todo, bar)
    finally:
        bar.close()
    seconds = time.time() - t0
    unfinished = sum(len(c.samples) for c in chunks if not store.finished(c.id))
    chunks.clear()
    del todo
    summary = consolidate(out, thresholds)
    summary.update(found=found, unfinished=unfinished, mode=mode, fit_time_s=round(seconds, 2),
                   throughput_samples_per_s=round(total / max(1e-9, seconds), 2),
                   driver_peak_rss_mb=round(peak_rss_mb(), 1))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _run_inline(spec: FitSpec, store: ChunkStore, todo: List[Chunk], bar) -> None:
    fitter = chunk_fitter(spec) if todo else None
    for c in todo:
        loaded, info = load_samples(c.samples)
        rec, arrays = fitter.fit(c, loaded, [info])
        store.write(rec, arrays)
        bar.update(len(c.samples))


def _exit_with_parent(parent: int) -> None:
    """A worker process ends when the run that started it is gone (killed: nothing else would end it)."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _pool(workers: int):
    """Spawned processes (a forked copy of a process that has run torch's thread pools can hang).
    A detector process imports MediaPipe, not torch (start-up in seconds); a chunk process builds
    its fitter once and fits with FIT_THREADS."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_exit_with_parent,
                               initargs=(os.getpid(),))


def _run_chunk_processes(spec: FitSpec, store: ChunkStore, todo: List[Chunk], bar, workers: int) -> None:
    """Keypoint inputs: each process loads, fits and writes whole chunks (as a Ray task does)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    out = str(store.out.resolve())
    upcoming, running = iter(todo), {}
    with _pool(workers) as pool:
        while True:
            while len(running) < 2 * workers:  # a few queued: a process never waits; bounded memory
                c = next(upcoming, None)
                if c is None:
                    break
                running[pool.submit(run_chunk, spec, out, c)] = c
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in done:
                f.result()
                bar.update(len(running.pop(f).samples))


def _run_with_detectors(spec: FitSpec, store: ChunkStore, todo: List[Chunk], bar, workers: int) -> None:
    """Detector processes load (detect) the next chunks' photos, a few at a time, while this process
    fits the chunk whose photos are all in, in chunk order: the same chunks, the same results."""
    fitter = chunk_fitter(spec)
    pending = deque()
    upcoming = iter(todo)
    with _pool(workers) as pool:

        def submit() -> None:
            c = next(upcoming, None)
            if c is not None:
                pending.append((c, [pool.submit(load_samples, c.samples[i: i + PIECE])
                                    for i in range(0, len(c.samples), PIECE)]))

        for _ in range(2):  # this chunk and the next one queued: the detectors never wait for the fitter
            submit()
        while pending:
            c, futures = pending.popleft()
            submit()
            loaded, infos = [], {}
            for f in futures:
                part, info = f.result()
                loaded += part
                bar.update(len(part))
                agg = infos.setdefault(info["pid"], dict(info, samples=0))
                agg["samples"] += info["samples"]
                agg["peak_rss_mb"] = max(agg["peak_rss_mb"], info["peak_rss_mb"])
            rec, arrays = fitter.fit(c, loaded, list(infos.values()))
            store.write(rec, arrays)
