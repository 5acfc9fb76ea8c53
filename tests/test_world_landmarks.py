"""MediaPipe's world landmarks: detection, the JSON (format 2), readers, validation."""
import json
from pathlib import Path

import numpy as np
import pytest

from smplify.keypoints import KeypointError, Keypoints2D
from smplify.keypoints.layouts import MEDIAPIPE33
from smplify.keypoints.readers import read_keypoints

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"


def _person(rng, world=True):
    W = rng.normal(0, 0.3, (33, 3)).astype(np.float32) if world else None
    vis = rng.uniform(0, 1, 33).astype(np.float32)
    return Keypoints2D("mediapipe33", MEDIAPIPE33, rng.uniform(5, 300, (33, 2)).astype(np.float32), vis,
                       (320, 240), "photo.jpg", None, "test", {"visibility": [float(v) for v in vis]},
                       world=W, world_visibility=vis if world else None)


def test_world_landmarks_round_trip_and_versions(tmp_path):
    from smplify.keypoints.detect import FORMAT, write_keypoints_json as write_json

    rng = np.random.default_rng(3)
    k = _person(rng)
    p = write_json([k, _person(rng, world=False)], tmp_path / "photo.json")
    d = json.loads(p.read_text())
    assert d["format"] == FORMAT == "smplify-keypoints/2" and "z away from the camera" in d["world_axes"]
    assert {"X", "Y", "Z"} <= set(d["people"][0]["keypoints"][0]) and "X" not in d["people"][1]["keypoints"][0]
    a, b = read_keypoints(p)
    assert a.has_world and np.allclose(a.world, k.world, atol=1e-4) and np.allclose(a.world_visibility, k.confidence,
                                                                                    atol=1e-4)
    assert not b.has_world and b.world_visibility is None
    # version 1 (no world landmarks) is still read
    d1 = dict(d, format="smplify-keypoints/1")
    d1["people"] = [d["people"][1]]
    (tmp_path / "v1.json").write_text(json.dumps(d1))
    (old,) = read_keypoints(tmp_path / "v1.json")
    assert not old.has_world and np.allclose(old.xy, b.xy, atol=0.01)
    # a newer version: one line naming the file
    (tmp_path / "v3.json").write_text(json.dumps(dict(d, format="smplify-keypoints/3")))
    with pytest.raises(KeypointError, match=r"v3.json: format smplify-keypoints/3 is not one this smplify reads"):
        read_keypoints(tmp_path / "v3.json")
    # world landmarks on some keypoints only
    d["people"][0]["keypoints"][5].pop("X")
    (tmp_path / "part.json").write_text(json.dumps(d))
    with pytest.raises(KeypointError, match="person 0: world landmarks .* on 32 of 33 keypoints"):
        read_keypoints(tmp_path / "part.json")


def test_world_landmarks_validated():
    rng = np.random.default_rng(4)
    k = _person(rng)
    k.world = k.world[:30]
    with pytest.raises(KeypointError, match="x.json: expected 33 world landmarks"):
        k.validate("x.json")
    k = _person(rng)
    k.world[3, 1] = np.nan
    with pytest.raises(KeypointError, match="world landmarks contain NaN"):
        k.validate("x.json")


@pytest.mark.e2e
def test_detection_keeps_world_landmarks_in_camera_axes(tmp_path):
    """The photo's world landmarks: hip-centred, metres, the image's x right / y down, z away from the camera."""
    from smplify.keypoints.detect import detect_image, write_keypoints_json as write_json

    k = detect_image(IMAGES / "pose2sim_balance.jpg")
    n = {name: i for i, name in enumerate(k.names)}
    W = k.world
    assert W.shape == (33, 3) and np.allclose(k.world_visibility, np.clip(k.meta["visibility"], 0, 1), atol=1e-4)
    hips = W[[n["left_hip"], n["right_hip"]]].mean(0)
    assert np.abs(hips).max() < 0.01  # origin midway between the hips
    assert W[n["left_ankle"], 1] > W[n["left_shoulder"], 1] + 0.5  # y down, metres
    off = k.xy - k.xy[[n["left_hip"], n["right_hip"]]].mean(0)
    assert np.corrcoef(W[:, 0], off[:, 0])[0, 1] > 0.95 and np.corrcoef(W[:, 1], off[:, 1])[0, 1] > 0.95
    back = read_keypoints(write_json(k, tmp_path / "b.json"))[0]
    assert np.allclose(back.world, W, atol=1e-4)


