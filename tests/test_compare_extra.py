"""compare-priors: one shared start pose for every prior, loss curves and convergence plot, a grid with
side views that honours --init, --images streaming rows and failing cleanly when no photo is usable."""
import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from smplify.cli import main


@pytest.fixture
def short_schedule(monkeypatch):
    """compare-priors' own FitConfig (checked: shared start pose), with a few iterations per stage."""
    from smplify.cli import evaluate as bcli

    real, seen = bcli.fit_config, []

    def short(args):
        cfg = real(args)
        seen.append(cfg)
        return replace(cfg, stages=tuple(replace(s, iterations=3) for s in cfg.schedule()), flip_test=False)

    monkeypatch.setattr(bcli, "fit_config", short)
    return seen


def test_compare_config_shares_the_start_pose():
    import argparse

    from smplify.cli.evaluate import fit_config
    from smplify.cli import build_parser

    args = build_parser().parse_args(["compare-priors", "--out", "x", "--init", "regressor"])
    cfg = fit_config(args)
    assert cfg.start_pose == "shared" and cfg.init == "regressor" and cfg.optimizer == "lbfgs"
    assert fit_config(build_parser().parse_args(["benchmark", "--out", "x"])).start_pose == "prior"
    args = build_parser().parse_args(["compare-priors", "--out", "x", "--start-pose", "prior"])
    assert fit_config(args).start_pose == "prior"
    assert fit_config(argparse.Namespace(optimizer="lbfgs", init="mean")).start_pose == "prior"


@pytest.mark.e2e
def test_compare_priors_curves_convergence_and_grid(tmp_path, short_schedule, monkeypatch):
    from smplify.evaluation import plots

    grids = []
    real_grid = plots.qualitative_grid
    monkeypatch.setattr(plots, "qualitative_grid", lambda *a, **k: grids.append((a, k)) or real_grid(*a, **k))
    out = tmp_path / "cmp"
    rc = main(["compare-priors", "--priors", "none,gmm", "--n", "1", "--noise", "8", "--dropout", "0.3",
               "--init", "regressor", "--out", str(out)])
    assert rc == 0
    assert short_schedule and all(c.start_pose == "shared" and c.init == "regressor" for c in short_schedule)
    recs = [json.loads(l) for l in (out / "curves.jsonl").read_text().splitlines()]
    assert [r["prior"] for r in recs] == ["none", "gmm"]
    for r in recs:
        assert len(r["loss_curve"]) >= 1 and all(np.isfinite(r["loss_curve"])) and r["stage_losses"]
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "loss_curve" not in header and "stage_losses" not in header  # curves live in curves.jsonl
    for f in ("convergence.png", "grid.png", "error_by_prior.png"):
        assert (out / f).stat().st_size > 0, f
    # the grid shows the benchmarked fits themselves (same config): no refit
    (args, kw) = grids[0]
    assert args[5].init == "regressor" and set(kw["results"]) == {"none", "gmm"}
    assert all(v is not None for d in kw["results"].values() for v in d.values())


