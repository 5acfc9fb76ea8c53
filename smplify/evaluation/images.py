"""compare-priors on a folder of real photos (no 3D truth): 2D error, prior likelihood, time, a grid.

Every prior fits every photo with the run's configuration (same optimiser, --init and start
pose). Rows go to ``images.csv`` as each (prior, photo) fit finishes (flushed), so an
interrupted run keeps what is finished; the summary and grid are written from those rows.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import one_line

FIELDS = ["prior", "image", "reproj_px", "prior_nll", "iterations", "time_s", "flipped", "converged"]
TILE_H = 360  # grid tile height (pixels)


def _tile(image, vertices, faces, cam) -> np.ndarray:
    """The fit over the photo beside its side view, scaled to TILE_H pixels high."""
    from PIL import Image

    from ..outputs.render import overlay_with_side_view

    im = Image.fromarray(overlay_with_side_view(image, vertices, faces, cam.focal, cam.principal_point))
    return np.asarray(im.resize((max(1, int(im.width * TILE_H / im.height)), TILE_H)))


def _summary(priors, rows) -> list:
    lines = ["| prior | photos | mean 2D error px | GMM NLL | iterations | ms/fit |", "|---|---|---|---|---|---|"]
    for prior in priors:
        rs = [r for r in rows if r["prior"] == prior]
        if not rs:
            lines.append(f"| {prior} | 0 | – | – | – | – |")
            continue
        mean = lambda k: float(np.mean([r[k] for r in rs]))
        lines.append(f"| {prior} | {len(rs)} | {mean('reproj_px'):.1f} | {mean('prior_nll'):.1f} | "
                     f"{mean('iterations'):.0f} | {mean('time_s') * 1000:.0f} |")
    return lines


def compare_on_images(priors, folder: Path, out: Path, fitters: dict) -> int:
    """Fit every photo of ``folder`` under each prior ({prior: Fitter}); a table and a grid. Returns the
    exit status (2: no photos or nobody found, 1: some photos failed, 130: interrupted)."""
    import torch
    from tqdm import tqdm

    from .. import api
    from ..api import IMAGE_SUFFIXES
    from ..keypoints.detect import load_image
    from ..outputs.render import save_png

    if not folder.is_dir():
        print(f"error: {folder}: not a folder", file=sys.stderr)
        return 2
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        print(f"error: {folder}: no photos", file=sys.stderr)
        return 2
    body = next(iter(fitters.values())).body
    items, failed = [], []
    for p in tqdm(photos, desc="detect", unit="photo"):
        try:
            k = api.read_inputs(p)[0]
            items.append(api.keypoints_to_input(k, body, tag=p.stem))
        except Exception as exc:  # unreadable photo, nobody in it: one line, the others go on
            msg = one_line(exc)
            print(f"error: {msg if msg.startswith(str(p)) else f'{p}: {msg}'}", file=sys.stderr)
            failed.append(p)
    if not items:
        print(f"error: {folder}: no person found in any of its {len(photos)} photos", file=sys.stderr)
        return 2
    yard = api.load_prior("gmm", None)
    rows, tiles = [], {}
    interrupted = False
    faces = body.faces.numpy()
    with open(out / "images.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        w.writeheader()
        fh.flush()
        bar = tqdm(total=len(priors) * len(items), unit="fit")
        try:
            for prior in priors:
                fitter = fitters[prior]
                bar.set_description(f"prior {prior}")
                for it in items:  # one photo at a time: a row and a tick as each finishes
                    t0 = time.perf_counter()
                    r = fitter.fit([it])[0]
                    dt = time.perf_counter() - t0
                    with torch.no_grad():
                        nll = float(yard.nll(torch.tensor(r.body_pose[:63])[None])[0])
                    row = {"prior": prior, "image": r.image_path, "reproj_px": r.mean_error_px, "prior_nll": nll,
                           "iterations": r.iterations, "time_s": dt, "flipped": int(r.flipped),
                           "converged": int(r.converged)}
                    w.writerow(row)
                    fh.flush()
                    rows.append(row)
                    tiles[(prior, it.tag)] = _tile(load_image(r.image_path), api.posed_mesh(body, r), faces, r.camera)
                    bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
            print("interrupted: summarising the finished fits", file=sys.stderr)
        finally:
            bar.close()
    lines = _summary(priors, rows)
    (out / "images_summary.md").write_text("\n".join(lines) + "\n")
    # grid: one row per photo, per prior the fit over the photo and its side view
    grid_rows = []
    for it in items:
        cells = [tiles[(prior, it.tag)] for prior in priors if (prior, it.tag) in tiles]
        if cells:
            grid_rows.append(np.concatenate(cells, 1))
    if grid_rows:
        width = max(r.shape[1] for r in grid_rows)
        grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                               for r in grid_rows])
        save_png(out / "images_grid.png", grid)
    print("\n".join(lines))
    print(f"columns: {', '.join(priors)} (each: fit over the photo | side view); wrote {out}/images.csv, "
          f"images_summary.md" + (", images_grid.png" if grid_rows else "")
          + (f"; {len(failed)} photos failed" if failed else ""))
    if interrupted:
        return 130
    return 1 if failed else 0
