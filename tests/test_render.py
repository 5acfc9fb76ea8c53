"""Renderer: occlusion by depth, coverage, overlays and side views; OBJ round trip."""
import numpy as np

from smplify.outputs.mesh_io import read_obj, write_obj
from smplify.outputs.render import (overlay, overlay_with_side_view, rasterize, render_mesh, save_png,
                                    side_view)

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


def _cube(centre, half):
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * half + centre
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return v, f


def test_cube_occludes_a_wall_whatever_the_face_order():
    vc, fc = _cube(np.array([0.0, 0.0, 2.0]), 0.2)
    vw, fw = _quad(3.0, 1.0)
    v = np.concatenate([vw, vc])
    f = np.concatenate([fw, fc + 4])
    for perm in (np.arange(len(f)), np.arange(len(f))[::-1], np.random.default_rng(1).permutation(len(f))):
        face, _, depth = rasterize(v, f[perm], F, PP, SIZE)
        fid = perm[face[32, 32]]
        assert fid >= 2 and abs(depth[32, 32] - 1.8) < 1e-6  # the cube's front face at z = 1.8
        assert perm[face[2, 2]] < 2 and abs(depth[2, 2] - 3.0) < 1e-6  # only the wall at the corner
        rgb, _, _ = render_mesh(v, f[perm], F, PP, SIZE, color=(1.0, 1.0, 1.0))
        assert rgb[32, 32].min() > 0.95  # cube front faces the camera: fully lit


def test_intersecting_planes_split_per_pixel():
    # two planes crossing at x = 0: painter's order cannot get both halves right
    a = np.array([[-0.3, -0.3, 1.8], [0.3, -0.3, 2.2], [0.3, 0.3, 2.2], [-0.3, 0.3, 1.8]])
    b = np.array([[-0.3, -0.3, 2.2], [0.3, -0.3, 1.8], [0.3, 0.3, 1.8], [-0.3, 0.3, 2.2]])
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    for first_a in (True, False):
        v = np.concatenate([a, b] if first_a else [b, a])
        face, _, depth = rasterize(v, np.concatenate([quad, quad + 4]), F, PP, SIZE)
        a_faces = {0, 1} if first_a else {2, 3}
        assert face[32, 26] in a_faces and face[32, 38] not in a_faces
        assert depth[32, 26] < 2.0 and depth[32, 38] < 2.0


def test_triangle_area_matches_analytic():
    tri = np.array([[-0.3, -0.2, 2.0], [0.35, -0.1, 2.0], [0.0, 0.3, 2.0]])
    size = (128, 128)
    _, mask, _ = render_mesh(tri, np.array([[0, 1, 2]]), (200.0, 200.0), (64.0, 64.0), size)
    p = tri[:, :2] * 100.0
    area = 0.5 * abs((p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1]))
    assert abs(mask.sum() - area) / area < 0.03


def test_huge_face_close_to_the_camera_fills_the_image():
    v, f = _quad(0.5, 50.0)  # reaches thousands of pixels past every border
    face, _, depth = rasterize(v, f, F, PP, SIZE)
    assert (face >= 0).all() and np.allclose(depth, 0.5)


def test_overlay_with_side_view_and_atomic_png(tmp_path):
    from PIL import Image

    v, f = _cube(np.array([0.0, 0.0, 2.0]), 0.2)
    img = np.full((64, 64, 3), 90, np.uint8)
    both = overlay_with_side_view(img, v, f, F, PP)
    assert both.shape == (64, 128, 3) and both.dtype == np.uint8
    assert (both[:, 64:] == 255).all(-1).any() and (both[:, 64:] < 255).any()
    out = save_png(tmp_path / "o.png", both)
    assert np.array_equal(np.asarray(Image.open(out)), both)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_flat_and_smooth_shading():
    v, f = _cube(np.array([0.0, 0.0, 2.0]), 0.2)
    flat, m1, _ = render_mesh(v, f, F, PP, SIZE, smooth=False)
    smooth, m2, _ = render_mesh(v, f, F, PP, SIZE)
    assert np.array_equal(m1, m2)
    assert np.ptp(flat[m1][:, 0]) < 0.05 < np.ptp(smooth[m2][:, 0])  # front face only: flat is uniform