def test_other_readers_have_no_world_landmarks(tmp_path):
    arr = np.concatenate([np.random.default_rng(0).uniform(10, 400, (25, 2)), np.full((25, 1), 0.9)], 1)
    p = tmp_path / "op_keypoints.json"
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": arr.ravel().tolist()}]}))
    assert not read_keypoints(p)[0].has_world


# ------------------------------------------------------------------ the bone-direction term

def _bone_case(seed=0, B=3):
    import torch

    from smplify.keypoints.world import bone_coefficients

    names = MEDIAPIPE33
    coeff, bw, kept = bone_coefficients(names)
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(B, len(names), 3, generator=g, dtype=torch.float64)
    target = torch.nn.functional.normalize(torch.randn(B, len(kept), 3, generator=g, dtype=torch.float64), dim=-1)
    w = torch.rand(B, len(kept), generator=g, dtype=torch.float64) * torch.as_tensor(bw, dtype=torch.float64)
    return P, torch.as_tensor(coeff, dtype=torch.float64).expand(B, -1, -1), target, w, kept


def test_bone_table_covers_limbs_torso_and_head():
    from smplify.keypoints.layouts import COCO17
    from smplify.keypoints.world import bone_coefficients, bone_targets

    coeff, w, kept = bone_coefficients(MEDIAPIPE33)
    assert {"left_forearm", "right_shin", "torso", "head", "left_foot"} <= set(kept) and coeff.shape == (len(kept), 33)
    assert np.allclose(coeff.sum(1), 0)  # a bone is a difference: translation-free
    assert "left_foot" not in bone_coefficients(COCO17)[2]  # COCO has no heel: the foot bone is left out
    world = np.random.default_rng(0).normal(size=(33, 3))
    vis = np.ones(33)
    vis[MEDIAPIPE33.index("left_wrist")] = 0.2
    t = bone_targets(MEDIAPIPE33, 3.0 * world + 5.0, vis)  # scale and offset change nothing
    t0 = bone_targets(MEDIAPIPE33, world, vis)
    assert np.allclose(t.direction, t0.direction, atol=1e-5)
    assert np.allclose(np.linalg.norm(t.direction, axis=1), 1, atol=1e-5)
    assert t.weight[t.names.index("left_forearm")] == pytest.approx(0.2)
    assert t.weight[t.names.index("left_upper_arm")] == pytest.approx(1.0)


def test_direction_residuals_match_the_term_and_autograd():
    import torch

    from smplify.objective import direction_term
    from smplify.residuals import direction_chain, direction_gradient

    P, coeff, target, w, _ = _bone_case()
    sigma = 0.5
    f = direction_term(P, coeff, target, w, sigma)
    r, D = direction_chain(P, coeff, target, w, sigma)
    assert torch.allclose(r.pow(2).sum((1, 2)), f, rtol=1e-10)
    # D = ∂r_b/∂d_b, and ∂r/∂P_k = c_bk D_b: against autograd
    Pg = P.clone().requires_grad_(True)
    jac = torch.autograd.functional.jacobian(lambda p: direction_chain(p, coeff, target, w, sigma)[0], Pg)
    B, nb, K = coeff.shape
    mine = torch.einsum("bnij,bnk->bnikj", D, coeff)  # (B, nb, 3, K, 3)
    theirs = torch.stack([jac[b, :, :, b] for b in range(B)])
    assert torch.allclose(mine, theirs, atol=1e-9)
    # the gradient path: 2 Σ_b c_bk D_bᵀ r_b = ∂f/∂P_k
    r2, v = direction_gradient(P, coeff, target, w, sigma)
    (g,) = torch.autograd.grad(direction_term(Pg, coeff, target, w, sigma).sum(), Pg)
    assert torch.allclose(r2, r) and torch.allclose(2 * v, g, atol=1e-9)
    # free of scale and translation
    assert torch.allclose(direction_term(2.5 * P + 1.0, coeff, target, w, sigma), f)


