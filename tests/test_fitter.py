"""The fitter on the tiny model: round trips with a known camera, noise, dropped joints, batching."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from smplify.body import BodyModel
from smplify.body.tiny import make_tiny_model
from smplify.camera import Camera, project
from smplify.config import FitConfig, Stage
from smplify.api import build_fitter
from smplify.fitting import FitInput, Fitter
from smplify.fitting.batch import make_batch
from smplify.fitting.stages import settled
from smplify.metrics import pa_mpjpe, procrustes_align


class ZeroPrior:
    """A pose prior that believes nothing (the fitter's 'none')."""

    supports_latent = False

    def nll(self, pose):
        return pose.new_zeros(pose.shape[0])


BODY = ("transl", "global_orient", "pose", "betas")
#: the optimiser's test: light regularisers, so recovery depends on the optimisation alone
LIGHT = (Stage("camera", ("transl", "global_orient"), 30, depth=100.0, torso_only=True),
         Stage("p1", BODY, 40, shape=1.0, bend=1.0), Stage("p2", BODY, 60, shape=0.1, bend=0.1))


@pytest.fixture(scope="module")
def body():
    return BodyModel(make_tiny_model(with_posedirs=False))


def _scene(body, B, seed=0, pose_scale=0.15):
    g = torch.Generator().manual_seed(seed)
    go = torch.tensor([[math.pi, 0.0, 0.0]]).repeat(B, 1) + torch.randn(B, 3, generator=g) * 0.2
    bp = torch.randn(B, 69, generator=g) * pose_scale
    bp[:, 63:] = 0
    bp[:, [52, 55, 9, 12]] = bp[:, [52, 55, 9, 12]].abs() * torch.tensor([-1.0, 1, 1, 1])  # natural bends
    be = torch.randn(B, 10, generator=g) * 0.5
    tr = torch.tensor([[0.1, 0.2, 3.0]]).repeat(B, 1) + torch.randn(B, 3, generator=g) * 0.1
    out = body.joints_and_landmarks(go, bp, be, tr)
    f = torch.full((B, 2), 1000.0)
    uv = project(out.points, f, torch.full((B, 2), 500.0))
    return out, uv


def _inputs(uv, noise=0.0, drop=0.0, seed=0):
    rng = np.random.default_rng(seed)
    cam = Camera((1000.0, 1000.0), (500.0, 500.0), (1000, 1000))
    items = []
    for b in range(uv.shape[0]):
        n = uv.shape[1]
        xy = uv[b].numpy() + rng.normal(0, noise, (n, 2)).astype(np.float32)
        conf = np.where(rng.random(n) < drop, 0.0, 1.0).astype(np.float32)
        items.append(FitInput(index=np.arange(n), xy=xy, confidence=conf, weight=np.ones(n, np.float32), camera=cam))
    return items


def _pa(body, res, truth):
    pred = torch.stack([body.joints_and_landmarks(*[torch.as_tensor(v)[None] for v in
                        (r.global_orient, r.body_pose, r.betas, r.transl)]).joints[0] for r in res])
    return pa_mpjpe(pred, truth.joints) * 1000  # mm


def test_procrustes_recovers_similarity():
    x = torch.randn(2, 10, 3)
    R = torch.linalg.qr(torch.randn(3, 3))[0]
    R = R * torch.sign(torch.det(R))
    y = 1.7 * x @ R + torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(procrustes_align(x, y), y, atol=1e-4)


@pytest.mark.parametrize("noise,drop,median_mm,px", [(0.0, 0.0, 25.0, 2.0), (3.0, 0.2, 40.0, 5.0)])
def test_round_trip(body, noise, drop, median_mm, px):
    """Known body, known camera: the fit recovers the 3D joints to a small PA-MPJPE
    (median over 6 bodies; a stick figure without a pose prior keeps some depth ambiguity)."""
    truth, uv = _scene(body, 6)
    fitter = Fitter(body, FitConfig(prior="none", init="mean", stages=LIGHT), prior=ZeroPrior())
    res = fitter.fit(_inputs(uv, noise, drop))
    err = _pa(body, res, truth)
    assert float(err.median()) < median_mm, err
    assert np.median([r.mean_error_px for r in res]) < px


def test_batch_members_are_independent(body):
    """A hopeless sample in the batch changes nothing for the others and is never NaN."""
    truth, uv = _scene(body, 3, seed=3)
    items = _inputs(uv)
    fitter = Fitter(body, FitConfig(prior="none", init="mean", stages=LIGHT), prior=ZeroPrior())
    alone = [fitter.fit([it])[0] for it in (items[0], items[2])]
    bad = _inputs(uv)[1]
    bad.xy = np.full_like(bad.xy, 1e9)  # absurd keypoints
    together = fitter.fit([items[0], bad, items[2]])
    # the same quality as alone (bit-identity is not expected: batched float rounding differs)
    for a, t in zip(alone, (together[0], together[2])):
        assert abs(a.mean_error_px - t.mean_error_px) < 0.5
        assert t.mean_error_px < 3.0
    for r in together:
        assert np.isfinite(r.body_pose).all() and np.isfinite(r.transl).all() and np.isfinite(r.betas).all()


def test_a_batch_of_different_keypoint_layouts_is_padded_and_equals_one_layout(body):
    """Inputs with different keypoint counts are padded (weight 0); a batch of one layout is stacked at once:
    both give the same batch tensors for the same keypoints."""
    _, uv = _scene(body, 2, seed=9)
    items = _inputs(uv, drop=0.2, seed=1)
    fitter = Fitter(body, FitConfig(prior="none", init="mean", stages=LIGHT), prior=ZeroPrior())
    stacked = make_batch(items, fitter.config.min_confidence, fitter.device)
    short = FitInput(index=items[1].index[:20], xy=items[1].xy[:20], confidence=items[1].confidence[:20],
                     weight=items[1].weight[:20], camera=items[1].camera)
    padded = make_batch([items[0], short], fitter.config.min_confidence, fitter.device)
    for k in ("index", "xy", "w"):
        a, b = getattr(padded, k), getattr(stacked, k)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1, :20], b[1, :20])
    assert (padded.w[1, 20:] == 0).all() and (stacked.w == 0).any()  # padding and dropped points weigh 0
    assert all(r.mean_error_px < 3.0 for r in fitter.fit([items[0], short]))


