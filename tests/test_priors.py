"""Priors: held-out plausibility (AUC), NLL forms, VAE round trips, files, bad data, atomic writes."""
import json

import numpy as np
import pytest
import torch

from priors import get_pose_prior
from priors.evaluate import prior_auc
from priors.gmm import GMMPrior
from priors.posedata import PoseDataError, collect, mirror_poses, open_poses, read_pose_file


@pytest.fixture(scope="module")
def heldout():
    return open_poses("heldout")


@pytest.mark.parametrize("name", ["gmm", "vae"])
def test_heldout_poses_beat_noise_and_uniform(name, heldout):
    r = prior_auc(get_pose_prior(name), heldout)
    assert r["auc_vs_noise_0.3rad"] >= 0.95 and r["auc_vs_uniform_in_limits"] >= 0.95, r


def test_split_is_by_whole_sequence():
    from priors.posedata import OPEN_POSES

    with np.load(OPEN_POSES, allow_pickle=False) as z:
        names = z["sequence_names"]
        seq, split = z["sequence"], z["split"]
    held = {str(names[s]) for s in np.unique(seq[split == "heldout"])}
    train = {str(names[s]) for s in np.unique(seq[split == "train"])}
    assert held == {"holosoma_climb_4"} and not (held & train)


def test_gmm_forms_and_mean():
    g = get_pose_prior("gmm")
    x = torch.tensor(open_poses("heldout")[:16])
    exact, mx = g.nll(x, "logsumexp"), g.nll(x, "max")
    assert torch.all(exact <= mx + 1e-4)  # log-sum-exp >= max component
    assert g.mean_pose().shape == (63,)


def test_gmm_fit_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.3, (400, 63)).astype(np.float32)
    g = GMMPrior.fit(poses, components=2)
    p = g.save(tmp_path / "g.npz")
    g2 = GMMPrior.load(p)
    x = torch.tensor(poses[:5])
    assert torch.allclose(g.nll(x), g2.nll(x), atol=1e-3)
    assert json.loads(str(np.load(p)["meta_json"]))["samples"] == 400


def test_vae_latent_and_penalty_interfaces():
    v = get_pose_prior("vae")
    z = torch.zeros(3, v.latent_dim, requires_grad=True)
    pose = v.decode(z)
    assert pose.shape == (3, 63)
    pose.sum().backward()
    assert z.grad is not None
    x = torch.tensor(open_poses("heldout")[:4])
    assert v.encode_mean(x).shape == (4, v.latent_dim) and v.nll(x).shape == (4,)
    from priors.registry import DEFAULT_FILES

    state = torch.load(DEFAULT_FILES["vae"], weights_only=True)  # plain tensors only
    assert all(torch.is_tensor(t) for t in state.values())


def test_mirror_is_an_involution_and_swaps_sides():
    x = np.random.default_rng(1).normal(0, 0.3, (5, 63)).astype(np.float32)
    m = mirror_poses(x)
    assert np.allclose(mirror_poses(m), x)
    assert np.allclose(m[:, 0:3], x[:, 3:6] * [1, -1, -1])  # left hip <- right hip, mirrored


def test_bad_pose_files(tmp_path):
    np.savez(tmp_path / "empty.npz", poses=np.zeros((0, 63)))
    np.savez(tmp_path / "shape.npz", poses=np.zeros((5, 50)))
    np.savez(tmp_path / "nan.npz", poses=np.full((5, 63), np.nan))
    np.savez(tmp_path / "nokey.npz", x=np.zeros(3))
    for name, msg in (("empty", "no poses"), ("shape", "columns"), ("nan", "NaN"), ("nokey", "no 'poses'")):
        with pytest.raises(PoseDataError, match=msg):
            read_pose_file(tmp_path / f"{name}.npz")
    amass = tmp_path / "amass.npz"
    np.savez(amass, poses=np.zeros((120, 156)), mocap_framerate=120.0, betas=np.zeros(16), trans=np.zeros((120, 3)))
    assert read_pose_file(amass).shape == (15, 63)
    assert collect([tmp_path / "amass.npz"]).shape == (30, 63)  # + mirrored


def test_train_prior_never_overwrites_a_good_file_on_failure(tmp_path):
    from smplify.cli import main

    good = tmp_path / "gmm.npz"
    good.write_bytes(b"GOOD")
    np.savez(tmp_path / "nan.npz", poses=np.full((5, 63), np.nan))
    assert main(["train-prior", "gmm", "--data", str(tmp_path / "nan.npz"), "--out", str(good)]) == 2
    assert good.read_bytes() == b"GOOD"
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "ok.npz", poses=rng.normal(0, 0.3, (300, 63)))
    assert main(["train-prior", "gmm", "--components", "2", "--data", str(tmp_path / "ok.npz"), "--out", str(good)]) == 0
    assert GMMPrior.load(good).means.shape == (2, 63)
    assert not list(tmp_path.glob(".*tmp*"))
