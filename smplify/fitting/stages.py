"""Running a schedule of stages over a batch with one optimiser, and what a run returns."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from ..config import FitConfig, Stage
from ..optim import adam, lbfgs, levenberg_marquardt
from .batch import Batch
from .objective import Objective


@dataclass
class StageRun:
    """R rows run through some stages. x (R, D); iterations (R,); converged, failed (R,) bool;
    stage_losses (R, S) each stage's final loss; curve (R, T) the objective after each iteration, stages
    concatenated; lengths: each stage's share of the curve (the same for every row); memory: the last
    L-BFGS stage's curvature pairs (:attr:`smplify.optim.OptimResult.memory`, with 'free'), or None."""

    x: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    failed: torch.Tensor
    stage_losses: torch.Tensor
    curve: torch.Tensor
    lengths: List[int]
    memory: Optional[dict] = None

    def final_loss(self) -> torch.Tensor:
        """(R,) each row's last stage loss, +inf where the row failed or the loss is not finite."""
        last = self.stage_losses[:, -1]
        return torch.where(self.failed | ~torch.isfinite(last), torch.full_like(last, float("inf")), last)


def memory_rows(memory: Optional[dict], rows: torch.Tensor) -> Optional[dict]:
    """L-BFGS's memory (:attr:`smplify.optim.OptimResult.memory`) for these rows only (its per-row parts)."""
    if memory is None:
        return None
    return {k: (v[rows] if k in ("S", "Y", "valid", "gamma") else v) for k, v in memory.items()}


def run_stages(objective: Objective, x: torch.Tensor, batch: Batch, optimizer: str, stages: Sequence[Stage],
               analytic_gradients: bool, memory=None) -> StageRun:
    """Run ``stages`` from x with ``optimizer`` ('lbfgs', 'lm', 'adam'). ``memory``: L-BFGS's curvature pairs
    from a previous stage over these rows (see :func:`smplify.optim.lbfgs`); ``analytic_gradients``: L-BFGS
    takes f and its gradient from :meth:`Objective.normal` instead of autograd."""
    c: FitConfig = objective.config
    sl = objective.layout
    B = x.shape[0]
    iters = torch.zeros(B, dtype=torch.long, device=x.device)
    converged = torch.zeros(B, dtype=torch.bool, device=x.device)
    failed = torch.zeros(B, dtype=torch.bool, device=x.device)
    stage_losses, curves = [], []
    first = c.schedule()[0].name
    for stage in stages:
        groups = [g for g in stage.free if g != "focal"]  # focal, if free, last
        if "focal" in stage.free or (c.optimize_focal and stage.name != first):
            groups.append("focal")
        free = torch.cat([torch.arange(sl.dim, device=x.device)[sl[g]] for g in groups])
        fixed = x.detach()

        def closure(xs, rows, stage=stage, free=free, fixed=fixed):
            base = fixed if rows is None else fixed[rows]
            terms, _ = objective.terms(base.index_copy(1, free, xs), batch, stage.torso_only, rows)
            return objective.total(terms, stage)

        analytic = optimizer == "lm" or (optimizer == "lbfgs" and analytic_gradients)
        if optimizer == "lm":  # LM converges where L-BFGS stops early: a firmer pose prior
            stage = dataclasses.replace(stage, pose_prior=stage.pose_prior * c.lm_prior_scale)
        # pose and shape fixed (the camera stage): the points move rigidly, computed once here
        rigid = (objective.rigid_body(fixed, batch) if analytic and set(groups) <= {"transl", "global_orient", "focal"}
                 else None)

        def normal(xs, rows, hessian=True, stage=stage, free=free, fixed=fixed, groups=groups, rigid=rigid):
            """The analytic objective over this stage's free columns (:meth:`Objective.normal`)."""
            base = fixed if rows is None else fixed[rows]
            rig = rigid if rigid is None or rows is None else tuple(t[rows] for t in rigid)
            return objective.normal(base.index_copy(1, free, xs), batch, stage, groups, rows, rig, hessian)

        def grad_fn(xs, rows=None, normal=normal):  # f and 2Jᵀr, no autograd
            f, g, _ = normal(xs, rows, hessian=False)
            return f, 2 * g

        with torch.inference_mode(analytic):  # no autograd on the analytic paths: less overhead per evaluation
            if optimizer == "lm":
                r = levenberg_marquardt(normal, x[:, free], ftol=c.lm_ftol, mu0=c.lm_mu0,
                                        max_iter=max(1, int(stage.iterations * c.lm_iterations_factor)))
            elif optimizer == "adam":
                r = adam(closure, x[:, free], max_iter=int(stage.iterations * c.adam_iterations_factor),
                         lr=c.adam_lr, ftol=c.ftol)
            else:
                # a stage over the same variables as the last goes on with its curvature pairs
                same = memory is not None and c.carry_memory and torch.equal(memory["free"], free)
                r = lbfgs(closure, x[:, free], max_iter=stage.iterations, history=c.lbfgs_history,
                          ftol=c.ftol, max_ls=c.line_search_steps, grad_fn=grad_fn if analytic else None,
                          memory=memory if same else None)
        if analytic:  # plain tensors again (inference tensors cannot enter a later autograd graph)
            r = dataclasses.replace(r, **{k: v.clone() for k, v in vars(r).items() if isinstance(v, torch.Tensor)})
        memory = dict(r.memory, free=free) if r.memory is not None else None
        x = fixed.index_copy(1, free, r.x)
        iters += r.iterations
        converged = r.converged & ~r.failed
        failed |= r.failed
        stage_losses.append(r.f)
        curves.append(r.trace)
    curve = torch.cat(curves, 1) if curves else x.new_zeros(B, 0)
    return StageRun(x, iters, converged, failed, torch.stack(stage_losses, 1) if stage_losses else x.new_zeros(B, 0),
                    curve, [cu.shape[1] for cu in curves], memory)


def settled(curves, last_lengths: Sequence[int], window: int, tol: float, device) -> torch.Tensor:
    """(B,) bool: the last stage's loss changed by less than ``tol`` (relative) over its final ``window``
    iterations. curves: each row's loss curve; last_lengths: how many of its entries the last stage wrote."""
    out = []
    for cu, n in zip(curves, last_lengths):
        tail = cu[len(cu) - min(len(cu), n):]
        if len(tail) <= window:
            out.append(False)
            continue
        a, b = float(tail[-1 - window]), float(tail[-1])
        out.append(abs(a - b) <= tol * max(abs(a), 1.0))
    return torch.tensor(out, dtype=torch.bool, device=device)