def test_flip_test_picks_the_facing_direction(body):
    """Bodies turned away from the camera are found by the flip test."""
    truth, uv = _scene(body, 1, seed=5)
    # the same scene with the body turned 180° about the vertical axis
    g = torch.tensor([[0.0, 0.0, math.pi]])
    out = body.joints_and_landmarks(g, torch.zeros(1, 69), torch.zeros(1, 10), torch.tensor([[0.0, 0.0, 3.0]]))
    uv2 = project(out.points, torch.full((1, 2), 1000.0), torch.full((1, 2), 500.0))
    res = Fitter(body, FitConfig(prior="none", init="mean"), prior=ZeroPrior()).fit(_inputs(uv2))[0]
    assert res.flipped
    assert res.mean_error_px < 3.0


def test_a_facing_the_camera_stage_rules_out_stops_there(body, monkeypatch):
    """flip_decided_ratio: after the camera stage, a facing whose loss is > ratio x the other's drops out, so
    the first pose stage fits both facings only for undecided rows; the choices stay right."""
    import smplify.fitting.fitter as fitter_mod
    import smplify.fitting.flip as flip_mod
    from smplify.fitting.stages import run_stages

    _, uv = _scene(body, 2, seed=5)
    g = torch.tensor([[0.0, 0.0, math.pi]])
    turned = project(body.joints_and_landmarks(g, torch.zeros(1, 69), torch.zeros(1, 10), torch.tensor([[0.0, 0.0, 3.0]])).points,
                     torch.full((1, 2), 1000.0), torch.full((1, 2), 500.0))
    inputs = _inputs(torch.cat([uv, turned]))
    rows = {}
    for ratio in (None, 1.0):
        cfg = FitConfig(prior="none", init="mean", stages=LIGHT, flip_decided_ratio=ratio)
        fitter = Fitter(body, cfg, prior=ZeroPrior())
        seen = []

        def spy(objective, x, batch, optimizer, stages, analytic, memory=None):
            seen.append((stages[0].name, len(x)))
            return run_stages(objective, x, batch, optimizer, stages, analytic, memory)

        monkeypatch.setattr(flip_mod, "run_stages", spy)
        monkeypatch.setattr(fitter_mod, "run_stages", spy)
        res = fitter.fit(inputs)
        rows[ratio] = dict(seen[:2])  # the flip test's calls: camera (both facings), then p1
        import roma
        # the body's forward axis (+Z) in the camera: towards it (z < 0) for the first two, away for the third
        forward_z = [float(roma.rotvec_to_rotmat(torch.as_tensor(r.global_orient))[2, 2]) for r in res]
        assert forward_z[0] < 0 and forward_z[1] < 0 and forward_z[2] > 0, forward_z
        assert all(r.mean_error_px < 3.0 for r in res)
    assert rows[None] == {"camera": 6, "p1": 6}  # SMPLify's test from the mean pose: both facings throughout
    assert rows[1.0]["camera"] == 6 and rows[1.0]["p1"] == 3  # only the better facing of each goes on
    assert FitConfig().decided_ratio("lbfgs") == 3.0 and FitConfig().decided_ratio("lm") is None
    assert FitConfig(init="mean").decided_ratio("lbfgs") is None
    with pytest.raises(ValueError, match="at least 1"):
        FitConfig(flip_decided_ratio=0.5)
    # from the regressor's start the chosen facing's curvature pairs go on into the last stage
    short = (dataclasses.replace(LIGHT[0], iterations=2),) + LIGHT[1:]  # too short to turn a facing around
    cfg = FitConfig(prior="none", init="mean", stages=short, flip_decided_ratio=1.0, lbfgs_carry_memory=True)
    fitter = Fitter(body, cfg, prior=ZeroPrior())
    carried = []

    def spy(objective, x, batch, optimizer, stages, analytic, memory=None):
        out = run_stages(objective, x, batch, optimizer, stages, analytic, memory)
        carried.append((stages[0].name, len(x), memory, out.memory))
        return out

    monkeypatch.setattr(flip_mod, "run_stages", spy)
    monkeypatch.setattr(fitter_mod, "run_stages", spy)
    res = fitter.fit([inputs[2], inputs[0], inputs[1]])  # the turned-away person first
    (_, _, _, after_p1), (name, rows, given, _) = carried[1], carried[2]
    assert name == "p2" and rows == 3 and given["S"].shape[0] == 3
    # p1 ran only the chosen facings, in row order (all facing rows b, then turned rows 3 + b); p2 gets each
    # person's pairs back in people's order
    chosen = [b + 3 * r.flipped for b, r in enumerate(res)]
    at = [sorted(chosen).index(c) for c in chosen]
    assert at != [0, 1, 2]  # the order differs here, so a mix-up would show
    # bit for bit (the buffers are allocated empty: unused slots may hold NaN patterns, which torch.equal calls unequal)
    bits = lambda t: t.contiguous().view(torch.uint8)
    assert torch.equal(bits(given["S"]), bits(after_p1["S"][at])) and torch.equal(given["valid"], after_p1["valid"][at])


