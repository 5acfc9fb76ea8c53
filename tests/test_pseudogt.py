"""pseudo-gt: quality gates, failures recorded, SIGKILL + resume gives the uninterrupted result, shards + merge."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _coco_file(path: Path, n: int = 10, bad: int = 2) -> Path:
    """COCO-17 annotations of synthetic people (open model, training poses), plus malformed entries."""
    from smplify import api
    from smplify.keypoints.layouts import COCO17
    from smplify.keypoints.mapping import layout_targets
    from smplify.evaluation.scenes import sample_scenes
    from priors.posedata import open_poses

    body = api.load_body()
    idx, names, _ = layout_targets(COCO17, body.landmark_names)
    assert names == COCO17
    sc = sample_scenes(body, torch.tensor(open_poses("train")[:200]), n, torch.Generator().manual_seed(3))
    anns = []
    for i in range(n):
        uv = sc.uv[i, idx].numpy()
        kp = np.concatenate([uv, np.full((17, 1), 2.0)], 1).ravel().round(2).tolist()
        anns.append({"id": 100 + i, "image_id": 1, "keypoints": kp})
    anns += [{"id": 900 + j, "image_id": 1, "keypoints": [1.0, 2.0, 2]} for j in range(bad)]
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "synthetic.jpg", "width": 1080, "height": 1920}],
                                "annotations": anns}))
    return path


def _cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "smplify.cli"] + args, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _children(pid: int) -> list:
    """Pids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _finished(d: Path) -> int:
    """Samples (fitted or failed) in the finished chunks of an output folder."""
    n = 0
    for p in (d / "chunks").glob("*.json"):
        if not p.name.startswith("."):
            rec = json.loads(p.read_text())
            n += len(rec["samples"]) + len(rec["failed"])
    return n


def _arrays(d: Path) -> dict:
    with np.load(d / "pseudo_gt.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.e2e
def test_sigkill_resume_equals_uninterrupted(tmp_path):
    # 40 people in chunks of 2: the run is still going when the kill lands (with 10, two workers sometimes
    # finished everything between the poll that saw 2 samples done and the SIGKILL)
    n = 40
    coco = _coco_file(tmp_path / "coco.json", n=n)
    full, killed = tmp_path / "full", tmp_path / "killed"
    p = _cli(["pseudo-gt", str(coco), "--out", str(full), "--batch", "2"])
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    p = _cli(["pseudo-gt", str(coco), "--out", str(killed), "--batch", "2"])
    t0 = time.time()
    while time.time() - t0 < 300:  # kill as soon as some samples are finished
        if _finished(killed) >= 2:
            break
        time.sleep(0.02)
    children = _children(p.pid)  # --workers (default: the cores) processes fitting chunks
    assert children
    p.send_signal(signal.SIGKILL)
    p.wait()
    t0 = time.time()
    while any(Path(f"/proc/{c}").exists() for c in children) and time.time() - t0 < 10:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{c}").exists() for c in children), "worker processes outlived the killed run"
    n_before = _finished(killed)
    assert 2 <= n_before < n + 2, n_before  # really interrupted mid-run
    assert (killed / ".lock").exists()  # left by the killed run: taken over below (its pid is dead)
    p = _cli(["pseudo-gt", str(coco), "--out", str(killed), "--batch", "2"])
    assert p.wait(timeout=600) == 0
    a, b = _arrays(full), _arrays(killed)
    assert list(a["ids"]) == list(b["ids"]) and len(set(a["ids"])) == len(a["ids"]) == n
    for k in ("global_orient", "body_pose", "betas", "transl", "accepted"):
        assert np.array_equal(a[k], b[k]), k
    s = json.loads((killed / "summary.json").read_text())
    assert s["failed"] == 2 and s["fitted"] == n
    rej = (killed / "rejected.csv").read_text()
    assert "failed: " in rej and "expected 51" in rej
    assert (killed / "quality_histograms.png").exists() and (killed / "quality.csv").exists()


@pytest.mark.e2e
def test_shards_merge_to_the_whole(tmp_path):
    from smplify.pseudogt import Thresholds, merge, run_pseudo_gt

    coco = _coco_file(tmp_path / "coco.json", n=6, bad=1)
    for k in (0, 1):
        run_pseudo_gt(coco, tmp_path / f"s{k}", batch=4, shard=(k, 2), progress=False)
    s = merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    assert s["fitted"] == 6 and s["failed"] == 1
    ids = _arrays(tmp_path / "merged")["ids"]
    assert len(ids) == 6 and len(set(ids)) == 6
    # thresholds sort samples and give reasons
    strict = merge([tmp_path / "merged"], tmp_path / "strict", Thresholds(max_error=0.0))
    assert strict["accepted"] == 0 and strict["rejected"] == 6
    assert "reprojection error" in (tmp_path / "strict" / "rejected.csv").read_text()
