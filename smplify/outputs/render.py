"""A small software rasteriser (numpy, z-buffered) for overlays and side views.

Triangles are rasterised in groups of similar screen size: each face tests the pixels of
a k×k window at its bounding box (k = 2, 4, 8, ...), barycentric coordinates decide
coverage, and the nearest fragment per pixel wins (a true per-pixel depth test, so an arm
in front of the torso occludes it whatever the face order). Shading is Lambertian with
smoothly interpolated vertex normals and the light at the camera.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import numpy as np

BODY_COLOUR = (0.65, 0.74, 0.86)


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def rasterize(vertices: np.ndarray, faces: np.ndarray, focal, principal_point, image_size):
    """Per-pixel face id, barycentrics and depth.

    Returns face_id (H, W) int (−1 = background), bary (H, W, 3), depth (H, W) (inf = background).
    """
    W, H = int(image_size[0]), int(image_size[1])
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    z = v[:, 2]
    fx, fy = focal
    cx, cy = principal_point
    uv = np.stack([v[:, 0] / np.maximum(z, 1e-6) * fx + cx, v[:, 1] / np.maximum(z, 1e-6) * fy + cy], -1)
    tri = uv[f]  # (F, 3, 2)
    front = (z[f] > 1e-3).all(1)
    lo = np.floor(tri.min(1)).astype(np.int64)
    hi = np.ceil(tri.max(1)).astype(np.int64)
    vis = front & (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < W) & (lo[:, 1] < H)
    size = (hi - lo).max(1)
    best_depth = np.full(H * W, np.inf)
    best_face = np.full(H * W, -1, np.int64)
    best_bary = np.zeros((H * W, 3))
    k = 2
    todo = vis & (size >= 0)
    while todo.any():
        sel = np.where(todo & (size < k))[0] if k < 4096 else np.where(todo)[0]
        todo[sel] = False
        if len(sel):
            for start in range(0, len(sel), max(1, 2_000_000 // (k * k))):
                _raster_group(sel[start : start + 2_000_000 // (k * k)], k, tri, z, f, lo, W, H,
                              best_depth, best_face, best_bary)
        k *= 2
    return best_face.reshape(H, W), best_bary.reshape(H, W, 3), best_depth.reshape(H, W)


def _raster_group(sel, k, tri, z, f, lo, W, H, best_depth, best_face, best_bary):
    oy, ox = np.mgrid[0:k, 0:k]
    px = lo[sel, 0, None] + ox.reshape(1, -1)  # (n, k*k)
    py = lo[sel, 1, None] + oy.reshape(1, -1)
    a, b, c = tri[sel, 0, None], tri[sel, 1, None], tri[sel, 2, None]  # (n, 1, 2)
    qx, qy = px + 0.5, py + 0.5
    den = (b[..., 1] - c[..., 1]) * (a[..., 0] - c[..., 0]) + (c[..., 0] - b[..., 0]) * (a[..., 1] - c[..., 1])
    ok_den = np.abs(den) > 1e-12
    den = np.where(ok_den, den, 1.0)
    w0 = ((b[..., 1] - c[..., 1]) * (qx - c[..., 0]) + (c[..., 0] - b[..., 0]) * (qy - c[..., 1])) / den
    w1 = ((c[..., 1] - a[..., 1]) * (qx - c[..., 0]) + (a[..., 0] - c[..., 0]) * (qy - c[..., 1])) / den
    w2 = 1 - w0 - w1
    inside = ok_den & (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9) & (px >= 0) & (py >= 0) & (px < W) & (py < H)
    if not inside.any():
        return
    fi, pi = np.nonzero(inside)
    zf = z[f[sel]]  # (n, 3)
    # perspective-correct depth: 1/z interpolates linearly in screen space
    inv = w0[fi, pi] / zf[fi, 0] + w1[fi, pi] / zf[fi, 1] + w2[fi, pi] / zf[fi, 2]
    depth = 1.0 / inv
    pix = py[fi, pi] * W + px[fi, pi]
    order = np.lexsort((depth, pix))
    pix_s, first = np.unique(pix[order], return_index=True)
    take = order[first]
    d = depth[take]
    better = d < best_depth[pix_s]
    p = pix_s[better]
    t = take[better]
    best_depth[p] = d[better]
    best_face[p] = sel[fi[t]]
    bw = np.stack([w0[fi[t], pi[t]], w1[fi[t], pi[t]], w2[fi[t], pi[t]]], -1)
    # perspective-correct barycentrics
    bw = bw / zf[fi[t]]
    best_bary[p] = bw / bw.sum(1, keepdims=True)


def render_mesh(vertices, faces, focal, principal_point, image_size, color=BODY_COLOUR):
    """Shaded mesh: rgb (H, W, 3) in [0, 1], mask (H, W), depth (H, W)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    face_id, bary, depth = rasterize(v, f, focal, principal_point, image_size)
    mask = face_id >= 0
    vn = vertex_normals(v, f)
    H, W = mask.shape
    rgb = np.zeros((H, W, 3))
    if mask.any():
        fid = face_id[mask]
        n = (vn[f[fid]] * bary[mask][..., None]).sum(1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        ys, xs = np.nonzero(mask)
        ray = np.stack([(xs + 0.5 - principal_point[0]) / focal[0], (ys + 0.5 - principal_point[1]) / focal[1],
                        np.ones(len(xs))], -1)
        ray /= np.linalg.norm(ray, axis=1, keepdims=True)
        lam = np.abs((n * ray).sum(1))  # two-sided lighting from the camera
        shade = 0.25 + 0.75 * lam
        rgb[mask] = shade[:, None] * np.asarray(color)[None]
    return rgb, mask, depth


def overlay(image: np.ndarray, vertices, faces, focal, principal_point, alpha: float = 0.7) -> np.ndarray:
    """The shaded mesh blended over the photo (pixels outside the mesh unchanged)."""
    H, W = image.shape[:2]
    rgb, mask, _ = render_mesh(vertices, faces, focal, principal_point, (W, H))
    out = image.astype(np.float64) / 255.0
    out[mask] = (1 - alpha) * out[mask] + alpha * rgb[mask]
    return (out * 255).round().clip(0, 255).astype(np.uint8)


def side_view(vertices, faces, image_size, focal, principal_point) -> np.ndarray:
    """The mesh turned 90° about the camera's vertical axis around its centroid, on white."""
    v = np.asarray(vertices, np.float64)
    c = v.mean(0)
    R = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    vr = (v - c) @ R.T + c
    rgb, mask, _ = render_mesh(vr, faces, focal, principal_point, image_size)
    out = np.ones_like(rgb)
    out[mask] = rgb[mask]
    return (out * 255).round().astype(np.uint8)


def overlay_with_side_view(image, vertices, faces, focal, principal_point) -> np.ndarray:
    H, W = image.shape[:2]
    return np.concatenate([overlay(image, vertices, faces, focal, principal_point),
                           side_view(vertices, faces, (W, H), focal, principal_point)], 1)


def save_png(path, array: np.ndarray) -> Path:
    from PIL import Image

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(np.asarray(array, np.uint8)).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
