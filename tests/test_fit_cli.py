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