def test_adam_optimizer_also_fits(body):
    truth, uv = _scene(body, 2, seed=7)
    res = Fitter(body, FitConfig(prior="none", init="mean", optimizer="adam"), prior=ZeroPrior()).fit(_inputs(uv))
    assert float(_pa(body, res, truth).mean()) < 60.0


def test_regressor_start_works_on_a_model_with_other_points(body):
    """The shipped regressor was trained on the open model's 45 points; the tiny model has 41.
    Points are matched by name (the rest are not shown to the regressor) instead of failing."""
    truth, uv = _scene(body, 2, seed=9)
    fitter = build_fitter(body, FitConfig(prior="none", init="regressor"), prior=ZeroPrior())
    assert fitter.regressor.num_points != len(body.point_names)
    m = fitter.starts.regressor_points
    assert m.shape == (len(body.point_names),) and (m[:24] == torch.arange(24)).all()
    res = fitter.fit(_inputs(uv))
    assert all(np.isfinite(r.body_pose).all() and not r.failed for r in res)
    assert np.median([r.mean_error_px for r in res]) < 10.0


def test_loss_curve_and_converged_flag(body):
    truth, uv = _scene(body, 2, seed=11)
    res = Fitter(body, FitConfig(prior="none", init="mean", stages=LIGHT), prior=ZeroPrior()).fit(_inputs(uv))
    for r in res:
        assert len(r.loss_curve) == r.iterations or len(r.loss_curve) >= max(s.iterations for s in LIGHT)
        last = r.loss_curve[-LIGHT[-1].iterations:]
        assert last[-1] <= last[0] + 1e-6  # within a stage the loss never rises
        assert len(r.stage_iterations) == len(LIGHT) and sum(r.stage_iterations) == len(r.loss_curve)
    c = FitConfig()
    flat, falling = torch.tensor([5.0] * 10 + [2.0] * 20), torch.linspace(5.0, 1.0, 30)
    st = lambda curves, n: settled(curves, n, c.settle_window, c.settle_tol, "cpu")
    assert st([flat, falling, torch.tensor([1.0])], [20, 20, 1]).tolist() == [True, False, False]
    assert st([flat, flat], [20, 4]).tolist() == [True, False]  # a last stage shorter than the window: no


