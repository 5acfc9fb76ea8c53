"""pseudo-gt at scale (issue 19): photos with 1 vs 2 workers beside detection alone, and 10k / 100k
generated keypoint inputs end to end with their peak memory and output file count.

Photos: the example photos (examples/images; /work/shared/data/images holds the same three) copied to
``--photos`` files in a temp folder. In one run, alternating, ``--rounds`` times: detection alone
(``detect_image`` on every photo: in this process, and in 2 spawned processes warmed up first) just before
and just after ``smplify pseudo-gt --workers 1`` / ``--workers 2`` (``--photo-batch``), each in a new process, on
``--photos`` and on twice as many files; detection alone is the mean of the two runs bracketing it, and each
round's ratio is reported beside the ratio of the medians (the host's speed drifts over minutes). For pseudo-gt, "marginal" is the extra photos over the extra
fitting time (summary.json's fit_time_s) between the two runs, so process start, spawning and model
loading cancel out, as the warm detectors leave them out; "whole run" is the bigger run's own rate.

Keypoints: ``--people`` synthetic people (the open model, training poses, random cameras, COCO-17 pixels
of a 1080x1920 photo), 1000 a file as ``(1000, 17, 3)`` .npz arrays (a format smplify reads), fitted by
``smplify pseudo-gt --batch 1024 --workers 2`` in a new process; its summary.json gives the throughput
and every process's peak memory (VmHWM); the output folder's files are counted.

Run (the machine is shared: run it niced): ``nice -n 5 python -m benchmarks.bench_pseudogt``
(writes benchmarks/results/pseudogt.{json,md}; ``--people`` with no number skips the keypoints,
``--skip-photos`` the photos, ``--name`` picks another results file).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import markdown_table, save

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "images"


def _load() -> str:
    return "%.1f %.1f %.1f" % os.getloadavg()


def _detect_paths(paths) -> int:
    from smplify.keypoints.detect import detect_image

    for p in paths:
        detect_image(p)
    return len(paths)


def detection_only(paths, processes: int) -> float:
    """Photos a second, detection alone, warm (graphs built before the clock starts)."""
    if processes == 1:
        _detect_paths(paths[:1])
        t = time.perf_counter()
        _detect_paths(paths)
        return len(paths) / (time.perf_counter() - t)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_detect_paths, [paths[:1]] * (4 * processes)))  # every process warm
        t = time.perf_counter()
        n = sum(pool.map(_detect_paths, [paths[i: i + 8] for i in range(0, len(paths), 8)]))
        return n / (time.perf_counter() - t)


def _cli(args) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "smplify.cli", *args], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if r.returncode:
        raise SystemExit(f"pseudo-gt failed: {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t


def pseudo_gt_photos(folders, out: Path, workers: int, batch: int) -> dict:
    """Marginal photos/s: the extra photos of the bigger folder over the extra fitting time (start-up,
    spawning and model loading cancel out), and the whole run's rate on the smaller folder."""
    runs = []
    for folder in folders:
        shutil.rmtree(out, ignore_errors=True)
        wall = _cli(["pseudo-gt", str(folder), "--out", str(out), "--workers", str(workers), "--batch", str(batch)])
        s = json.loads((out / "summary.json").read_text())
        runs.append((s["found"], s["fit_time_s"], wall, s["throughput_samples_per_s"]))
    (n0, t0, _, _), (n1, t1, _, whole) = runs
    return {"steady": (n1 - n0) / (t1 - t0), "whole": whole, "runs": runs}


