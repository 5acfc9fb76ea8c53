"""Body model layer: our kinematics against smplx's SMPL forward on the same arrays."""
import math

import pytest
import torch

from smplify.body import BodyModel
from smplify.body.model_file import DEFAULT_MODEL_PATH, load_model_file, save_compact_npz, to_smplx_model


def _random_params(B, seed=0, nb=10):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 3, generator=g) * 0.7, torch.randn(B, 69, generator=g) * 0.4,
            torch.randn(B, nb, generator=g), torch.randn(B, 3, generator=g))


@pytest.mark.parametrize("B", [1, 64])
def test_both_paths_match_smplx(tiny_data, tiny_model, B):
    ref = to_smplx_model(tiny_data)
    go, bp, be, tr = _random_params(B, seed=B)
    o = ref(global_orient=go, body_pose=bp, betas=be, transl=tr)
    fast = tiny_model.joints_and_landmarks(go, bp, be, tr)
    full = tiny_model.mesh(go, bp, be, tr)
    assert torch.allclose(fast.joints, o.joints[:, :24], atol=1e-5)
    assert torch.allclose(full.joints, o.joints[:, :24], atol=1e-5)
    assert torch.allclose(full.vertices, o.vertices, atol=1e-5)
    assert torch.allclose(fast.landmarks, full.landmarks, atol=1e-5)
    # landmarks are mesh vertices of the reference as well
    idx = tiny_model.lm_vertex
    assert torch.allclose(fast.landmarks, o.vertices[:, idx], atol=1e-5)


def test_gradients_flow(tiny_model):
    go, bp, be, tr = [p.requires_grad_() for p in _random_params(4)]
    out = tiny_model.joints_and_landmarks(go, bp, be, tr)
    (out.points ** 2).sum().backward()
    for p in (go, bp, be, tr):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_body_pose_63_pads_hands(tiny_model):
    go, bp, be, tr = _random_params(2)
    bp[:, 63:] = 0
    a = tiny_model.joints_and_landmarks(go, bp, be, tr)
    b = tiny_model.joints_and_landmarks(go, bp[:, :63], be, tr)
    assert torch.allclose(a.points, b.points)
    with pytest.raises(ValueError):
        tiny_model.joints_and_landmarks(go, bp[:, :60], be, tr)


def test_compact_npz_roundtrip(tiny_data, tmp_path):
    p = tmp_path / "m.npz"
    save_compact_npz(tiny_data, p)
    d2 = load_model_file(p)
    assert d2.name == "tiny-test" and d2.landmark_names == tiny_data.landmark_names
    bm1, bm2 = BodyModel(tiny_data), BodyModel(d2)
    go, bp, be, tr = _random_params(3)
    assert torch.allclose(bm1.mesh(go, bp, be, tr).vertices, bm2.mesh(go, bp, be, tr).vertices, atol=1e-6)


@pytest.mark.e2e
@pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="open model not generated yet")
def test_open_model_matches_smplx():
    data = load_model_file()
    assert data.num_betas == 10 and data.posedirs is None
    bm = BodyModel(data)
    ref = to_smplx_model(data)
    go, bp, be, tr = _random_params(8)
    o = ref(global_orient=go, body_pose=bp, betas=be, transl=tr)
    fast = bm.joints_and_landmarks(go, bp, be, tr)
    full = bm.mesh(go, bp, be, tr)
    assert torch.allclose(fast.joints, o.joints[:, :24], atol=1e-5)
    assert torch.allclose(full.vertices, o.vertices, atol=1e-5)
    assert torch.allclose(fast.landmarks, full.landmarks, atol=1e-5)
    # rest pose: Y up, metres, a person of plausible height
    v = data.v_template
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.4 < height < 2.0
    assert DEFAULT_MODEL_PATH.stat().st_size < 10 * 2**20


def test_rotvec_to_rotmat_matches_roma():
    import roma

    from smplify.rotations import rotvec_to_rotmat

    v = torch.randn(500, 3, dtype=torch.float64) * 2
    v[:5] *= 1e-7  # near-zero rotations
    assert torch.allclose(rotvec_to_rotmat(v), roma.rotvec_to_rotmat(v), atol=1e-12)
    g = torch.zeros(1, 3, requires_grad=True)
    rotvec_to_rotmat(g).sum().backward()
    assert torch.isfinite(g.grad).all()


def test_rotmat_to_rotvec_and_gram_schmidt_match_roma():
    """The cold path's own rotation helpers (roma's import costs ~1 s) agree with roma, near 0 and π too."""
    import roma

    from smplify.rotations import rotmat_to_rotvec, rotvec_to_rotmat
    from smplify.regressor.model import gram_schmidt

    g = torch.Generator().manual_seed(3)
    axis = torch.nn.functional.normalize(torch.randn(400, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.cat([torch.rand(370, generator=g, dtype=torch.float64) * math.pi,
                       torch.tensor([0.0, 1e-9, 1e-5, 1e-3, math.pi, math.pi - 1e-6, math.pi - 1e-3] * 4 + [2.0, 3.0],
                                    dtype=torch.float64)])
    v = axis * angle[:, None]
    R = rotvec_to_rotmat(v)
    got = rotmat_to_rotvec(R)
    assert torch.allclose(rotvec_to_rotmat(got), R, atol=1e-9)  # the same rotation (±π is one rotation)
    far = angle < math.pi - 1e-3
    assert torch.allclose(got[far], roma.rotmat_to_rotvec(R)[far], atol=1e-7)
    assert got.norm(dim=-1).max() <= math.pi + 1e-9
    assert rotmat_to_rotvec(R.view(20, 20, 3, 3).float()).shape == (20, 20, 3)
    M = torch.randn(5, 7, 3, 2, generator=g, dtype=torch.float64)
    assert torch.allclose(gram_schmidt(M), roma.special_gramschmidt(M), atol=1e-12)