# ------------------------------------------------------------------ the lift

def test_lift_recovers_a_pose_from_scaled_shifted_landmarks():
    import torch

    from smplify import api
    from smplify.keypoints.mapping import layout_targets
    from smplify.lift import lift_pose

    torch.manual_seed(0)
    body = api.load_body()
    from priors.posedata import open_poses

    index, names, tw = layout_targets(MEDIAPIPE33, body.landmark_names)
    B = 4
    pose = torch.as_tensor(open_poses("heldout")[[0, 60, 120, 180]])  # real held-out poses, not a prior's samples
    go = torch.tensor([[3.0, 0.2, 0.1], [3.1, -0.5, 0.0], [0.1, 2.9, 0.3], [2.8, 0.0, -0.4]])
    with torch.no_grad():
        out = body.joints_and_landmarks(go, pose)
    idx = torch.as_tensor(index)[None].expand(B, -1)
    world = 0.6 * torch.gather(out.points, 1, idx[..., None].expand(-1, -1, 3)) + torch.tensor([0.3, -1.0, 4.0])
    r = lift_pose(body, idx, world, torch.as_tensor(tw).expand(B, -1), prior=None, bend_weight=0, iterations=150)
    with torch.no_grad():
        j = body.joints_and_landmarks(r.global_orient, r.body_pose).joints
    err = (j - j[:, :1] - (out.joints - out.joints[:, :1])).norm(dim=-1).mean(-1)
    assert (err < 0.02).all() and err.mean() < 0.01, err  # camera-frame joints, orientation included
    assert torch.allclose(r.scale, torch.full((B,), 1 / 0.6), rtol=0.05)


def test_lift_analytic_gradient_matches_autograd():
    import torch

    from smplify import api
    from smplify.keypoints.mapping import layout_targets
    from smplify.lift import lift_pose

    body = api.load_body()
    prior = api.load_prior("gmm")
    index, names, tw = layout_targets(MEDIAPIPE33, body.landmark_names)
    B = 3
    g = torch.Generator().manual_seed(2)
    idx = torch.as_tensor(index)[None].expand(B, -1)
    with torch.no_grad():
        pts = body.joints_and_landmarks(torch.randn(B, 3, generator=g), torch.as_tensor(prior.sample(B, seed=3))).points
    world = torch.gather(pts, 1, idx[..., None].expand(-1, -1, 3)) + 0.03 * torch.randn(B, len(index), 3, generator=g)
    w = torch.as_tensor(tw).expand(B, -1)
    a = lift_pose(body, idx, world, w, prior=prior, iterations=5, analytic=True)
    b = lift_pose(body, idx, world, w, prior=prior, iterations=5, analytic=False)
    assert torch.allclose(a.body_pose, b.body_pose, atol=2e-3) and torch.allclose(a.error_m, b.error_m, atol=1e-4)


# ------------------------------------------------------------------ the term in the fitter

def _world_cases(body, n=3, seed=2):
    from dataclasses import replace

    import torch

    from smplify.evaluation.synthetic import make_cases
    from smplify.keypoints.mapping import layout_targets

    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=n, noise_levels=(3.0,),
                       dropouts=(0.1,), seed=seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in cases:
        fi = c.fit_input
        with torch.no_grad():
            pts = body.joints_and_landmarks(torch.as_tensor(c.global_orient)[None], torch.as_tensor(c.body_pose)[None],
                                            torch.as_tensor(c.betas)[None]).points[0, torch.as_tensor(fi.index)]
        world = (0.8 * pts + 0.05 * torch.randn(pts.shape, generator=g)).numpy()
        vis = torch.rand(len(pts), generator=g).numpy()
        out.append(replace(fi, world=world, world_visibility=vis))
    return out


