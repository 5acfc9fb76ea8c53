"""Plots for the prior comparison: error per prior, error against noise, convergence curves, a grid."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def all_plots(csv_path, out: Path, curves_path=None) -> None:
    """error_by_prior.png and error_vs_noise.png from the CSV; convergence.png from the curves file
    (default: :data:`~smplify.evaluation.runner.CURVES_NAME` beside the CSV)."""
    from .runner import CURVES_NAME, read_rows

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
    convergence_plot(curves_path if curves_path is not None else Path(csv_path).with_name(CURVES_NAME),
                     out / "convergence.png", priors)


FLOOR = 1e-4  # the log axis' floor: a stage at its final objective (0 remaining) is drawn here


def _remaining(c: np.ndarray) -> np.ndarray:
    """(f_k - f_end) / (f_1 - f_end): the fraction of the decrease still to go, 1 -> 0. Shift-invariant
    on purpose: the objective can be negative (the GMM prior is a negative log-density), so
    loss / first loss would not do."""
    span = c[0] - c.min()
    return np.clip((c - c.min()) / span, 0, None) if span > 0 else np.zeros_like(c)


def _stage_segments(curve: np.ndarray, stage_iterations) -> list:
    """Split a fit's loss curve (stages concatenated) into its stages, by the number of entries each
    stage contributed (``FitResult.stage_iterations``); [] if those do not add up to the curve."""
    lengths = [int(n) for n in stage_iterations or []]
    if not lengths or min(lengths) < 1 or sum(lengths) != len(curve):
        return []
    return np.split(curve, np.cumsum(lengths)[:-1])


def _pad(curves, L=None) -> np.ndarray:
    L = L or max(len(c) for c in curves)
    return np.stack([np.concatenate([c, np.full(L - len(c), c[-1])]) for c in curves])


def _normalised_curves(records):
    """(curves (fits, iterations), stage starts): per fit and per stage, the remaining decrease of
    the objective (:func:`_remaining`: the objective's weights change from stage to stage, so each
    stage is normalised on its own). Stages are aligned across fits (a fit whose stage stopped early
    keeps its last value up to the longest one). Fits whose stages cannot be told apart are
    normalised as one curve, and then all fits are (stage starts empty). Fits without a curve or
    with non-finite values are left out."""
    fits = []
    for r in records:
        c = np.asarray(r.get("loss_curve") or [], np.float64)
        if len(c) and np.isfinite(c).all():
            fits.append((c, _stage_segments(c, r.get("stage_iterations"))))
    if not fits:
        return np.zeros((0, 0)), []
    k = {len(s) for _, s in fits}
    if len(k) != 1 or 0 in k:  # stages not found for every fit: whole curves
        return _pad([_remaining(c) for c, _ in fits]), []
    blocks, starts, at = [], [], 0
    for i in range(k.pop()):
        L = max(len(s[i]) for _, s in fits)
        blocks.append(_pad([_remaining(s[i]) for _, s in fits], L))
        starts.append(at)
        at += L
    return np.concatenate(blocks, 1), starts


def convergence_plot(curves_path, path: Path, priors=None) -> None:
    """Convergence curves: per prior, the mean (line) and inter-quartile range (band) over fits of the
    remaining decrease of the objective after each optimiser iteration, stage by stage (see
    :func:`_normalised_curves`), log y. Read from the runner's JSON-lines curves file."""
    from .runner import read_curves

    recs = read_curves(curves_path)
    priors = list(priors or dict.fromkeys(r["prior"] for r in recs))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn, staged = 0, True
    for p in priors:
        C, starts = _normalised_curves([r for r in recs if r.get("prior") == p])
        if not C.size:
            continue
        staged &= bool(starts)
        x = np.arange(1, C.shape[1] + 1)
        clip = lambda v: np.maximum(v, FLOOR)
        line, = ax.plot(x, clip(C.mean(0)), label=f"{p} (n={len(C)})", lw=1.2)
        ax.fill_between(x, clip(np.percentile(C, 25, axis=0)), clip(np.percentile(C, 75, axis=0)),
                        color=line.get_color(), alpha=0.2, lw=0)
        for s in starts[1:]:
            ax.axvline(s + 0.5, color=line.get_color(), ls=":", lw=0.8, alpha=0.7)
        drawn += 1
    if drawn:
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 2, 1.5)
        ax.set_xlabel("optimiser iteration" + (" (dotted: a new stage starts)" if staged else ", stages concatenated"))
        ax.set_ylabel("(f - f_end) / (f_1 - f_end)" + (" per stage" if staged else ""))
        ax.set_title("Convergence: remaining decrease of the objective,\nmean and inter-quartile range per prior",
                     fontsize=10)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no loss curves recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid_cases(cases, n: int = 4) -> list:
    """The grid's cases: the first ``n`` at the hardest noise and dropout level."""
    if not cases:
        return []
    noise, drop = max(c.noise_px for c in cases), max(c.dropout for c in cases)
    return [c for c in cases if c.noise_px == noise and c.dropout == drop][:n]


def qualitative_grid(body, cases, priors, path: Path, fitters: dict, config, n: int = 4, results=None) -> None:
    """The same few hardest-level cases fitted under each prior (truth first), side by side: per
    case a camera view and a side view (the mesh turned 90° about the vertical), where priors that
    agree in the image differ in depth. ``results``: {prior: {tag: FitResult}} of the run's fits;
    cases missing there are fitted by ``fitters`` ({prior: Fitter}, the run's; ``config`` their
    :class:`~smplify.config.FitConfig`, named in the title)."""
    import torch

    from ..outputs.render import render_mesh, side_view

    pick = grid_cases(cases, n)
    if not pick:
        return
    faces = body.faces.numpy()
    size = (270, 480)

    def draw(go, bp, be, tr, cam):
        with torch.no_grad():
            v = body.mesh(*[torch.as_tensor(np.asarray(a, np.float32))[None] for a in (go, bp, be, tr)]).vertices[0].numpy()
        s = size[0] / cam.image_size[0]
        focal = (cam.focal[0] * s, cam.focal[1] * s)
        pp = (cam.principal_point[0] * s, cam.principal_point[1] * s)
        rgb, mask, _ = render_mesh(v, faces, focal, pp, size)
        img = np.ones_like(rgb)
        img[mask] = rgb[mask]
        front = (img * 255).astype(np.uint8)
        side = side_view(v, faces, size, focal, pp)
        sep = np.full((size[1], 3, 3), 200, np.uint8)  # a grey rule after each case's pair
        return np.concatenate([front, side, sep], 1)

    rows = [[draw(c.global_orient, c.body_pose, c.betas, c.transl, c.camera) for c in pick]]
    for p in priors:
        have = (results or {}).get(p) or {}
        res = [have.get(c.fit_input.tag) for c in pick]
        if any(r is None for r in res):
            res = fitters[p].fit([c.fit_input for c in pick])
        rows.append([draw(r.global_orient, r.body_pose, r.betas, r.transl, c.camera) for r, c in zip(res, pick)])
    grid = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
    cell = rows[0][0].shape[1]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 100, grid.shape[0] / 100 + 0.6))
    ax.imshow(grid)
    ax.set_yticks([size[1] * (i + 0.5) for i in range(len(rows))], ["truth"] + list(priors))
    ax.set_xticks([cell * k + size[0] * (j + 0.5) for k in range(len(pick)) for j in range(2)],
                  ["camera", "side"] * len(pick), fontsize=7)
    ax.set_title(f"same cases under each prior (noise {pick[0].noise_px:g} px, dropout {pick[0].dropout:g}; "
                 f"init {config.init}, start pose {config.start_pose})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
