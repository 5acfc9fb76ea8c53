"""pseudo-gt at scale: detector processes give the same arrays as one process; chunks as Ray tasks on a
local 2-CPU Ray give the local run's result and survive a killed worker; the consolidated dataset is
the same however the chunks are stored; the number of output files grows with chunks."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    from smplify.body.model_file import save_compact_npz
    from smplify.body.tiny import make_tiny_model

    p = tmp_path_factory.mktemp("model") / "tiny.npz"
    save_compact_npz(make_tiny_model(), p)
    return p


def _coco(path: Path, n: int, bad: int = 1, seed: int = 3) -> Path:
    """COCO-17 annotations of n synthetic people (the tiny model, training poses) plus malformed ones."""
    from priors.posedata import open_poses
    from smplify.body import BodyModel
    from smplify.body.tiny import make_tiny_model
    from smplify.evaluation.scenes import sample_scenes
    from smplify.keypoints.layouts import COCO17
    from smplify.keypoints.mapping import layout_targets

    body = BodyModel(make_tiny_model())
    idx, _, _ = layout_targets(COCO17, body.landmark_names)
    sc = sample_scenes(body, torch.tensor(open_poses("train")[:200]), n, torch.Generator().manual_seed(seed))
    anns = [{"id": 100 + i, "image_id": 1,
             "keypoints": np.concatenate([sc.uv[i, idx].numpy(), np.full((17, 1), 2.0)], 1).ravel().round(2).tolist()}
            for i in range(n)]
    anns += [{"id": 900 + j, "image_id": 1, "keypoints": [1.0, 2.0, 2]} for j in range(bad)]
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "synthetic.jpg", "width": 1080, "height": 1920}],
                                "annotations": anns}))
    return path


def _arrays(d: Path) -> dict:
    with np.load(d / "pseudo_gt.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k


LENIENT = dict(max_error=10.0, max_nll=1e9, min_keypoints=0)


@pytest.mark.e2e
def test_detector_processes_give_the_same_arrays(tmp_path):
    """--workers 2 (two detector processes, pipelined with the fitting) == --workers 1, photo for photo."""
    from smplify.pseudogt import run_pseudo_gt

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.png", "pose2sim_balance.jpg"):
        (photos / name).write_bytes((ROOT / "examples" / "images" / name).read_bytes())
    (photos / "copy of astronaut.png").write_bytes((photos / "astronaut.png").read_bytes())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    one = run_pseudo_gt(photos, tmp_path / "w1", batch=2, workers=1, progress=False)
    two = run_pseudo_gt(photos, tmp_path / "w2", batch=2, workers=2, progress=False)
    assert one["mode"] == "one process" and two["mode"] == "2 detector processes"
    _same(_arrays(tmp_path / "w1"), _arrays(tmp_path / "w2"))
    assert two["fitted"] == 3 and two["failed"] == 1 and two["found"] == 4
    detectors = [w for w in two["workers"] if w["role"] == "detect"]
    assert len(detectors) == 2 and sum(w["samples"] for w in detectors) == 4
    assert all(w["peak_rss_mb"] > 0 for w in two["workers"])


def _kill_first_running(chunks: Path, killed: list, stop: threading.Event) -> None:
    """Kill (SIGKILL) the Ray worker process that works on the first chunk seen running."""
    while not stop.is_set():
        for p in chunks.glob(".*.running"):
            try:
                pid = json.loads(p.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                continue
            os.kill(pid, signal.SIGKILL)
            killed.append((p.name, pid))
            return
        time.sleep(0.01)


@pytest.mark.e2e
def test_ray_equals_local_and_survives_a_killed_worker(tmp_path, tiny_file):
    ray = pytest.importorskip("ray")
    from smplify.config import FitConfig
    from smplify.pseudogt import Thresholds, run_pseudo_gt

    coco = _coco(tmp_path / "coco.json", n=7)
    kw = dict(batch=2, model=str(tiny_file), config=FitConfig(flip_test=False), thresholds=Thresholds(**LENIENT),
              progress=False)
    local = run_pseudo_gt(coco, tmp_path / "local", workers=1, **kw)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    killed, stop = [], threading.Event()
    watcher = threading.Thread(target=_kill_first_running, args=(tmp_path / "ray" / "chunks", killed, stop))
    watcher.start()
    try:
        on_ray = run_pseudo_gt(coco, tmp_path / "ray", ray="auto", **kw)
    finally:
        stop.set()
        watcher.join()
        ray.shutdown()
    assert len(killed) == 1, "no worker was killed"
    assert on_ray["mode"] == "ray auto" and on_ray["fitted"] == local["fitted"] == 7 and on_ray["failed"] == 1
    _same(_arrays(tmp_path / "local"), _arrays(tmp_path / "ray"))  # exact, as the SIGKILL resume test
    for f in ("accepted.txt", "rejected.csv"):
        assert (tmp_path / "local" / f).read_text() == (tmp_path / "ray" / f).read_text()
    fitters = {w["pid"] for w in on_ray["workers"] if w["role"] == "fit"}
    assert killed[0][1] not in fitters  # the killed worker finished nothing; its chunk was run again
    assert not list((tmp_path / "ray" / "chunks").glob(".*"))  # no temp or running marker left


def _cli(*args) -> list:
    import sys

    return [sys.executable, "-m", "smplify.cli", "pseudo-gt", *map(str, args)]


@pytest.mark.e2e
def test_ray_resumes_after_a_killed_driver(tmp_path, tiny_file):
    """The driver of a `--ray local` run is SIGKILLed (with the Ray it started: its whole process group) after
    its first chunks are written; the same command again skips those chunks untouched, runs the rest, and the
    consolidated result equals a local run's."""
    pytest.importorskip("ray")
    import subprocess

    coco = _coco(tmp_path / "coco.json", n=12)
    opts = ["--batch", 1, "--model", tiny_file, "--no-flip-test", "--max-error", 10, "--max-nll", 1e9,
            "--min-keypoints", 0]
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    subprocess.run(_cli(coco, "--out", tmp_path / "local", "--workers", 1, *opts), check=True, env=env,
                   capture_output=True)
    out = tmp_path / "ray"
    driver = subprocess.Popen(_cli(coco, "--out", out, "--ray", "local", "--workers", 2, *opts), env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, first = time.time() + 240, {}
    try:
        while time.time() < deadline and driver.poll() is None:
            first = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.json")}
            if len(first) >= 2:
                break
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert driver.returncode == -signal.SIGKILL, "the driver finished before it could be killed"
    assert 2 <= len(first) < 12 and not (out / "summary.json").exists()
    again = subprocess.run(_cli(coco, "--out", out, "--ray", "local", "--workers", 2, *opts), env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    for name, mtime in first.items():  # what the killed run finished was kept, not redone
        assert (out / "chunks" / name).stat().st_mtime_ns == mtime, name
    _same(_arrays(tmp_path / "local"), _arrays(out))
    for f in ("accepted.txt", "rejected.csv"):
        assert (tmp_path / "local" / f).read_text() == (out / f).read_text()
    assert not list((out / "chunks").glob(".*"))  # no temp or running marker left


def test_chunk_processes_equal_one_process_and_files_grow_with_chunks(tmp_path, tiny_file):
    """Keypoints with --workers 2 (two processes fitting whole chunks) == --workers 1; two files a
    chunk; the npz equals a plain stack of the chunks' rows sorted by id; a resume fits nothing."""
    from smplify.config import FitConfig
    from smplify.pseudogt import Thresholds, run_pseudo_gt
    from smplify.pseudogt.chunks import ChunkStore

    coco = _coco(tmp_path / "coco.json", n=9, bad=0)
    kw = dict(batch=4, model=str(tiny_file), config=FitConfig(flip_test=False), thresholds=Thresholds(**LENIENT),
              progress=False)
    one = run_pseudo_gt(coco, tmp_path / "one", workers=1, **kw)
    s = run_pseudo_gt(coco, tmp_path / "o", workers=2, **kw)
    assert one["mode"] == "one process" and s["mode"] == "2 chunk processes"
    _same(_arrays(tmp_path / "one"), _arrays(tmp_path / "o"))
    files = sorted(p.name for p in (tmp_path / "o" / "chunks").iterdir())
    assert s["chunks"] == 3 and len(files) == 6 and s["found"] == s["fitted"] == 9
    store, rows = ChunkStore(tmp_path / "o"), {}
    for rec in store.records():
        z = store.arrays(rec["chunk"])
        for i, d in enumerate(rec["samples"]):
            rows[d["id"]] = {k: z[k][i] for k in ("global_orient", "body_pose", "betas", "transl", "focal_length")}
    a = _arrays(tmp_path / "o")
    assert list(a["ids"]) == sorted(rows)
    for k in ("global_orient", "body_pose", "betas", "transl", "focal_length"):
        assert np.array_equal(a[k], np.stack([rows[i][k] for i in sorted(rows)])), k
    # a resume finds everything finished and fits nothing; the result is the same
    again = run_pseudo_gt(coco, tmp_path / "o", workers=2, **kw)
    assert again["throughput_samples_per_s"] == 0 and again["fitted"] == 9
    _same(a, _arrays(tmp_path / "o"))
    from smplify.pseudogt import InputError

    with pytest.raises(InputError, match="started with --batch 4 --shard 0/1"):  # other chunks: refused
        run_pseudo_gt(coco, tmp_path / "o", **dict(kw, batch=3))


def test_ray_without_a_cluster_is_one_line_and_starts_none(tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray")
    from smplify.cli import main

    if Path("/tmp/ray/ray_current_cluster").exists() or ray.is_initialized():
        pytest.skip("a Ray cluster runs on this machine: --ray auto would join it")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    coco = _coco(tmp_path / "coco.json", n=1, bad=0)
    rc = main(["pseudo-gt", str(coco), "--out", str(tmp_path / "o"), "--ray"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--ray auto: cannot join a Ray cluster" in err, err
    assert not (tmp_path / "o").exists() and not ray.is_initialized()


def test_old_per_sample_folder_gets_one_line(tmp_path, capsys):
    from smplify.cli import main

    coco = _coco(tmp_path / "coco.json", n=1, bad=0)
    (tmp_path / "old" / "samples").mkdir(parents=True)
    (tmp_path / "old" / "samples" / "ann100.json").write_text("{}")
    rc = main(["pseudo-gt", str(coco), "--out", str(tmp_path / "old")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "per-sample results of an earlier smplify" in err, err
