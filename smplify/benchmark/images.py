"""compare-priors on a folder of real photos (no 3D truth): 2D error, prior likelihood, time, a grid."""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

FIELDS = ["prior", "image", "reproj_px", "prior_nll", "iterations", "time_s", "flipped", "converged"]


def compare_on_images(priors, folder: Path, out: Path, args) -> int:
    import torch
    from tqdm import tqdm

    from .. import api
    from ..api import IMAGE_SUFFIXES
    from ..keypoints.detect import DetectionError, load_image
    from ..outputs.render import overlay, save_png

    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        print(f"error: {folder}: no photos", file=sys.stderr)
        return 2
    body = api.load_body()
    items, failed = [], []
    for p in photos:
        try:
            k = api.read_inputs(p)[0]
            items.append(api.keypoints_to_input(k, body, tag=p.stem))
        except (DetectionError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(p)
    yard = api._prior("gmm", None)
    rows, tiles = [], {}
    for prior in tqdm(priors, desc="priors"):
        fitter = api.make_fitter(prior, optimizer=args.optimizer)
        t0 = time.perf_counter()
        res = fitter.fit(items)
        dt = (time.perf_counter() - t0) / max(1, len(items))
        with torch.no_grad():
            nll = yard.nll(torch.tensor(np.stack([r.body_pose[:63] for r in res]))).numpy()
        for r, n in zip(res, nll):
            rows.append({"prior": prior, "image": r.image_path, "reproj_px": r.mean_error_px, "prior_nll": float(n),
                         "iterations": r.iterations, "time_s": dt, "flipped": int(r.flipped),
                         "converged": int(r.converged)})
            img = load_image(r.image_path)
            v = api.posed_mesh(body, r)
            tiles[(prior, r.tag)] = overlay(img, v, body.faces.numpy(), r.camera.focal, r.camera.principal_point)
    with open(out / "images.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        w.writeheader()
        w.writerows(rows)
    lines = ["| prior | photos | mean 2D error px | GMM NLL | iterations | ms/fit |", "|---|---|---|---|---|---|"]
    for prior in priors:
        rs = [r for r in rows if r["prior"] == prior]
        lines.append(f"| {prior} | {len(rs)} | {np.mean([r['reproj_px'] for r in rs]):.1f} | "
                     f"{np.mean([r['prior_nll'] for r in rs]):.1f} | {np.mean([r['iterations'] for r in rs]):.0f} | "
                     f"{rs[0]['time_s'] * 1000:.0f} |")
    (out / "images_summary.md").write_text("\n".join(lines) + "\n")
    # grid: one row per photo, one column per prior, each tile scaled to the same height
    from PIL import Image

    h = 360
    grid_rows = []
    for it in items:
        cells = []
        for prior in priors:
            im = Image.fromarray(tiles[(prior, it.tag)])
            cells.append(np.asarray(im.resize((max(1, int(im.width * h / im.height)), h))))
        grid_rows.append(np.concatenate(cells, 1))
    width = max(r.shape[1] for r in grid_rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in grid_rows])
    save_png(out / "images_grid.png", grid)
    print("\n".join(lines))
    print(f"columns: {', '.join(priors)}; wrote {out}/images.csv, images_summary.md, images_grid.png"
          + (f"; {len(failed)} photos failed" if failed else ""))
    return 1 if failed else 0
