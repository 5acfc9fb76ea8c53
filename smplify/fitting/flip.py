"""The flip test: fit the body facing the camera and turned 180° about the vertical axis through the
first stages, and go on with the better facing; with more candidate starts (the regressor's and the lift's of
MediaPipe's world landmarks) the same test picks among all of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..config import Stage
from .batch import Batch
from .objective import Objective
from .stages import StageRun, memory_rows, run_stages


@dataclass
class FlipChoice:
    """What the flip test hands on for B rows: the chosen candidate's run through the flip stages (its memory:
    L-BFGS's curvature pairs of the chosen rows), its start x0 (B, D), its translation anchor transl0 (B, 3),
    and flipped (B,) bool: a turned-around candidate won."""

    run: StageRun
    x0: torch.Tensor
    transl0: torch.Tensor
    flipped: torch.Tensor


def flip_stages(objective: Objective, x: torch.Tensor, both: Batch, optimizer: str, stages: Sequence[Stage],
                analytic_gradients: bool, decided_ratio: Optional[float], K: int = 2) -> StageRun:
    """The flip test's stages for K candidates (rows b, B + b, ...: both facings, or more starts). After the
    first stage, a candidate whose loss is more than ``decided_ratio`` times the person's best stops there (its
    final loss is then +inf, so it is not chosen): only undecided rows go through the later flip stages.
    Returns the run of all K·B rows; its memory holds L-BFGS's curvature pairs of the rows that went on,
    listed under its key 'rows'."""
    out = run_stages(objective, x, both, optimizer, stages[:1], analytic_gradients)
    if len(stages) == 1:
        return out
    rows = torch.arange(len(out.x), device=x.device)
    if decided_ratio is not None:  # a facing far worse after the camera stage drops out
        f0 = out.final_loss()
        best = f0.view(K, -1).amin(0).repeat(K)  # each person's best candidate
        rows = (f0 <= decided_ratio * best).nonzero().squeeze(1)
    more = run_stages(objective, out.x[rows], both.rows(rows), optimizer, stages[1:], analytic_gradients,
                      memory_rows(out.memory, rows))
    n = len(out.x)
    sf_all = out.stage_losses.new_full((n, more.stage_losses.shape[1]), float("inf"))  # a dropped facing: never chosen
    sf_all[rows] = more.stage_losses
    cu_all = out.curve.new_full((n, more.curve.shape[1]), float("nan"))
    cu_all[rows] = more.curve
    x, it, cv, fl = out.x.clone(), out.iterations.clone(), out.converged.clone(), out.failed.clone()
    x[rows], it[rows], cv[rows], fl[rows] = more.x, it[rows] + more.iterations, more.converged, fl[rows] | more.failed
    memory = dict(more.memory, rows=rows) if more.memory is not None else None  # the pairs of the rows that went on
    return StageRun(x, it, cv, fl, torch.cat([out.stage_losses, sf_all], 1), torch.cat([out.curve, cu_all], 1),
                    out.lengths + more.lengths, memory)


def flip_test(objective: Objective, starts: Sequence[torch.Tensor], turned: Sequence[bool], batch: Batch,
              optimizer: str, stages: Sequence[Stage], analytic_gradients: bool,
              decided_ratio: Optional[float]) -> FlipChoice:
    """K candidate starts (each (B, D): the start facing the camera, turned around, and for
    init='regressor+lift' the lift's) through ``stages``; per row the one with the lowest final loss (ties: the
    first). ``turned``: which candidates are turned around (they set ``flipped``)."""
    B, K = len(starts[0]), len(starts)
    xs = torch.cat(list(starts))
    both = batch.repeat(K).replace(transl0=xs[:, objective.layout["transl"]].clone())
    out = flip_stages(objective, xs, both, optimizer, stages, analytic_gradients, decided_ratio, K)
    choice = out.final_loss().view(K, B).argmin(0)
    flipped = torch.tensor(list(turned), device=xs.device)[choice]
    pick = torch.arange(B, device=xs.device) + B * choice
    mem = out.memory
    if mem is not None:  # the chosen facing's curvature pairs go on
        at = pick
        if "rows" in mem:  # kept for the rows that went on (the chosen facing always did)
            where = torch.full((K * B,), -1, dtype=torch.long, device=xs.device)
            where[mem["rows"]] = torch.arange(len(mem["rows"]), device=xs.device)
            at = where[pick]
        mem = memory_rows({k: v for k, v in mem.items() if k != "rows"}, at)
    run = StageRun(out.x[pick], out.iterations[pick], out.converged[pick], out.failed[pick], out.stage_losses[pick],
                   out.curve[pick], out.lengths, mem)
    return FlipChoice(run, xs[pick], both.transl0[pick], flipped)