@pytest.mark.parametrize("groups", [("transl", "global_orient"), ("transl", "global_orient", "pose", "betas", "focal"),
                                    ("pose",), ("betas", "transl")])
def test_fitter_normal_equations_with_the_world_term(groups):
    """The analytic objective (both paths, and the rigid one) equals the autograd objective with the term on."""
    import torch

    from smplify import api
    from smplify.body import BodyModel
    from smplify.body.tiny import make_tiny_model
    from smplify.config import FitConfig
    from smplify.fitting.batch import make_batch
    from smplify.fitting.starts import FACING_CAMERA

    body = BodyModel(make_tiny_model(with_posedirs=False))
    inputs = _world_cases(body)
    f = api.build_fitter(body, FitConfig(prior="gmm", optimizer="lm", optimize_focal=True, world_weight=500.0,
                                         init="mean"))
    ob = f.objective
    batch = make_batch(inputs, f.config.min_confidence, f.device, bones=True)
    assert batch.has_bones and (batch.bone_w > 0).any()
    x = f.start(inputs, batch, FACING_CAMERA)
    batch.transl0 = x[:, :3].clone()
    x = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(3)) * 0.05
    cols = torch.cat([torch.arange(f.layout.dim)[f.layout[g]] for g in groups])
    for stage in f.config.schedule(True):
        xx = x.clone().requires_grad_(True)
        terms, _ = ob.terms(xx, batch, stage.torso_only)
        assert (terms["world"] > 0).all()
        tot = ob.total(terms, stage)
        (grad,) = torch.autograd.grad(tot.sum(), xx)
        fr, g, H = ob.normal(x, batch, stage, list(groups))
        assert torch.allclose(fr, tot.detach(), rtol=1e-4, atol=1e-2)
        want = grad[:, cols]
        assert torch.allclose(2 * g, want, rtol=1e-3, atol=1e-3 * want.abs().max())
        f1, g1, H1 = ob.normal(x, batch, stage, list(groups), hessian=False)
        assert H1 is None and torch.allclose(f1, fr, rtol=1e-5) and torch.allclose(g1, g, rtol=1e-4, atol=1e-4 * g.abs().max())
        if set(groups) <= {"transl", "global_orient", "focal"}:
            for a, b in zip(ob.normal(x, batch, stage, list(groups), rigid=ob.rigid_body(x, batch)), (fr, g, H)):
                assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max())


def test_inputs_without_world_landmarks_fit_exactly_as_before(tmp_path):
    """A keypoint file without world landmarks: the same parameters whatever the world-landmark settings."""
    from smplify import api
    from smplify.config import FitConfig
    from smplify.keypoints.detect import write_keypoints_json as write_json

    rng = np.random.default_rng(5)
    k = _person(rng, world=False)
    k.xy = (np.asarray(k.xy) * 3).astype(np.float32)  # a person-sized spread
    k.image_size = (1000, 1000)
    p = write_json(k, tmp_path / "k.json")
    (person,) = read_keypoints(p)
    assert not person.has_world
    fits = []
    for cfg in (FitConfig(world_weight=0.0, init="regressor"), FitConfig(world_weight=500.0, init="lift"), FitConfig()):
        fi = api.keypoints_to_input(person, api.load_body())
        fits.append(api.make_fitter("gmm", config=cfg).fit([fi])[0])
    a = fits[0]
    for b in fits[1:]:
        for name in ("global_orient", "body_pose", "betas", "transl"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert b.stage_iterations == a.stage_iterations
