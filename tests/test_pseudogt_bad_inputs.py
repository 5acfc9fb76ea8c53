"""The pseudo-gt rows of the bad-input matrix (issue 17), table by table:

* ids unique and stable for any file names (spaces vs underscores, unicode names that reduce to the
  same ASCII), the same with --shard; the summary accounts for every input;
* one run at a time on an --out: a live holder is named (pid, host, start), a dead one's lock is taken over;
* pseudo-gt-merge of a missing, empty or non-folder input, or of folders where one id names two different
  inputs: one-line error, exit 2, nothing merged;
* keypoints far outside the photo or degenerate (one pixel, 1e30) are rejected by the quality gates with a reason.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from smplify.cli import main

LENIENT = ["--max-error", "10", "--max-nll", "1e9", "--min-keypoints", "0", "--no-flip-test", "--workers", "1"]
NAMES = ["pair a.json", "pair_a.json", "写真.json", "照片.json", "sub/pair a.json", "sub dir/x.json"]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    from smplify.body.model_file import save_compact_npz
    from smplify.body.tiny import make_tiny_model

    p = tmp_path_factory.mktemp("model") / "tiny.npz"
    save_compact_npz(make_tiny_model(), p)
    return p


def _uv(n: int, seed: int = 3) -> np.ndarray:
    """(n, 17, 2) COCO-17 pixels of synthetic people (the tiny model, training poses) in a 1080x1920 photo."""
    from priors.posedata import open_poses
    from smplify.body import BodyModel
    from smplify.body.tiny import make_tiny_model
    from smplify.evaluation.scenes import sample_scenes
    from smplify.keypoints.layouts import COCO17
    from smplify.keypoints.mapping import layout_targets

    body = BodyModel(make_tiny_model())
    idx, _, _ = layout_targets(COCO17, body.landmark_names)
    sc = sample_scenes(body, torch.tensor(open_poses("train")[:200]), n, torch.Generator().manual_seed(seed))
    return sc.uv[:, idx].numpy().astype(np.float64)


def _write_person(path: Path, uv: np.ndarray) -> None:
    from smplify.keypoints import Keypoints2D
    from smplify.keypoints.detect import write_keypoints_json
    from smplify.keypoints.layouts import COCO17

    path.parent.mkdir(parents=True, exist_ok=True)
    write_keypoints_json(Keypoints2D("coco17", COCO17, uv.astype(np.float32), np.ones(17, np.float32), (1080, 1920)),
                         path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_file):
    """A folder of keypoint files with colliding names plus a broken one, fitted once into out/."""
    d = tmp_path_factory.mktemp("names")
    src = d / "in"
    for name, uv in zip(NAMES, _uv(len(NAMES))):
        _write_person(src / name, uv)
    (src / "broken.json").write_text("{ not json")
    out = d / "out"
    assert main(["pseudo-gt", str(src), "--out", str(out), "--model", str(tiny_file), "--batch", "4"] + LENIENT) == 0
    return src, out


def test_ids_unique_and_stable_for_any_file_name(folder):
    from smplify.pseudogt import enumerate_samples

    src, out = folder
    ids = [s.id for s in enumerate_samples(src)]
    assert len(ids) == len(NAMES) + 1 and len(set(ids)) == len(ids), ids
    assert ids == [s.id for s in enumerate_samples(src)]  # the same on every run
    assert all(i.isascii() and " " not in i for i in ids)
    by_name = dict(zip(sorted(p.relative_to(src).as_posix() for p in src.rglob("*.json")), ids))
    assert by_name["pair a.json"].startswith("pair_a.json-") and by_name["pair_a.json"].startswith("pair_a.json-")
    assert by_name["写真.json"] != by_name["照片.json"]
    # every input accounted for: fitted + failed = found, accepted + rejected = fitted
    s = json.loads((out / "summary.json").read_text())
    assert s["found"] == len(ids) and s["fitted"] + s["failed"] == s["found"] and s["unfinished"] == 0
    assert s["accepted"] + s["rejected"] == s["fitted"] == len(NAMES) and s["failed"] == 1
    listed = [l.split(",")[0] for l in (out / "quality.csv").read_text().splitlines()[1:]]
    failed = [l.split(",")[0] for l in (out / "rejected.csv").read_text().splitlines()[1:] if ",failed: " in l]
    assert sorted(listed + failed) == sorted(ids)
    assert "broken.json" in (out / "rejected.csv").read_text()


def test_shards_have_the_same_ids_and_merge_to_the_whole(folder, tiny_file, tmp_path):
    src, out = folder
    for k in (0, 1):
        assert main(["pseudo-gt", str(src), "--out", str(tmp_path / f"s{k}"), "--model", str(tiny_file),
                     "--batch", "4", "--shard", f"{k}/2"] + LENIENT) == 0
    assert main(["pseudo-gt-merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m"),
                 "--max-error", "10", "--max-nll", "1e9", "--min-keypoints", "0"]) == 0
    with np.load(out / "pseudo_gt.npz") as a, np.load(tmp_path / "m" / "pseudo_gt.npz") as b:
        assert list(a["ids"]) == list(b["ids"])
    assert json.loads((tmp_path / "m" / "summary.json").read_text())["failed"] == 1


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


LOCKS = {  # name: (lock holder written into --out/.lock, expected: taken over or the refusal names it)
    "live pid on this host": (lambda sleeper: {"pid": sleeper.pid, "host": socket.gethostname(),
                                               "started": "2026-01-02T03:04:05Z", "command": "pseudo-gt"}, "refused"),
    "a pid on another host": (lambda sleeper: {"pid": os.getpid(), "host": "elsewhere.example",
                                               "started": "2026-01-02T03:04:05Z", "command": "pseudo-gt"}, "refused"),
    "dead pid on this host (SIGKILLed run)": (lambda sleeper: {"pid": _dead_pid(), "host": socket.gethostname(),
                                                               "started": "2026-01-02T03:04:05Z"}, "taken over"),
    "unreadable lock file": (lambda sleeper: None, "taken over"),
}


@pytest.mark.parametrize("case", list(LOCKS))
def test_one_run_at_a_time_on_an_out(case, tmp_path, tiny_file, capsys):
    holder, expected = LOCKS[case]
    src = tmp_path / "in"
    _write_person(src / "a.json", _uv(1)[0])
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        h = holder(sleeper)
        (out / ".lock").write_text(json.dumps(h) if h else "")
        rc = main(["pseudo-gt", str(src), "--out", str(out), "--model", str(tiny_file)] + LENIENT)
    finally:
        sleeper.kill()
        sleeper.wait()
    err = capsys.readouterr().err.strip()
    if expected == "refused":
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert f"pid {h['pid']} on {h['host']}" in err and h["started"] in err and str(out) in err
        assert not (out / "chunks").exists()  # nothing fitted
        assert json.loads((out / ".lock").read_text()) == h  # not taken from its holder
    else:
        assert rc == 0, err
        assert json.loads((out / "summary.json").read_text())["fitted"] == 1
        assert not (out / ".lock").exists()  # released at the end


def test_lock_names_the_other_run_through_the_api(tmp_path):
    from smplify.pseudogt import LockedError
    from smplify.pseudogt.lock import RunLock

    with RunLock(tmp_path / "o"):
        with pytest.raises(LockedError, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            RunLock(tmp_path / "o").acquire()
    RunLock(tmp_path / "o").acquire().release()  # free again


@pytest.fixture(scope="module")
def other_data(folder, tiny_file, tmp_path_factory):
    """The same file names with one file holding another person, sharded (1/2): a colliding id."""
    src, _ = folder
    d = tmp_path_factory.mktemp("other")
    shutil.copytree(src, d / "in")
    changed = sorted(p for p in (d / "in").rglob("*.json") if p.name != "broken.json")
    for p in changed:
        _write_person(p, _uv(1, seed=11)[0])
    assert main(["pseudo-gt", str(d / "in"), "--out", str(d / "s1"), "--model", str(tiny_file), "--batch", "4",
                 "--shard", "1/2"] + LENIENT) == 0
    return d / "s1"


MERGES = {  # name: (folders to merge, given the good one and a scratch dir; words the error must have)
    "missing folder first": (lambda good, t, o: [t / "missing", good], ["missing: not found"]),
    "missing folder last": (lambda good, t, o: [good, t / "missing"], ["missing: not found"]),
    "empty folder": (lambda good, t, o: [good, _mkdir(t / "empty")], ["empty: no finished pseudo-gt chunks"]),
    "a file, not a folder": (lambda good, t, o: [good, _touch(t / "f.txt")], ["f.txt: not a folder"]),
    "an id naming another photo": (lambda good, t, o: [good, o], ["names two different inputs", "in/", "other"]),
}


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _touch(p: Path) -> Path:
    p.write_text("x")
    return p


@pytest.mark.parametrize("case", list(MERGES))
def test_merge_refuses_bad_folders(case, folder, other_data, tmp_path, capsys):
    dirs, words = MERGES[case]
    _, good = folder
    args = [str(p) for p in dirs(good, tmp_path, other_data)]
    rc = main(["pseudo-gt-merge", *args, "--out", str(tmp_path / "merged")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    assert not (tmp_path / "merged").exists()  # nothing merged


def _shift(f):
    def bad(uv):
        uv = uv.copy()
        f(uv)
        return uv
    return bad


GATES = {  # name: (how the person's 17 keypoints are spoilt, the reason in rejected.csv)
    "all 1e6 px outside the photo": (_shift(lambda uv: uv.__iadd__(1e6)), "17 keypoints far outside the photo"),
    "one keypoint at x = 5e5": (_shift(lambda uv: uv.__setitem__((5, 0), 5e5)), "1 keypoints far outside the photo"),
    "all on one pixel": (_shift(lambda uv: uv.__setitem__(slice(None), 500.0)), "keypoints degenerate"),
    "coordinates of 1e30": (_shift(lambda uv: uv.__setitem__(slice(None), 1e30)), "keypoints far outside the photo"),
}


@pytest.fixture(scope="module")
def gated(tiny_file, tmp_path_factory):
    d = tmp_path_factory.mktemp("gates")
    uv = _uv(len(GATES) + 1)
    _write_person(d / "in" / "good.json", uv[-1])
    for i, (name, (spoil, _)) in enumerate(GATES.items()):
        _write_person(d / "in" / f"{i}.json", spoil(uv[i]))
    assert main(["pseudo-gt", str(d / "in"), "--out", str(d / "out"), "--model", str(tiny_file),
                 "--max-error", "1e9", "--max-nll", "1e9", "--min-keypoints", "0", "--workers", "1"]) == 0
    from smplify.pseudogt import enumerate_samples

    ids = {Path(smp.path).name: smp.id for smp in enumerate_samples(d / "in")}
    rows = {l.split(",")[0]: l for l in (d / "out" / "rejected.csv").read_text().splitlines()[1:]}
    return {name: rows.get(ids[f"{i}.json"]) for i, name in enumerate(GATES)}, d / "out"


@pytest.mark.parametrize("case", list(GATES))
def test_quality_gates_reject_keypoints_outside_or_degenerate(case, gated):
    rows, out = gated
    assert rows[case] is not None, f"{case}: accepted"
    assert GATES[case][1] in rows[case], rows[case]
    s = json.loads((out / "summary.json").read_text())
    assert s["accepted"] == 1 and s["rejected"] == len(GATES) and s["failed"] == 0  # the good person passes


def _chunk(store, cid: str, ids, fingerprints, value: float) -> None:
    from smplify.pseudogt.chunks import ChunkRecord

    q = {"mean_error_px": 1.0, "norm_error": 0.01, "prior_nll": -1.0, "confident_keypoints": 17, "converged": True,
         "flipped": False, "failed": False, "box_diagonal_px": 300.0, "outside_keypoints": 0}
    m = len(ids)
    store.write(ChunkRecord(cid, samples=[{"id": i, "image": f"{cid}/{i}.png", "fingerprint": f, "quality": q}
                                          for i, f in zip(ids, fingerprints)]),
                {"global_orient": np.full((m, 3), value, np.float32), "body_pose": np.full((m, 69), value, np.float32),
                 "betas": np.zeros((m, 10), np.float32), "transl": np.zeros((m, 3), np.float32),
                 "focal_length": np.ones((m, 2), np.float32), "principal_point": np.ones((m, 2), np.float32),
                 "image_size": np.ones((m, 2), np.int32), "body_model": np.array(["m"] * m),
                 "body_model_path": np.array(["/m.npz"] * m)})


@pytest.mark.parametrize("same", [True, False], ids=["the same input twice", "another input under the same id"])
def test_an_id_in_two_chunks(same, tmp_path):
    """Overlapping chunks in one folder: the same input is kept once (the first chunk's), another is an error."""
    from smplify.pseudogt import InputError, consolidate
    from smplify.pseudogt.chunks import ChunkStore

    store = ChunkStore(tmp_path)
    store.prepare()
    _chunk(store, "c00000000-aaaaaaaa", ["b", "a"], ["fb", "fa"], 1.0)
    _chunk(store, "c00000001-bbbbbbbb", ["c", "b"], ["fc", "fb" if same else "other"], 2.0)
    if same:
        s = consolidate(tmp_path)
        with np.load(tmp_path / "pseudo_gt.npz") as z:
            assert list(z["ids"]) == ["a", "b", "c"] and list(z["global_orient"][:, 0]) == [1.0, 1.0, 2.0]
        assert s["fitted"] == 3 and s["chunks"] == 2
    else:
        with pytest.raises(InputError, match=r"sample id b names two different inputs: c00000000-aaaaaaaa/b.png "
                                             r"\(chunks/c00000000-aaaaaaaa\) and c00000001-bbbbbbbb/b.png"):
            consolidate(tmp_path)