def test_shared_start_pose_is_the_same_for_every_prior(body):
    starts = []
    for name in ("none", "gmm", "vae"):
        f = build_fitter(body, FitConfig(prior=name, start_pose="shared"))
        mp = f.starts.mean_pose()[None]
        starts.append((f.prior.decode(mp) if f.latent else mp)[0].detach())
    assert torch.allclose(starts[0], starts[1])
    d = (starts[0] - starts[2]).abs()  # the VAE's encode/decode round trip of that pose
    assert float(d.mean()) < 0.05 and float(d.max()) < 0.3, d
    with pytest.raises(ValueError, match="start_pose"):
        build_fitter(body, FitConfig(prior="none", start_pose="bogus"), prior=ZeroPrior())


def test_a_diverged_sample_is_restarted_with_the_other_optimiser(body, monkeypatch):
    """Row 0's L-BFGS run is made to fail: it is restarted with Adam and still fits; row 1 is untouched."""
    import smplify.fitting.stages as stages_mod
    from smplify.optim import lbfgs as real_lbfgs

    def failing_lbfgs(closure, x0, **kw):
        r = real_lbfgs(closure, x0, **kw)
        r.failed[0] = True
        r.x[0] = float("nan")
        return r

    truth, uv = _scene(body, 2, seed=13)
    monkeypatch.setattr(stages_mod, "lbfgs", failing_lbfgs)
    res = Fitter(body, FitConfig(prior="none", init="mean", stages=LIGHT, flip_test=False), prior=ZeroPrior()).fit(_inputs(uv))
    assert res[0].restarted and "restarted after divergence" in res[0].warnings and not res[0].failed
    assert not res[1].restarted
    for r in res:
        assert np.isfinite(r.body_pose).all() and np.isfinite(r.transl).all()
    assert res[0].mean_error_px < 30.0  # Adam from the start: a usable fit, not NaN


def test_unseen_joints_start_at_the_prior_mean(body):
    """Legs outside the photo: hips, knees, ankles and feet have no keypoint that their rotation moves, so a
    regressor start leaves them at the prior's mean pose (not the regressor's guess); arms and spine stay."""
    fitter = build_fitter(body, FitConfig(prior="none", init="regressor"), prior=ZeroPrior())
    n = len(body.point_names)
    index = torch.arange(n)[None]
    legs = [4, 5, 7, 8, 10, 11]  # knees, ankles, feet
    below = [i for i in range(24, n) if body.point_names[i].startswith(("left_", "right_"))
             and any(k in body.point_names[i] for k in ("heel", "toe", "foot", "ankle", "knee"))]
    w = torch.ones(1, n)
    w[0, legs + below] = 0
    unseen = set((fitter.starts.unseen_joints(index, w)[0].nonzero()[:, 0] + 1).tolist())  # SMPL joint numbers
    assert {1, 2, 4, 5, 7, 8, 10, 11} <= unseen
    assert not unseen & {3, 6, 9, 13, 14, 16, 17, 18, 19}  # spine, collars, shoulders, elbows: seen
    assert not fitter.starts.unseen_joints(index, torch.ones(1, n))[0, :20].any()
    truth, uv = _scene(body, 1, seed=3)
    inp = _inputs(uv)[0]
    inp.confidence[legs + below] = 0
    batch = make_batch([inp], fitter.config.min_confidence, fitter.device)
    x = fitter.starts.from_regressor(batch, True)
    pose = x[0, fitter.layout["pose"]].view(21, 3)
    mean = fitter.starts.mean_pose63().view(21, 3)
    assert torch.equal(pose[[0, 1, 3, 4, 6, 7, 9, 10]], mean[[0, 1, 3, 4, 6, 7, 9, 10]])
    assert not torch.equal(fitter.starts.from_regressor(batch, False)[0, fitter.layout["pose"]].view(21, 3)[[3, 4]], mean[[3, 4]])


