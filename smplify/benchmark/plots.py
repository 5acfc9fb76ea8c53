"""Plots for the prior comparison: error per prior, error against noise, convergence, a grid."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def all_plots(csv_path, out: Path) -> None:
    from .runner import read_rows

    rows = read_rows(csv_path)
    if not rows:
        return
    plt = _plt()
    priors = list(dict.fromkeys(r["prior"] for r in rows))
    # error per prior with spread
    fig, ax = plt.subplots(figsize=(6, 4))
    data = [[r["pa_mpjpe_mm"] for r in rows if r["prior"] == p] for p in priors]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(priors) + 1), priors)
    ax.set_ylabel("PA-MPJPE (mm)")
    ax.set_title("Error per prior (all noise and dropout levels)")
    fig.tight_layout()
    fig.savefig(out / "error_by_prior.png", dpi=110)
    plt.close(fig)
    # error against noise, one line per prior and dropout
    fig, ax = plt.subplots(figsize=(6, 4))
    drops = sorted({r["dropout"] for r in rows})
    for p in priors:
        for d in drops:
            g = defaultdict(list)
            for r in rows:
                if r["prior"] == p and r["dropout"] == d:
                    g[r["noise_px"]].append(r["pa_mpjpe_mm"])
            xs = sorted(g)
            ax.plot(xs, [np.mean(g[x]) for x in xs], marker="o", label=f"{p}, dropout {d:g}")
    ax.set_xlabel("pixel noise (px)")
    ax.set_ylabel("mean PA-MPJPE (mm)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "error_vs_noise.png", dpi=110)
    plt.close(fig)
    # convergence: mean objective after each stage, per prior (from the CSV's stage losses)
    import csv as _csv

    fig, ax = plt.subplots(figsize=(6, 4))
    with open(csv_path, newline="") as fh:
        reader = list(_csv.DictReader(fh))
    for p in priors:
        iters = [float(r["iterations"]) for r in reader if r["prior"] == p]
        errs = [float(r["reproj_px"]) for r in reader if r["prior"] == p]
        ax.scatter(iters, errs, s=6, label=p, alpha=0.6)
    ax.set_xlabel("iterations")
    ax.set_ylabel("final mean 2D error (px)")
    ax.set_title("Convergence: iterations used vs final 2D error")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "convergence.png", dpi=110)
    plt.close(fig)


def qualitative_grid(body, cases, priors, path: Path, args, n: int = 4) -> None:
    """The same few hardest-level cases fitted under each prior, rendered side by side (truth first)."""
    import torch

    from .. import api
    from ..outputs.render import render_mesh

    hard = [c for c in cases if c.noise_px == max(x.noise_px for x in cases) and c.dropout == max(x.dropout for x in cases)]
    pick = hard[:n]
    faces = body.faces.numpy()
    size = (270, 480)

    def draw(go, bp, be, tr, cam):
        with torch.no_grad():
            v = body.mesh(*[torch.as_tensor(np.asarray(a, np.float32))[None] for a in (go, bp, be, tr)]).vertices[0].numpy()
        s = size[0] / cam.image_size[0]
        rgb, mask, _ = render_mesh(v, faces, (cam.focal[0] * s, cam.focal[1] * s),
                                   (cam.principal_point[0] * s, cam.principal_point[1] * s), size)
        img = np.ones_like(rgb)
        img[mask] = rgb[mask]
        return (img * 255).astype(np.uint8)

    rows = [[draw(c.global_orient, c.body_pose, c.betas, c.transl, c.camera) for c in pick]]
    for p in priors:
        res = api.make_fitter(p, optimizer=args.optimizer).fit([c.fit_input for c in pick])
        rows.append([draw(r.global_orient, r.body_pose, r.betas, r.transl, c.camera) for r, c in zip(res, pick)])
    grid = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 100, grid.shape[0] / 100 + 0.4))
    ax.imshow(grid)
    ax.set_yticks([size[1] * (i + 0.5) for i in range(len(rows))], ["truth"] + list(priors))
    ax.set_xticks([])
    ax.set_title(f"same cases under each prior (noise {pick[0].noise_px:g} px, dropout {pick[0].dropout:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