def photos(n: int, rounds: int, batch: int) -> tuple:
    srcs = sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))
    res = {k: [] for k in ("det1", "det2", "pg1", "pg2")}
    loads = []
    with tempfile.TemporaryDirectory() as d:
        folders = []
        for size in (n, 2 * n):
            folder = Path(d) / f"photos{size}"
            folder.mkdir()
            for i in range(size):
                shutil.copy(srcs[i % len(srcs)], folder / f"{i:03d}_{srcs[i % len(srcs)].name}")
            folders.append(folder)
        paths = sorted(folders[0].iterdir())
        for r in range(rounds):
            loads.append(_load())
            # each pseudo-gt run bracketed by detection alone (the mean of before and after): the host's speed drifts
            before = detection_only(paths, 1)
            res["pg1"].append(pseudo_gt_photos(folders, Path(d) / "o1", 1, batch))
            res["det1"].append((before + detection_only(paths, 1)) / 2)
            before = detection_only(paths, 2)
            res["pg2"].append(pseudo_gt_photos(folders, Path(d) / "o2", 2, batch))
            res["det2"].append((before + detection_only(paths, 2)) / 2)
            print(f"round {r}: load {loads[-1]}: " + ", ".join(
                f"{k} {v[-1] if isinstance(v[-1], float) else v[-1]['steady']:.1f}" for k, v in res.items()), flush=True)
    med = lambda xs: statistics.median(xs)
    det1, det2 = med(res["det1"]), med(res["det2"])
    pg1, pg2 = med([x["steady"] for x in res["pg1"]]), med([x["steady"] for x in res["pg2"]])
    w1, w2 = med([x["whole"] for x in res["pg1"]]), med([x["whole"] for x in res["pg2"]])
    fmt = lambda xs: " / ".join(f"{x:.1f}" for x in xs)
    per_round = lambda w: med([p["steady"] / d for p, d in zip(res["pg" + w], res["det" + w])])
    rows = [["detection alone (warm), photos/s", fmt(res["det1"]), fmt(res["det2"]), f"{det2 / det1:.2f}x"],
            [f"pseudo-gt, marginal ({n} more photos over the extra time), photos/s",
             fmt([x["steady"] for x in res["pg1"]]), fmt([x["steady"] for x in res["pg2"]]), f"{pg2 / pg1:.2f}x"],
            [f"pseudo-gt, whole run of {2 * n} photos (with spawning, model loading), photos/s",
             fmt([x["whole"] for x in res["pg1"]]),
             fmt([x["whole"] for x in res["pg2"]]), f"{w2 / w1:.2f}x"],
            ["pseudo-gt marginal / detection alone (medians)", f"{pg1 / det1:.0%}", f"{pg2 / det2:.0%}", "-"],
            # the host's speed drifts over minutes: each round's own ratio (its segments run back to back)
            ["pseudo-gt marginal / detection alone, each round (median)",
             " / ".join(f"{p['steady'] / d:.0%}" for p, d in zip(res["pg1"], res["det1"])) + f" ({per_round('1'):.0%})",
             " / ".join(f"{p['steady'] / d:.0%}" for p, d in zip(res["pg2"], res["det2"])) + f" ({per_round('2'):.0%})",
             "-"]]
    table = markdown_table(["photos (%d and %d files, --batch %d; each round's value)" % (n, 2 * n, batch),
                            "1 worker", "2 workers", "2 / 1 (medians)"], rows)
    table += f"\n\nLoad average (1, 5, 15 min) at the start of each round: {'; '.join(loads)}."
    return table, {"photos": n, "batch": batch, "rounds": res, "load": loads}


def cpu_costs(batches=(16, 64, 256), repeats: int = 2) -> tuple:
    """CPU seconds (this process's user + system time, which other processes' load barely changes) to
    detect one photo and to fit one photo's person at each chunk size, with FIT_THREADS; and the
    photos/s they allow on 2 idle cores with 2 detector processes and the fitting beside them."""
    from smplify.pseudogt.chunks import plan_chunks
    from smplify.pseudogt.samples import enumerate_samples
    from smplify.pseudogt.work import FitSpec, chunk_fitter, load_samples

    srcs = sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))
    cpu = lambda: sum(os.times()[:2])
    with tempfile.TemporaryDirectory() as d:
        for i in range(max(batches)):
            shutil.copy(srcs[i % len(srcs)], Path(d) / f"{i:03d}_{srcs[i % len(srcs)].name}")
        samples = list(enumerate_samples(Path(d)))
        loaded, _ = load_samples(samples[:1])  # the detector's graph built
        t = cpu()
        for _ in range(repeats):
            loaded, _ = load_samples(samples)
        detect = (cpu() - t) / (repeats * len(samples))
        fitter = chunk_fitter(FitSpec())
        fitter.fit(plan_chunks(samples[:4], 4)[0], loaded[:4])
        fit = {}
        for b in batches:
            chunk = plan_chunks(samples[:b], b)[0]
            t = cpu()
            for _ in range(repeats):
                fitter.fit(chunk, loaded[:b])
            fit[b] = (cpu() - t) / (repeats * b)
    rows = [[f"--batch {b}", f"{detect * 1000:.1f} ms", f"{fit[b] * 1000:.1f} ms", f"{1 / (detect + fit[b]):.1f}",
             f"{2 / (detect + fit[b]):.1f}", f"{2 / detect:.1f}", f"{detect / (detect + fit[b]):.0%}"] for b in batches]
    table = markdown_table(["chunk", "detect, CPU per photo", "fit, CPU per person", "1 core: photos/s",
                            "2 cores (2 workers): photos/s", "2 cores, detection alone", "pseudo-gt / detection alone"],
                           rows)
    return table, {"detect_cpu_s": detect, "fit_cpu_s": fit}


