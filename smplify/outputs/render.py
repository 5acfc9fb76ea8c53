"""A small software rasteriser (numpy, z-buffered) for overlays and side views.

Triangles are rasterised in groups of similar screen size: each face tests the pixels of
a k×k window at its bounding box (k = 2, 4, 8, ...), barycentric coordinates decide
coverage, and the nearest fragment per pixel wins (a true per-pixel depth test, so an arm
in front of the torso occludes it whatever the face order). Shading is Lambertian with
smoothly interpolated vertex normals and the light at the camera.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

BODY_COLOUR = (0.65, 0.74, 0.86)


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


_WINDOWS = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
                     1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768])
_CHUNK = 1 << 20  # pixels tested per vectorised step (bounds the temporary memory, ~50 MB)


def rasterize(vertices: np.ndarray, faces: np.ndarray, focal, principal_point, image_size):
    """Per-pixel face id, barycentrics and depth (true per-pixel z-buffer).

    Pixel (i, j) samples the point (i + 0.5, j + 0.5) in the image plane. Faces with a
    vertex at z <= 1e-3 (behind or at the camera) are skipped.

    Returns face_id (H, W) int (-1 = background), bary (H, W, 3) perspective-correct
    barycentrics of the visible face, depth (H, W) camera z (inf = background).
    """
    W, H = int(image_size[0]), int(image_size[1])
    face, depth, hit, w = _raster(vertices, faces, focal, principal_point, W, H)
    bary = np.zeros((H * W, 3))
    bary[hit] = w
    return face.reshape(H, W), bary.reshape(H, W, 3), depth.reshape(H, W)


def _raster(vertices, faces, focal, principal_point, W, H):
    """Flat z-buffer: face (H*W,), depth (H*W,), hit (covered pixel indices), bary (len(hit), 3)."""
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    z = v[:, 2]
    fx, fy = focal
    cx, cy = principal_point
    zs = np.where(z > 1e-3, z, 1.0)
    uv = np.stack([v[:, 0] / zs * fx + cx - 0.5, v[:, 1] / zs * fy + cy - 0.5], -1)  # pixel-centre units
    tri = uv[f]  # (F, 3, 2)
    ok = (z[f] > 1e-3).all(1) & np.isfinite(tri).all((1, 2))
    tri = np.where(ok[:, None, None], tri, 0.0)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    # the pixel centres a face can cover, clipped to the image (a face reaching far off-screen
    # in a close-up only tests the pixels it can cover; a sliver between centres tests none)
    lo = np.maximum(np.ceil(tri.min(1)), 0).astype(np.int64)
    hi = np.minimum(np.floor(tri.max(1)), [W - 1, H - 1]).astype(np.int64)
    ok &= (hi >= lo).all(1) & (np.abs(den) > 1e-12)
    idx = np.nonzero(ok)[0]
    best_depth = np.full(H * W, np.inf)
    best_face = np.full(H * W, -1, np.int64)
    best_w = np.zeros((H * W, 2))
    if len(idx):
        # barycentric (edge) functions, separable in x and y: w_k(x, y) = X_k(x) + Y_k(y)
        inv = 1.0 / den[idx]
        A = np.stack([b[idx, 1] - c[idx, 1], c[idx, 1] - a[idx, 1]], 1) * inv[:, None]  # (n, 2)
        B = np.stack([c[idx, 0] - b[idx, 0], a[idx, 0] - c[idx, 0]], 1) * inv[:, None]
        lo_i, hi_i = lo[idx], hi[idx]
        # edge terms at the first covered pixel centre of each face
        X0 = A * (lo_i[:, 0:1] - c[idx, 0:1])
        Y0 = B * (lo_i[:, 1:2] - c[idx, 1:2])
        izf = 1.0 / z[f[idx]]  # (n, 3)
        ext = hi_i - lo_i + 1
        gx = np.searchsorted(_WINDOWS, ext[:, 0])
        gy = np.searchsorted(_WINDOWS, ext[:, 1])
        key = gx * len(_WINDOWS) + gy
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        slot = np.zeros(H * W, np.int64)
        for grp in np.split(order, bounds):
            kx, ky = int(_WINDOWS[gx[grp[0]]]), int(_WINDOWS[gy[grp[0]]])
            step = max(1, _CHUNK // (kx * ky))
            for s0 in range(0, len(grp), step):
                _raster_group(grp[s0 : s0 + step], kx, ky, A, B, X0, Y0, izf, lo_i, ext, idx, W,
                              best_depth, best_face, best_w, slot)
    hit = np.flatnonzero(best_face >= 0)
    w = np.empty((len(hit), 3))
    w[:, :2] = best_w[hit]
    w[:, 2] = 1.0 - w[:, 0] - w[:, 1]
    w *= 1.0 / z[f[best_face[hit]]]  # perspective-correct: divide by vertex depth, renormalise
    w /= w.sum(1, keepdims=True)
    return best_face, best_depth, hit, w


def _raster_group(g, kx, ky, A, B, X0, Y0, izf, lo, ext, idx, W, best_depth, best_face, best_w, slot):
    """Rasterise faces g (indices into the visible-face arrays) in kx-by-ky pixel windows."""
    ox = np.arange(kx, dtype=np.float64)
    oy = np.arange(ky, dtype=np.float64)
    X = X0[g][:, :, None] + A[g][:, :, None] * ox  # (n, 2, kx)
    Y = Y0[g][:, :, None] + B[g][:, :, None] * oy  # (n, 2, ky)
    # columns / rows past the face's clipped extent are outside the image or the face
    X[:, 0][ox[None] >= ext[g, 0:1]] = -np.inf
    Y[:, 0][oy[None] >= ext[g, 1:2]] = -np.inf
    w0 = X[:, 0, None, :] + Y[:, 0, :, None]  # (n, ky, kx)
    w1 = X[:, 1, None, :] + Y[:, 1, :, None]
    tol = -1e-9
    inside = w0 >= tol
    inside &= w1 >= tol
    inside &= (w0 + w1) <= 1.0 - tol
    fi, yi, xi = np.nonzero(inside)
    if not len(fi):
        return
    a0, a1 = w0[fi, yi, xi], w1[fi, yi, xi]
    zi = izf[g[fi]]
    # 1/z interpolates linearly in screen space
    d = 1.0 / (a0 * zi[:, 0] + a1 * zi[:, 1] + (1.0 - a0 - a1) * zi[:, 2])
    gl = g[fi]
    pix = (lo[gl, 1] + yi) * W + lo[gl, 0] + xi
    np.minimum.at(best_depth, pix, d)
    win = np.nonzero(d <= best_depth[pix])[0]
    p = pix[win]
    slot[p] = win  # one winning fragment per pixel, even with exact depth ties
    t = slot[p]
    best_face[p] = idx[gl[t]]
    best_w[p, 0] = a0[t]
    best_w[p, 1] = a1[t]


def _shade(vertices, faces, focal, principal_point, W, H, color=BODY_COLOUR, smooth=True):
    """Covered pixel indices (flat), their colours (n, 3) in [0, 1], and the flat depth buffer."""
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    face, depth, hit, w = _raster(v, f, focal, principal_point, W, H)
    if not len(hit):
        return hit, np.zeros((0, 3)), depth
    fid = face[hit]
    fv = f[fid]
    if smooth:
        vn = vertex_normals(v, f)
        n = vn[fv[:, 0]] * w[:, 0:1]
        n += vn[fv[:, 1]] * w[:, 1:2]
        n += vn[fv[:, 2]] * w[:, 2:3]
    else:
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        n = fn[fid]
    # light at the camera: the view ray through each pixel centre
    rx = (hit % W + 0.5 - principal_point[0]) / focal[0]
    ry = (hit // W + 0.5 - principal_point[1]) / focal[1]
    dot = n[:, 0] * rx + n[:, 1] * ry + n[:, 2]
    norm2 = (np.einsum("ij,ij->i", n, n) * (rx * rx + ry * ry + 1.0))
    lam = np.abs(dot) / np.sqrt(np.maximum(norm2, 1e-24))  # two-sided Lambertian
    shade = 0.25 + 0.75 * lam
    return hit, shade[:, None] * np.asarray(color, np.float64)[None], depth


def render_mesh(vertices, faces, focal, principal_point, image_size, color=BODY_COLOUR, smooth: bool = True):
    """Shaded mesh seen by a pinhole camera (OpenCV axes: x right, y down, z forward).

    vertices (V, 3) in camera coordinates (metres), faces (F, 3), focal (fx, fy),
    principal_point (cx, cy), image_size (W, H). Projection: u = fx x / z + cx,
    v = fy y / z + cy. Returns rgb (H, W, 3) float in [0, 1] (black background), mask (H, W)
    bool and depth (H, W) (camera z; inf where nothing is drawn). Lambertian shading with a
    little ambient, light from the camera; ``smooth`` interpolates vertex normals,
    ``smooth=False`` shades each face flat.
    """
    W, H = int(image_size[0]), int(image_size[1])
    hit, col, depth = _shade(vertices, faces, focal, principal_point, W, H, color, smooth)
    rgb = np.zeros((H * W, 3))
    rgb[hit] = col
    mask = np.zeros(H * W, bool)
    mask[hit] = True
    return rgb.reshape(H, W, 3), mask.reshape(H, W), depth.reshape(H, W)


def overlay(image: np.ndarray, vertices, faces, focal, principal_point, alpha: float = 0.7,
            color=BODY_COLOUR) -> np.ndarray:
    """The shaded mesh blended over the photo (uint8 (H, W, 3)); pixels outside the mesh unchanged."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    img = img[..., :3].astype(np.uint8)
    H, W = img.shape[:2]
    hit, col, _ = _shade(vertices, faces, focal, principal_point, W, H, color)
    out = img.copy()
    flat = out.reshape(-1, 3)
    blend = (1 - alpha) * flat[hit].astype(np.float64) + (alpha * 255.0) * col
    flat[hit] = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return out


