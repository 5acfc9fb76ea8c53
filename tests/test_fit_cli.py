"""`smplify fit` end to end on a real photo; the outputs reproduce the fit through smplx."""
import json

import numpy as np
import pytest
import torch

from smplify.cli import main

IMAGES = "examples/images"


@pytest.mark.e2e
def test_fit_photo_writes_usable_outputs_and_survives_bad_input(tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a photo")
    rc = main(["fit", f"{IMAGES}/pose2sim_balance.jpg", str(bad), "--out", str(tmp_path / "out")])
    cap = capsys.readouterr()
    assert rc == 1 and "broken.jpg" in cap.err and len(cap.err.strip().splitlines()) == 1
    out = tmp_path / "out"
    for suffix in (".npz", ".obj", ".json", "_overlay.png"):
        assert (out / f"pose2sim_balance{suffix}").exists(), suffix
    rep = json.loads((out / "pose2sim_balance.json").read_text())
    assert rep["mean_reprojection_error_px"] < 25 and len(rep["keypoints"]) > 20
    assert {"data", "pose_prior", "bend", "shape"} <= set(rep["loss_terms"])
    # the parameters reproduce the mesh through smplx's own SMPL forward
    from smplify.body import load_model_file
    from smplify.body.model_file import to_smplx_model
    from smplify.outputs.mesh_io import read_obj

    z = np.load(out / "pose2sim_balance.npz")
    ref = to_smplx_model(load_model_file(str(z["body_model_path"])))
    o = ref(**{k: torch.tensor(z[k]) for k in ("global_orient", "body_pose", "betas", "transl")})
    v, _ = read_obj(out / "pose2sim_balance.obj")
    assert np.abs(o.vertices[0].detach().numpy() - v).max() < 1e-4
    assert z["focal_length"].shape == (2,) and tuple(z["image_size"]) == (1080, 1920)


@pytest.mark.e2e
def test_astronaut_legs_left_to_the_prior(tmp_path):
    from smplify import api

    r = api.fit(f"{IMAGES}/astronaut.png", prior="gmm")
    legs = [e for n, e in zip(r.keypoint_names, r.keypoint_error_px) if "knee" in n or "ankle" in n]
    assert legs and all(e is None for e in legs)  # missing, not fitted to noise
    assert np.isfinite(r.body_pose).all() and r.mean_error_px < 15


def test_missing_model_file_is_one_line(tmp_path, capsys):
    rc = main(["fit", f"{IMAGES}/astronaut.png", "--model", str(tmp_path / "nope.pkl"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "nope.pkl" in err and len(err.strip().splitlines()) == 1


#: a person standing facing the camera in a 480x640 photo, COCO-17 order
STANDING = np.array([(240, 100), (250, 90), (230, 90), (262, 95), (218, 95), (290, 160), (190, 160), (305, 250),
                     (175, 250), (310, 330), (170, 330), (270, 330), (210, 330), (272, 450), (208, 450),
                     (274, 570), (206, 570)], np.float64)


def _npy(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.concatenate([STANDING, np.ones((17, 1))], 1))
    return path


def test_fit_array_file_with_layout_and_image_size(tmp_path, capsys):
    a, b = _npy(tmp_path / "a" / "kp.npy"), _npy(tmp_path / "b" / "kp.npy")
    out = tmp_path / "out"
    assert main(["fit", str(a), "--out", str(out)]) == 1  # an array needs its layout named
    assert "name the layout" in capsys.readouterr().err
    rc = main(["fit", str(a), str(b), "--layout", "coco", "--image-size", "480,640", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    rep = json.loads((out / "kp.json").read_text())
    assert rep["camera"]["principal_point"] == [240.0, 320.0] and rep["camera"]["image_size"] == [480, 640]
    assert not rep["warnings"] and rep["mean_reprojection_error_px"] < 25
    assert (out / "kp_2.json").exists()  # same stem from two folders: the second does not overwrite the first
    # no size: guessed from the points, and the fit says so
    assert main(["fit", str(a), "--layout", "coco17", "--out", str(tmp_path / "guess"), "--no-overlay"]) == 0
    printed = capsys.readouterr().out
    rep = json.loads((tmp_path / "guess" / "kp.json").read_text())
    assert any("principal point" in w and "guessed" in w for w in rep["warnings"]), rep["warnings"]
    assert "principal point" in printed


@pytest.mark.parametrize("opt", [["--bbox", "1,2,x"], ["--layout", "smpl"], ["--image-size", "640"],
                                 ["--image-size", "0,480"]])
def test_bad_input_options_are_one_line(tmp_path, capsys, opt):
    rc = main(["fit", str(_npy(tmp_path / "kp.npy")), "--out", str(tmp_path / "out")] + opt)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ") and opt[0] in err
    assert not (tmp_path / "out").exists()


def test_fit_refuses_to_overwrite_its_input(tmp_path, capsys):
    d = {"images": [{"id": 1, "file_name": "p.jpg", "width": 480, "height": 640}],
         "annotations": [{"id": 5, "image_id": 1,
                          "keypoints": np.concatenate([STANDING, np.full((17, 1), 2)], 1).ravel().tolist()}]}
    src = tmp_path / "people.json"
    src.write_text(json.dumps(d))
    before = src.read_text()
    rc = main(["fit", str(src), "--out", str(tmp_path), "--image-id", "p.jpg"])
    err = capsys.readouterr().err
    assert rc == 2 and "overwrite the input" in err and len(err.strip().splitlines()) == 1
    assert src.read_text() == before and not (tmp_path / "people.npz").exists()
    rc = main(["fit", str(src), "--out", str(tmp_path / "out"), "--image-id", "1", "--no-overlay"])
    assert rc == 0 and (tmp_path / "out" / "people.json").exists()


def test_demo_fits_with_every_fit_option_at_its_default(tmp_path):
    """`make demo` builds fit's arguments through fit's own parser: none can be missing."""
    from smplify.cli.demo import fit_arguments
    from smplify.cli.fit import config_from_args
    from smplify.paths import EXAMPLE_PHOTO as EXAMPLE

    args = fit_arguments(EXAMPLE, tmp_path, "gmm")
    cfg = config_from_args(args)
    assert args.inputs == [str(EXAMPLE)] and cfg.prior == "gmm" and cfg.device == "cpu" and cfg.optimizer == "lbfgs"