def test_flip_test_turns_the_regressor_start_about_the_vertical():
    body = BodyModel(make_tiny_model(with_posedirs=False))
    from smplify.fitting.starts import turned

    fitter = build_fitter(body, FitConfig(prior="none"), prior=ZeroPrior())
    x = torch.randn(2, fitter.layout.dim) * 0.3
    t = turned(x, fitter.layout["global_orient"])
    import roma

    go = fitter.layout["global_orient"]
    Ry = roma.rotvec_to_rotmat(torch.tensor([0.0, math.pi, 0.0]))
    assert torch.allclose(roma.rotvec_to_rotmat(t[:, go]), Ry @ roma.rotvec_to_rotmat(x[:, go]), atol=1e-5)
    rest = torch.ones(fitter.layout.dim, dtype=torch.bool)
    rest[go] = False
    assert torch.equal(t[:, rest], x[:, rest])


def test_the_schedule_follows_the_start():
    from dataclasses import replace

    from smplify.config import default_stages, regressor_stages, world_stages

    cfg = FitConfig()
    assert cfg.init == "regressor+lift" and cfg.schedule() == regressor_stages() and cfg.flip_test and cfg.carry_memory
    assert cfg.schedule(world=True) == world_stages() and replace(cfg, world_weight=0.0).schedule(True) == regressor_stages()
    mean = replace(cfg, init="mean")
    assert mean.schedule() == default_stages() and not mean.carry_memory
    assert replace(mean, init="regressor").schedule() == regressor_stages()
    own = replace(cfg, stages=LIGHT, lbfgs_carry_memory=False)
    assert replace(own, init="mean").schedule() == LIGHT and not own.carry_memory
    # a schedule given explicitly is kept whatever the start (no silent swap)
    assert FitConfig(init="regressor", stages=default_stages()).schedule() == default_stages()
    assert cfg.stages is None and cfg.to_dict()["stages"] == tuple(dataclasses.asdict(s) for s in regressor_stages())


@pytest.mark.parametrize("init,analytic", [("mean", True), ("mean", False), ("regressor", True)])
def test_lbfgs_loss_never_rises_within_a_stage(body, init, analytic):
    """L-BFGS with a strong-Wolfe line search accepts only steps that lower the objective: within each stage
    a row's loss curve never rises (between stages the weights change, so it may). With the GMM prior, on the
    analytic path and on autograd's, from either start, flip test on."""
    from smplify.config import default_stages

    _, uv = _scene(body, 3, seed=17)
    stages = tuple(dataclasses.replace(s, iterations=15) for s in default_stages())
    cfg = FitConfig(prior="gmm", init=init, stages=stages, analytic_gradients=analytic)
    res = build_fitter(body, cfg).fit(_inputs(uv, noise=2.0, drop=0.1))
    for r in res:
        assert r.optimizer == "lbfgs" and not r.restarted and sum(r.stage_iterations) == len(r.loss_curve)
        at = 0
        for n in r.stage_iterations:
            seg = np.asarray(r.loss_curve[at:at + n])
            at += n
            assert np.isfinite(seg).all()
            rises = np.diff(seg) > 1e-6 * np.maximum(1.0, np.abs(seg[:-1]))
            assert not rises.any(), (init, analytic, seg)