def side_view(vertices, faces, image_size, focal, principal_point) -> np.ndarray:
    """The mesh turned 90° about the camera's vertical axis around its centroid, on white."""
    v = np.asarray(vertices, np.float64)
    c = v.mean(0)
    R = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    vr = (v - c) @ R.T + c
    W, H = int(image_size[0]), int(image_size[1])
    hit, col, _ = _shade(vr, faces, focal, principal_point, W, H)
    out = np.full((H * W, 3), 255, np.uint8)
    out[hit] = np.clip(np.round(col * 255.0), 0, 255).astype(np.uint8)
    return out.reshape(H, W, 3)


def overlay_with_side_view(image, vertices, faces, focal, principal_point) -> np.ndarray:
    """overlay() and side_view() side by side: (H, 2W, 3) uint8."""
    H, W = np.asarray(image).shape[:2]
    return np.concatenate([overlay(image, vertices, faces, focal, principal_point),
                           side_view(vertices, faces, (W, H), focal, principal_point)], 1)


def save_png(path, array: np.ndarray) -> Path:
    """Write an image (uint8 (H, W[, 3|4])) as PNG atomically: a temp file beside it, then rename."""
    from PIL import Image

    from ..fileio import atomic_write

    return atomic_write(path, lambda tmp: Image.fromarray(np.ascontiguousarray(array, np.uint8)).save(tmp, format="PNG"))
