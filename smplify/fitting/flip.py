"""The flip test: fit the body facing the camera and turned 180° about the vertical axis through the
first stages, and go on with the better facing."""
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
    """What the flip test hands on for B rows: the chosen facing's run through the flip stages (its memory:
    L-BFGS's curvature pairs of the chosen rows), its start x0 (B, D), its translation anchor transl0 (B, 3),
    and flipped (B,) bool: the turned-around facing won."""

    run: StageRun
    x0: torch.Tensor
    transl0: torch.Tensor
    flipped: torch.Tensor


def flip_stages(objective: Objective, x: torch.Tensor, both: Batch, optimizer: str, stages: Sequence[Stage],
                analytic_gradients: bool, decided_ratio: Optional[float]) -> StageRun:
    """The flip test's stages for both facings (rows b and B + b of x). After the first stage, a facing
    whose loss is more than ``decided_ratio`` times the other's stops there (its final loss is then +inf,
    so it is not chosen): only undecided rows fit both facings through the later flip stages. Returns the
    run of all 2B rows; its memory holds L-BFGS's curvature pairs of the rows that went on, listed under
    its key 'rows'."""
    out = run_stages(objective, x, both, optimizer, stages[:1], analytic_gradients)
    if len(stages) == 1:
        return out
    rows = torch.arange(len(out.x), device=x.device)
    if decided_ratio is not None:  # a facing far worse after the camera stage drops out
        B = len(out.x) // 2
        f0 = out.final_loss()
        best = torch.minimum(f0[:B], f0[B:]).repeat(2)
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


def flip_test(objective: Objective, x0: torch.Tensor, x1: torch.Tensor, batch: Batch, optimizer: str,
              stages: Sequence[Stage], analytic_gradients: bool, decided_ratio: Optional[float]) -> FlipChoice:
    """Both facings (x0 facing the camera, x1 turned around; batch.transl0 is x0's) through ``stages``;
    per row the one with the lower final loss."""
    B = len(x0)
    both = batch.twice().replace(transl0=torch.cat([x0, x1])[:, objective.layout["transl"]].clone())
    out = flip_stages(objective, torch.cat([x0, x1]), both, optimizer, stages, analytic_gradients, decided_ratio)
    fin = out.final_loss()
    flipped = fin[B:] < fin[:B]
    pick = torch.arange(B, device=x0.device) + B * flipped.long()
    mem = out.memory
    if mem is not None:  # the chosen facing's curvature pairs go on
        at = pick
        if "rows" in mem:  # kept for the rows that went on (the chosen facing always did)
            where = torch.full((2 * B,), -1, dtype=torch.long, device=x0.device)
            where[mem["rows"]] = torch.arange(len(mem["rows"]), device=x0.device)
            at = where[pick]
        mem = memory_rows({k: v for k, v in mem.items() if k != "rows"}, at)
    run = StageRun(out.x[pick], out.iterations[pick], out.converged[pick], out.failed[pick], out.stage_losses[pick],
                   out.curve[pick], out.lengths, mem)
    return FlipChoice(run, torch.where(flipped[:, None], x1, x0), both.transl0[pick], flipped)
