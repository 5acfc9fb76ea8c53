"""The new pose data readers, the chain-factorised GMM, the anatomical joint limits and the
leave-one-group-out harness (tiny fixtures; the full evaluation is `smplify crossval`)."""
import gzip
import json
import warnings

import numpy as np
import pytest
import torch

from priors.chains import CHAINS, ChainGMMPrior, SumPrior, chain_columns
from priors.limits import JointLimitPrior, joint_ranges
from priors.mocap import BVHFrameCountWarning, bvh_positions, category_group
from priors.posedata import mirror_poses, open_poses
from smplify.residuals import has_least_squares_form, pose_prior_normal

BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Knee
  {
    OFFSET 0 -10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -10 0
    }
  }
}
MOTION
Frames: %d
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0
1 0 0 0 90 0 0 0 0
"""


def test_bvh_gz_and_a_frame_count_one_short_reads_with_a_warning(tmp_path):
    p = tmp_path / "clip.bvh.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(BVH % 1)  # declares 1 frame, holds 2
    with pytest.warns(BVHFrameCountWarning, match="holds 2 frames of motion but declares 1"):
        names, pos, ft = bvh_positions(p)
    assert names == ("Hips", "Knee") and pos.shape == (2, 2, 3)
    np.testing.assert_allclose(pos[1, 1], [1, 0, -10], atol=1e-9)  # root turned 90° about x: the knee -y -> -z
    (tmp_path / "ok.bvh").write_text(BVH % 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bvh_positions(tmp_path / "ok.bvh")[1].shape == (2, 2, 3)


def test_index_categories_map_to_groups():
    assert category_group("climbing/playground (climb, hang, sit, drop, get down)") == "climbing"
    assert category_group("dance", "salsa dance (lead/follow pairs)") == "salsa"
    assert category_group("sports/combat (basketball, soccer, swordplay, punch)") == "sports"
    with pytest.raises(ValueError, match="unknown mocap category"):
        category_group("knitting")


def test_shipped_pose_set_has_groups_sources_and_small_ik_error():
    from priors.posedata import OPEN_POSES

    with np.load(OPEN_POSES, allow_pickle=False) as z:
        groups = [str(g) for g in z["group_names"]]
        assert len(z["group"]) == len(z["poses"]) == len(z["sequence"])
        report = json.loads(str(z["report_json"]))
        sources = json.loads(str(z["sources_json"]))
    assert {"climbing", "dance", "salsa", "locomotion", "holosoma_climb"} <= set(groups)
    assert len(report) >= 170
    for layout, s in sources["layout"].items():  # the < 2 cm check, per source
        assert s["ik_mean_error_cm"] < 2.0, (layout, s)


def test_chain_prior_least_squares_matches_its_nll_and_autograd(tmp_path):
    poses = open_poses("train")[:600]
    c = ChainGMMPrior.fit(np.concatenate([poses, mirror_poses(poses)]), components=3)
    c = ChainGMMPrior.load(c.save(tmp_path / "c.npz"))
    assert sorted(sum((list(j) for j in CHAINS.values()), [])) == list(range(1, 22))
    for prior in (c, SumPrior([c, JointLimitPrior()], [1.0, 2.0])):
        x = (torch.tensor(poses[:6]) + 0.6 * torch.randn(6, 63)).requires_grad_()
        f, g, H = pose_prior_normal(prior, x.detach())
        prior.nll(x).sum().backward()
        assert has_least_squares_form(prior)
        assert torch.allclose(f, prior.nll(x.detach()), rtol=1e-4, atol=1e-3)
        assert torch.allclose(g, 0.5 * x.grad, atol=1e-3)
        assert H.shape == (6, 63, 63)
        cols = chain_columns(CHAINS["left_arm"])
        assert torch.all(H[:, cols][:, :, chain_columns(CHAINS["left_leg"])] == 0)  # block-diagonal


def test_chain_prior_prefers_real_limbs_recombined_over_noise():
    """A pose made of one real pose's arms and another's legs scores like a real pose, far from noise."""
    poses = open_poses("train")
    c = ChainGMMPrior.fit(np.concatenate([poses, mirror_poses(poses)]), components=4)
    rng = np.random.default_rng(0)
    a, b = poses[rng.choice(len(poses), 200)], poses[rng.choice(len(poses), 200)]
    mix = a.copy()
    legs = chain_columns(CHAINS["left_leg"] + CHAINS["right_leg"])
    mix[:, legs] = b[:, legs]
    noisy = a + rng.normal(0, 0.3, a.shape).astype(np.float32)
    nll = lambda p: c.nll(torch.tensor(p)).numpy()
    assert np.median(nll(mix)) < np.percentile(nll(noisy), 5)


def test_joint_limits_zero_inside_positive_outside_mirrored_and_admit_real_motion():
    lo, hi = joint_ranges()
    L = JointLimitPrior()
    assert float(L.nll(torch.zeros(1, 63))) == 0.0
    knee = torch.zeros(2, 63)
    knee[0, 9] = 1.5  # left knee flexed 86°: fine
    knee[1, 9] = -1.0  # bent forwards 57°: impossible
    f = L.nll(knee)
    assert f[0] == 0 and f[1] > 10
    # right = mirror of left (x kept, y/z negated)
    m_lo, m_hi = mirror_poses(lo[None])[0], mirror_poses(hi[None])[0]
    np.testing.assert_allclose(np.minimum(m_lo, m_hi), lo, atol=1e-6)
    np.testing.assert_allclose(np.maximum(m_lo, m_hi), hi, atol=1e-6)
    x = torch.randn(5, 63, requires_grad=True)
    fl, g, H = L.least_squares(x.detach())
    L.nll(x).sum().backward()
    assert torch.allclose(g, 0.5 * x.grad, atol=1e-5) and H.shape == (5, 63)
    # the ranges admit real motion: of the 19k mocap poses, 79 % lie inside every range and 95 % within
    # 15° of them (the rest: IK artefacts of collars, shoulders and spines whose SMPL joints are no anatomy)
    real = open_poses("train")
    assert (L.violation_deg(torch.tensor(real)) <= 15).float().mean() > 0.93  # measured 0.948 (0.79 inside all)


def test_chain_registry_adds_stored_limits_weight(tmp_path):
    from priors import get_pose_prior

    poses = open_poses("train")[:300]
    c = ChainGMMPrior.fit(poses, components=2)
    c.meta["limits_weight"] = 0.5
    p = get_pose_prior("chain", str(c.save(tmp_path / "c.npz")))
    assert p.name == "chain" and isinstance(p, SumPrior) and p.weights == [1.0, 0.5]
    assert get_pose_prior("limits").name == "limits"


def test_crossval_harness_on_a_tiny_fixture(tmp_path):
    from priors.crossval import read_csv, summarise
    from smplify.cli.crossval import main

    poses = open_poses("train")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(poses), 120, replace=False)
    path = tmp_path / "p.npz"
    np.savez(path, poses=poses[pick], group=np.repeat([0, 1, 2], 40).astype(np.int8),
             group_names=np.array(["a", "b", "c"]))
    out = tmp_path / "cv"
    args = ["--out", str(out), "--poses", str(path), "--n", "2", "--priors", "none,limits", "--scales", "1,3",
            "--noise", "0", "--dropout", "0"]
    assert main(args) == 0
    rows = read_csv(out / "crossval.csv")
    assert len(rows) == 3 * (1 + 2) * 2  # groups x (none + 2 scales) x bodies
    assert main(args) == 0 and len(read_csv(out / "crossval.csv")) == len(rows)  # resumed: nothing refitted
    s = summarise(rows)
    assert set(s["priors"]) == {"none", "limits"} and set(s["groups"]) == {"a", "b", "c"}
    assert all(np.isfinite(v) for v in s["priors"]["limits"]["per_group"].values())
    assert "| none |" in (out / "summary.md").read_text()
    assert main(["--out", str(tmp_path / "x"), "--poses", str(path), "--groups", "zz"]) == 2
    # a group's cases do not depend on which groups a run holds out (--groups c alone: the same fits of c)
    assert main(args[:1] + [str(tmp_path / "c")] + args[2:] + ["--groups", "c"]) == 0
    key = lambda r: (r["prior"], r["scale"], r["case"])
    alone = {key(r): r["pa_mpjpe_mm"] for r in read_csv(tmp_path / "c" / "crossval.csv")}
    assert alone == {key(r): r["pa_mpjpe_mm"] for r in rows if r["group"] == "c"}


def test_gmm_weight_scales_every_form_and_survives_save(tmp_path):
    from priors.gmm import GMMPrior

    rng = np.random.default_rng(1)
    poses = rng.normal(0, 0.3, (300, 63)).astype(np.float32)
    g1 = GMMPrior.fit(poses, components=2, progress=False)
    g3 = GMMPrior.load(GMMPrior(g1.means.numpy(), g1._covars.numpy(), g1._weights,
                                dict(g1.meta, weight=3.0)).save(tmp_path / "g3.npz"))
    x = torch.tensor(poses[:7]) + 0.2
    assert g3.weight == 3.0
    for mode in ("max", "logsumexp"):
        assert torch.allclose(g3.nll(x, mode), 3 * g1.nll(x, mode), rtol=1e-4, atol=1e-3)
    f1, gr1, H1 = pose_prior_normal(g1, x)
    f3, gr3, H3 = pose_prior_normal(g3, x)
    assert torch.allclose(f3, 3 * f1, rtol=1e-4) and torch.allclose(gr3, 3 * gr1, rtol=1e-4, atol=1e-5)
    assert torch.allclose(H3, 3 * H1, rtol=1e-4)


def test_benchmark_on_the_users_own_poses(tmp_path):
    from smplify.cli import main

    poses = open_poses("train")[:20]
    np.savez(tmp_path / "mine.npz", poses=poses)  # a plain (N, 63) pose file
    out = tmp_path / "b"
    assert main(["benchmark", "--prior", "none", "--init", "mean", "--n", "2", "--noise", "0", "--dropout", "0",
                 "--poses", str(tmp_path / "mine.npz"), "--out", str(out)]) == 0
    assert (out / "summary.md").exists()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main(["benchmark", "--prior", "none", "--n", "2", "--poses", str(tmp_path / "bad.npz"),
                 "--out", str(tmp_path / "c")]) == 2


def test_eval_poses_from_a_bvh_by_ik(tmp_path):
    from priors.mocap import detect_joint_map
    from priors.posedata import PoseDataError, load_eval_poses

    src = "/work/shared/data/mocap/mocapbank_walk.bvh"
    import os

    if not os.path.exists(src):
        pytest.skip("shared mocap not here")
    text = open(src).read()
    head, motion = text.split("MOTION")
    lines = motion.strip().splitlines()
    (tmp_path / "walk.bvh").write_text(head + "MOTION\nFrames: 30\n" + lines[1] + "\n" + "\n".join(lines[2:32]) + "\n")
    poses = load_eval_poses([tmp_path / "walk.bvh"], fps=10)
    assert poses.shape == (10, 63) and np.isfinite(poses).all()
    with pytest.raises(ValueError, match="unknown BVH skeleton"):
        detect_joint_map(("a", "b"), "x.bvh")
    with pytest.raises(PoseDataError, match="not found"):
        load_eval_poses([tmp_path / "nope.npz"])


def _per_chain_reference(prior, pose):
    """Straightforward per-chain max-form mixtures (one chain at a time, no padding): f, g = ½∇f, H = ½∇²f."""
    p = pose[:, :63].double()
    B = p.shape[0]
    f, g, H = p.new_zeros(B), p.new_zeros(B, 63), p.new_zeros(B, 63, 63)
    for ch in prior.chains.values():
        hp, mu = ch.half_precisions.double(), ch.means.double()
        diff = p[:, ch.cols][:, None] - mu  # (B, K, d)
        comp = ch.offset.double() + torch.einsum("bkd,kde,bke->bk", diff, hp, diff)
        fc, k = comp.min(1)
        f += fc
        for b in range(B):
            g[b, ch.cols] += hp[k[b]] @ diff[b, k[b]]
            H[b, ch.cols[:, None], ch.cols[None, :]] += hp[k[b]]
    return prior.weight * f, prior.weight * g, prior.weight * H


@pytest.mark.parametrize("batch", [1, 37])
def test_chain_prior_stacked_evaluation_equals_per_chain_reference(tmp_path, batch):
    """The padded one-op evaluation of the limb chains (plus the whole-body mixture) gives the per-chain
    mixtures' values, gradients and Hessian blocks."""
    poses = open_poses("train")[:400]
    train = np.concatenate([poses, mirror_poses(poses)])
    c = ChainGMMPrior.fit(train, components=3, body_reg=1e-2)
    c = ChainGMMPrior.load(c.save(tmp_path / "c.npz"))
    c.weight = 0.7
    torch.manual_seed(batch)
    x = torch.tensor(poses[:batch], dtype=torch.float32) + 0.5 * torch.randn(batch, 63)
    fr, gr, Hr = _per_chain_reference(c, x)
    f, g, H = c.least_squares(x)
    f2, g2, H2 = c.least_squares(x, hessian=False)
    assert H.shape == (batch, 63, 63) and H2 is None
    for a, b in ((f, fr), (c.nll(x), fr), (f2, fr)):
        assert torch.allclose(a.double(), b, rtol=1e-5, atol=1e-3), (a - b).abs().max()
    for a, b in ((g, gr), (g2, gr)):
        assert torch.allclose(a.double(), b, rtol=1e-4, atol=1e-3), (a - b).abs().max()
    assert torch.allclose(H.double(), Hr, rtol=1e-5, atol=1e-4)
    # limb chains only (no whole-body mixture), different component counts per chain
    limbs = ChainGMMPrior({n: {"joints": j, "means": np.random.default_rng(i).normal(0, 0.3, (2 + i % 3, 3 * len(j))),
                                "covars": np.stack([np.eye(3 * len(j)) * (0.1 + 0.05 * i)] * (2 + i % 3)),
                                "weights": np.full(2 + i % 3, 1.0 / (2 + i % 3))}
                           for i, (n, j) in enumerate(CHAINS.items())})
    fr, gr, Hr = _per_chain_reference(limbs, x)
    f, g, H = limbs.least_squares(x)
    assert torch.allclose(f.double(), fr, rtol=1e-5, atol=1e-3)
    assert torch.allclose(limbs.nll(x).double(), fr, rtol=1e-5, atol=1e-3)
    assert torch.allclose(g.double(), gr, rtol=1e-4, atol=1e-3)
    assert torch.allclose(H.double(), Hr, rtol=1e-5, atol=1e-4)


