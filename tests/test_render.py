"""Renderer: occlusion by depth, coverage, overlays and side views; OBJ round trip."""
import numpy as np

from smplify.outputs.mesh_io import read_obj, write_obj
from smplify.outputs.render import overlay, rasterize, render_mesh, side_view

F = (100.0, 100.0)
PP = (32.0, 32.0)
SIZE = (64, 64)


def _quad(z, half, x0=0.0):
    v = np.array([[x0 - half, -half, z], [x0 + half, -half, z], [x0 + half, half, z], [x0 - half, half, z]])
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_nearer_surface_wins_whatever_the_order():
    (va, fa), (vb, fb) = _quad(2.0, 0.15), _quad(4.0, 0.6)
    for first_near in (True, False):
        parts = [(va, fa), (vb, fb)] if first_near else [(vb, fb), (va, fa)]
        v = np.concatenate([parts[0][0], parts[1][0]])
        f = np.concatenate([parts[0][1], parts[1][1] + 4])
        face, _, depth = rasterize(v, f, F, PP, SIZE)
        near_faces = {0, 1} if first_near else {2, 3}
        assert face[32, 32] in near_faces
        assert abs(depth[32, 32] - 2.0) < 1e-6
        assert abs(depth[32, 20] - 4.0) < 1e-6 and face[32, 20] not in near_faces  # only the far quad there


def test_coverage_matches_projected_area():
    v, f = _quad(2.0, 0.2)
    _, mask, _ = render_mesh(v, f, F, PP, SIZE)
    assert abs(mask.sum() - (0.4 * 100 / 2.0) ** 2) / 400 < 0.05


def test_overlay_keeps_background_and_side_view_thins_a_plate():
    v, f = _quad(2.0, 0.2)
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    out = overlay(img, v, f, F, PP)
    _, mask, _ = render_mesh(v, f, F, PP, SIZE)
    assert np.array_equal(out[~mask], img[~mask]) and not np.array_equal(out[mask], img[mask])
    side = side_view(v, f, SIZE, F, PP)
    assert (side.min(-1) < 250).sum() < mask.sum() / 5  # a plate seen edge-on is a sliver


def test_behind_camera_is_not_drawn():
    v, f = _quad(-2.0, 0.2)
    face, _, _ = rasterize(v, f, F, PP, SIZE)
    assert (face < 0).all()


def test_obj_round_trip(tmp_path):
    v, f = _quad(2.0, 0.2)
    write_obj(tmp_path / "m.obj", v, f)
    v2, f2 = read_obj(tmp_path / "m.obj")
    assert np.allclose(v, v2, atol=1e-6) and np.array_equal(f, f2)
