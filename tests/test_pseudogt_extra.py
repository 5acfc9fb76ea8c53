"""pseudo-gt: --model/--gender/--focal honoured, bad INPUT is one line (exit 2), bad COCO entries get real
reasons, a killed merge never leaves a truncated file, --refine-regressor and train-regressor at a tiny size."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from smplify.cli import main


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    from smplify.body.model_file import save_compact_npz
    from smplify.body.tiny import make_tiny_model

    p = tmp_path_factory.mktemp("model") / "tiny.npz"
    save_compact_npz(make_tiny_model(), p)
    return p


def _people(n: int, seed: int = 3) -> list:
    """COCO-17 keypoint lists of n synthetic people (the tiny model, training poses)."""
    from smplify.body import BodyModel
    from smplify.body.tiny import make_tiny_model
    from smplify.keypoints.layouts import COCO17
    from smplify.keypoints.mapping import layout_targets
    from smplify.evaluation.scenes import sample_scenes
    from priors.posedata import open_poses

    body = BodyModel(make_tiny_model())
    idx, names, _ = layout_targets(COCO17, body.landmark_names)
    assert names == COCO17
    sc = sample_scenes(body, torch.tensor(open_poses("train")[:200]), n, torch.Generator().manual_seed(seed))
    return [np.concatenate([sc.uv[i, idx].numpy(), np.full((17, 1), 2.0)], 1).ravel().round(2).tolist()
            for i in range(n)]


def _coco(path: Path, anns: list) -> Path:
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "synthetic.jpg", "width": 1080, "height": 1920}],
                                "annotations": anns}))
    return path


LENIENT = ["--max-error", "10", "--max-nll", "1e9", "--min-keypoints", "0"]


@pytest.mark.e2e
def test_model_focal_recorded_and_refine_regressor(tmp_path, tiny_file, capsys):
    coco = _coco(tmp_path / "coco.json", [{"id": 10 + i, "image_id": 1, "keypoints": kp}
                                          for i, kp in enumerate(_people(2))])
    out = tmp_path / "out"
    rc = main(["pseudo-gt", str(coco), "--out", str(out), "--model", str(tiny_file), "--focal", "1234",
               "--no-flip-test", "--refine-regressor", "--refine-steps", "2", "--refine-benchmark-cases", "4"] + LENIENT)
    assert rc == 0, capsys.readouterr().err
    with np.load(out / "pseudo_gt.npz", allow_pickle=False) as z:
        assert list(z["ids"]) == ["ann10", "ann11"]
        assert set(z["body_model"]) == {"tiny-test"}
        assert set(z["body_model_path"]) == {str(tiny_file)}
        assert np.allclose(z["focal_length"], 1234.0)
        assert z["betas"].shape == (2, 10)
    (chunk,) = (out / "chunks").glob("*.npz")  # one chunk of both people
    with np.load(chunk, allow_pickle=False) as z:
        assert list(z["body_model"]) == ["tiny-test"] * 2 and np.allclose(z["focal_length"], 1234.0)
    # --refine-regressor: refined on the fits of the model used, weights loadable without pickle
    rep = json.loads((out / "refine_regressor.json").read_text())
    assert rep["refined"] and rep["samples"] == 2 and rep["steps"] == 2 and rep["body_model"] == "tiny-test"
    assert np.isfinite(rep["benchmark_pa_mpjpe_mm_before"]) and np.isfinite(rep["benchmark_pa_mpjpe_mm_after"])
    state = torch.load(out / "regressor_refined.pt", map_location="cpu", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    from smplify.regressor import load_regressor

    assert load_regressor(out / "regressor_refined.pt").num_points > 0
    assert "benchmark PA-MPJPE" in capsys.readouterr().out


@pytest.mark.e2e
def test_train_regressor_tiny(tmp_path, tiny_file, capsys):
    dest = tmp_path / "reg.pt"
    rc = main(["train-regressor", "--steps", "2", "--batch", "4", "--model", str(tiny_file), "--out", str(dest)])
    assert rc == 0, capsys.readouterr().err
    state = torch.load(dest, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    meta = json.loads(dest.with_suffix(".json").read_text())
    assert meta["steps"] == 2 and meta["body_model"] == "tiny-test" and np.isfinite(meta["final_loss"])
    from smplify.regressor import load_regressor

    assert load_regressor(dest, 41).num_points == 41  # the tiny model's 24 joints + 17 landmarks


def _bad_inputs(tmp_path: Path) -> dict:
    (tmp_path / "malformed.json").write_text('{"annotations": [')
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "notcoco.json").write_text('{"people": []}')
    (tmp_path / "one.npz").write_bytes(b"not an npz")
    return {"malformed.json": "malformed JSON", "list.json": "JSON list", "notcoco.json": "no 'annotations' list",
            "missing": "not found", "one.npz": "expected a folder"}


@pytest.mark.parametrize("name", ["malformed.json", "list.json", "notcoco.json", "missing", "one.npz"])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, name):
    why = _bad_inputs(tmp_path)[name]
    src, out = tmp_path / name, tmp_path / "out"
    rc = main(["pseudo-gt", str(src), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith(f"error: {src}: ") and why in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing written for an unusable INPUT


@pytest.mark.e2e
def test_bad_coco_entries_get_reasons(tmp_path, tiny_file):
    from smplify.pseudogt import run_pseudo_gt

    good = _people(1)[0]
    unlabelled = [v if (i % 3) != 2 else 0 for i, v in enumerate(good)]
    anns = [{"id": 1, "image_id": 1, "keypoints": good},
            {"id": 2, "image_id": 1, "keypoints": good, "iscrowd": 1},
            {"id": 3, "image_id": 1, "keypoints": unlabelled},
            {"id": 4, "image_id": 77, "keypoints": good},
            "not an annotation"]
    from smplify.config import FitConfig

    s = run_pseudo_gt(_coco(tmp_path / "coco.json", anns), tmp_path / "out", progress=False, model=str(tiny_file),
                      config=FitConfig(flip_test=False))
    assert s["fitted"] == 1 and s["failed"] == 4
    reasons = {f["id"]: f["reason"] for f in s["failures"]}
    assert reasons["ann2"] == "crowd annotation"
    assert reasons["ann3"] == "no labelled keypoints"
    assert reasons["ann4"] == "image id 77 not in images"
    assert reasons["ann_at4"] == "annotation is a str, not an object"
    assert not any("StopIteration" in r for r in reasons.values())
    assert "failed: crowd annotation" in (tmp_path / "out" / "rejected.csv").read_text()


def _fake_shard(d: Path, n: int = 3) -> None:
    """A finished shard folder without fitting (consolidate is replaced in the merge test)."""
    from smplify.pseudogt.chunks import ChunkRecord, ChunkStore

    store = ChunkStore(d)
    store.prepare()
    for c in range(n):
        store.write(ChunkRecord(f"c{c:08d}-fake", samples=[{"id": f"s{c}", "image": f"{c}.png", "fingerprint": str(c),
                                                             "quality": {}}]),
                    {"payload": np.arange(2000.0) + c})


def test_killed_merge_leaves_no_truncated_file(tmp_path, monkeypatch):
    from smplify.pseudogt import merging as pseudogt

    monkeypatch.setattr(pseudogt, "consolidate", lambda out, th=None: {})
    _fake_shard(tmp_path / "s0")
    real_copy, calls = shutil.copy2, {"n": 0}

    def dying_copy(src, dst, *a, **k):  # a merge killed half-way through its third file
        calls["n"] += 1
        if calls["n"] == 3:
            Path(dst).write_bytes(Path(src).read_bytes()[:100])
            raise KeyboardInterrupt
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(pseudogt.shutil, "copy2", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        pseudogt.merge([tmp_path / "s0"], tmp_path / "m")
    chunks = tmp_path / "m" / "chunks"
    for f in chunks.iterdir():
        if not f.name.startswith("."):
            assert f.stat().st_size == (tmp_path / "s0" / "chunks" / f.name).stat().st_size, f.name
    # a chunk's finished marker (.json) never arrives before its .npz
    for j in chunks.glob("*.json"):
        assert j.with_suffix(".npz").exists()
    assert not (tmp_path / "m" / ".lock").exists()  # released by the interrupted merge
    monkeypatch.setattr(pseudogt.shutil, "copy2", real_copy)
    pseudogt.merge([tmp_path / "s0"], tmp_path / "m")  # the rerun completes it
    names = sorted(f.name for f in chunks.iterdir())
    assert names == sorted(f"c{c:08d}-fake.{e}" for c in range(3) for e in ("json", "npz"))
    for n in names:
        assert (chunks / n).read_bytes() == (tmp_path / "s0" / "chunks" / n).read_bytes()