def test_ik_chain_offsets_move_the_arm_not_the_collar():
    """Arms that hang 6 cm further in than SMPL's (as in CMU's salsa files): with one offset per arm in the chest's
    frame and the collars held near zero (priors.mocap.ik_options), the IK keeps the collars still and the
    error small; without, it turns the collars to reach the shoulders."""
    from priors.ik import fit_sequence
    from priors.mocap import SALSA_ARM_CHAINS, SALSA_JOINT_REG
    from smplify.body import BodyModel, load_model_file
    from smplify.body.names import SMPL_JOINT_NAMES as N

    body = BodyModel(load_model_file())
    poses = torch.tensor(open_poses("train")[::997][:12])
    poses[:, 3 * 12: 3 * 14] = 0  # collars (joints 13, 14) still
    T = len(poses)
    with torch.no_grad():
        _, _, g_pos, g_rot, _ = body._pose(torch.zeros(T, 3), poses, None, None)
    arms = {"left": [N.index(f"left_{j}") for j in ("shoulder", "elbow", "wrist")],
            "right": [N.index(f"right_{j}") for j in ("shoulder", "elbow", "wrist")]}
    pos = g_pos.clone()
    for side, sign in (("left", -1.0), ("right", 1.0)):  # x points to the body's left: move both arms inwards
        shift = torch.einsum("tij,j->ti", g_rot[:, N.index("spine3")], torch.tensor([0.06 * sign, 0.0, 0.0]))
        pos[:, arms[side]] += shift[:, None]
    names = list(N)
    jmap = {n: (n, 0.3 if "collar" in n or "spine" in n or n in ("neck", "head", "pelvis") else 1.0)
            for n in N[:22]}
    collar = lambda r: float(np.linalg.norm(r.body_pose.reshape(T, 21, 3)[:, 12:14], axis=-1).mean())
    plain = fit_sequence(body, pos.numpy(), names, jmap, iterations=150)
    chained = fit_sequence(body, pos.numpy(), names, jmap, iterations=150, chains=SALSA_ARM_CHAINS,
                           joint_reg=SALSA_JOINT_REG)
    assert collar(plain) > 0.3  # the plain IK reaches the shoulders with the collars (0.52 rad)
    assert collar(chained) < 0.15 and chained.limb_error_m < plain.limb_error_m  # 0.11 rad; 1.07 vs 1.39 cm