def test_convergence_plot_from_curves(tmp_path):
    from smplify.evaluation.plots import _normalised_curves, convergence_plot

    recs = [{"prior": "gmm", "loss_curve": [4.0, 2.0, 1.0]}, {"prior": "gmm", "loss_curve": [10.0, 5.0]},
            {"prior": "none", "loss_curve": [3.0, 1.0, 0.5, 0.25]}, {"prior": "none", "loss_curve": []}]
    C, starts = _normalised_curves(recs[:2])  # no stage lengths: whole curves
    # remaining decrease (f - f_end) / (f_1 - f_end), padded with the last value
    assert np.allclose(C, [[1.0, 1 / 3, 0.0], [1.0, 0.0, 0.0]]) and starts == []
    neg, _ = _normalised_curves([{"loss_curve": [5.0, -200.0, -210.0]}])  # GMM objectives go negative
    assert np.allclose(neg, [[1.0, 10 / 215, 0.0]])
    # stages split by the iterations each contributed (a stage that stopped early repeats its last value)
    staged = [{"loss_curve": [10.0, 6.0, 5.0, 5.0, 3.0, 2.0, 1.0], "stage_iterations": [4, 3]},
              {"loss_curve": [8.0, 4.0, 9.0, 1.0], "stage_iterations": [2, 2]}]
    C, starts = _normalised_curves(staged)
    assert starts == [0, 4]
    assert np.allclose(C, [[1.0, 0.2, 0.0, 0.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    recs[0]["stage_iterations"] = [1]  # does not add up to the curve: whole curves
    p = tmp_path / "curves.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"prior": "gmm", "loss_cu')  # torn last line
    convergence_plot(p, tmp_path / "convergence.png")
    assert (tmp_path / "convergence.png").stat().st_size > 0
    convergence_plot(tmp_path / "absent.jsonl", tmp_path / "empty.png")  # no curves: still a figure
    assert (tmp_path / "empty.png").exists()


def test_read_rows_skips_a_torn_row(tmp_path):
    from smplify.evaluation.runner import FIELDS, read_rows

    p = tmp_path / "r.csv"
    full = ["gmm", "0"] + ["1"] * (len(FIELDS) - 2)
    p.write_text(",".join(FIELDS) + "\n" + ",".join(full) + "\n" + ",".join(full[:5]) + "\n")
    assert len(read_rows(p)) == 1


def _photos(folder: Path, n: int, size=(216, 384)) -> list:
    from PIL import Image

    folder.mkdir()
    out = []
    for i in range(n):
        p = folder / f"p{i}.png"
        Image.new("RGB", size, (90 + 40 * i, 120, 150)).save(p)
        out.append(p)
    return out


def _fake_detector(monkeypatch, size=(216, 384)):
    """read_inputs(photo) -> COCO-17 keypoints of a synthetic person (no detector needed)."""
    import torch

    from smplify import api
    from smplify.keypoints import Keypoints2D
    from smplify.keypoints.layouts import COCO17
    from smplify.keypoints.mapping import layout_targets
    from smplify.evaluation.scenes import sample_scenes
    from priors.posedata import open_poses

    body = api.load_body()
    idx, names, _ = layout_targets(COCO17, body.landmark_names)
    assert list(names) == list(COCO17)
    sc = sample_scenes(body, torch.tensor(open_poses("train")[:50]), 4, torch.Generator().manual_seed(1),
                       image_size=size)

    def read_inputs(p, **kw):
        i = int(Path(p).stem[1:])
        return [Keypoints2D("coco17", tuple(COCO17), sc.uv[i, idx].numpy().astype(np.float32),
                            np.ones(17, np.float32), size, str(p), None, "test", {})]

    monkeypatch.setattr(api, "read_inputs", read_inputs)


@pytest.mark.e2e
def test_images_rows_stream_and_grid_has_side_views(tmp_path, monkeypatch, short_schedule):
    from smplify.fitting import Fitter

    photos = _photos(tmp_path / "photos", 2)
    _fake_detector(monkeypatch)
    out = tmp_path / "img"
    real_fit, calls = Fitter.fit, {"n": 0}

    def interrupt_third(fitter, items):  # rows already written must survive an interruption
        calls["n"] += 1
        if calls["n"] == 3:
            assert len(list(csv.DictReader(open(out / "images.csv")))) == 2  # flushed as each fit finished
            raise KeyboardInterrupt
        return real_fit(fitter, items)

    monkeypatch.setattr(Fitter, "fit", interrupt_third)
    rc = main(["compare-priors", "--images", str(tmp_path / "photos"), "--priors", "none,gmm", "--out", str(out)])
    assert rc == 130
    rows = list(csv.DictReader(open(out / "images.csv")))
    assert [(r["prior"], Path(r["image"]).name) for r in rows] == [("none", "p0.png"), ("none", "p1.png")]
    assert "| gmm | 0 |" in (out / "images_summary.md").read_text()
    monkeypatch.setattr(Fitter, "fit", real_fit)
    rc = main(["compare-priors", "--images", str(tmp_path / "photos"), "--priors", "none,gmm", "--out", str(out)])
    assert rc == 0
    assert len(list(csv.DictReader(open(out / "images.csv")))) == 4
    from PIL import Image

    g = Image.open(out / "images_grid.png")
    # per photo one row; per prior the fit over the photo and its side view (each 360 px high)
    assert g.height == 2 * 360 and g.width == 2 * int(2 * 216 * 360 / 384)
    assert all(c.start_pose == "shared" for c in short_schedule)


def test_images_all_failed_is_one_line_exit_2(tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(2):
        (folder / f"x{i}.jpg").write_bytes(b"not a jpeg")
    rc = main(["compare-priors", "--images", str(folder), "--priors", "none", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith(f"error: {folder}: no person found in any of its 2 photos")
    assert not any("Traceback" in l for l in err)