def make_keypoint_files(folder: Path, people: int, per_file: int = 1000) -> float:
    """people synthetic COCO-17 people, per_file to an .npz; returns the seconds it took."""
    import torch

    from priors.posedata import open_poses
    from smplify import api
    from smplify.evaluation.scenes import sample_scenes
    from smplify.keypoints.layouts import COCO17
    from smplify.keypoints.mapping import layout_targets

    t = time.perf_counter()
    body = api.load_body()
    idx, _, _ = layout_targets(COCO17, body.landmark_names)
    poses = torch.tensor(open_poses("train"))
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(0, people, per_file):
        n = min(per_file, people - f)
        sc = sample_scenes(body, poses, n, torch.Generator().manual_seed(f))
        uv = sc.uv[:, idx].numpy()
        seen = (uv >= 0).all(-1) & (uv[..., 0] < 1080) & (uv[..., 1] < 1920)  # outside the photo: not detected
        kp = np.concatenate([uv, seen[..., None].astype(np.float32)], -1)
        np.savez(folder / f"people_{f // per_file:04d}.npz", keypoints=kp.astype(np.float32), layout="coco17",
                 image_size=np.array([1080, 1920]))
    return time.perf_counter() - t


def keypoints(sizes, batch: int, workers: int) -> tuple:
    rows, payload = [], {}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / f"kp{max(sizes)}"
        gen = make_keypoint_files(src, max(sizes))
        print(f"generated {max(sizes)} people in {gen:.0f} s", flush=True)
        for n in sizes:
            folder = src
            if n < max(sizes):  # the first n people: links to the first files
                folder = Path(d) / f"kp{n}"
                folder.mkdir()
                for p in sorted(src.iterdir())[: n // 1000]:
                    os.symlink(p, folder / p.name)
            out = Path(d) / f"out{n}"
            load = _load()
            wall = _cli(["pseudo-gt", str(folder), "--out", str(out), "--batch", str(batch), "--workers", str(workers)])
            s = json.loads((out / "summary.json").read_text())
            files = sum(1 for p in out.rglob("*") if p.is_file())
            fitters = [w["peak_rss_mb"] for w in s["workers"] if w["role"] == "fit"]
            payload[n] = dict(summary={k: v for k, v in s.items() if k != "failures"}, wall_s=wall, files=files,
                              load=load, npz_mb=(out / "pseudo_gt.npz").stat().st_size / 2**20)
            rows.append([f"{n:,}", f"{s['fitted']:,} / {s['accepted']:,} / {s['failed']}",
                         f"{s['throughput_samples_per_s']:.0f}", f"{wall:.0f} s",
                         f"{s['driver_peak_rss_mb']:.0f} MiB", f"{max(fitters):.0f} MiB ({len(fitters)} processes)",
                         f"{s['chunks']} chunks, {files} files", f"{payload[n]['npz_mb']:.1f} MiB", load])
            print(rows[-1], flush=True)
    table = markdown_table(["people", "fitted / accepted / failed", "people/s (fitting)", "wall (with start-up)",
                            "driver peak", "fitting process peak", "output", "pseudo_gt.npz", "load avg"], rows)
    table += (f"\n\n`smplify pseudo-gt <folder> --batch {batch} --workers {workers}`; inputs: 1000 synthetic people a "
              f".npz file (generated in {gen:.0f} s); peak = VmHWM of each process.")
    return table, payload


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--photo-batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--people", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-photos", action="store_true")
    ap.add_argument("--costs-only", action="store_true", help="only the CPU cost per photo (detect, fit)")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--name", default="pseudogt", help="results file: benchmarks/results/NAME.{json,md}")
    a = ap.parse_args(argv)
    tables, payload = [], {}
    t, payload["cpu_costs"] = cpu_costs()
    print(t, flush=True)
    tables.append(t)
    if a.costs_only:
        a.skip_photos, a.people = True, []
    if not a.skip_photos:
        t, payload["photos"] = photos(a.photos, a.rounds, a.photo_batch)
        print(t, flush=True)
        tables.append(t)
    if a.people:
        t, payload["keypoints"] = keypoints(sorted(a.people), a.batch, a.workers)
        print(t, flush=True)
        tables.append(t)
    if not a.no_save:
        save(a.name, payload, "\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
