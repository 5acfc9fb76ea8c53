"""Batched optimisers in which every sample converges on its own.

The objective is separable: ``closure(x, rows) -> f`` gives the losses (R,) of the
rows ``rows`` (a LongTensor of R batch indices, or None for all) at x (R, D); the loss
of sample b depends only on row b. One batched forward/backward then gives every
evaluated sample's value and gradient, and rows that are done are not evaluated.

* :func:`lbfgs` — L-BFGS with per-sample history, per-sample step and a per-sample
  strong-Wolfe line search (bracketing: expand while too short, bisect once too long).
  A sample that converged stops changing; a sample whose trial points are non-finite
  only shrinks its own step; nothing one sample does moves another. At batch size 1
  it is ordinary L-BFGS with a strong-Wolfe search.
* :func:`adam` — ``torch.optim.Adam`` over the batch, with converged rows held fixed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

Closure = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


@dataclass
class OptimResult:
    """x (B, D); f (B,); iterations (B,) int; converged (B,) bool; failed (B,) bool (never finite)."""

    x: torch.Tensor
    f: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    failed: torch.Tensor
    trace: Optional[torch.Tensor] = None  # (B, T): each row's loss after each iteration
    memory: Optional[dict] = None  # L-BFGS: its curvature pairs, to go on with (``lbfgs(memory=...)``)


def _stack_trace(trace: list, f: torch.Tensor) -> torch.Tensor:
    """(B, T) losses per iteration (T = 0 when no iteration ran)."""
    return torch.stack(trace, 1) if trace else f.new_zeros(f.shape[0], 0)


def value_and_grad(closure: Closure, x: torch.Tensor, rows: Optional[torch.Tensor] = None):
    """f (R,) and ∂f_r/∂x_r (R, D) with one backward pass (the objective is separable)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = closure(x, rows)
        (g,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), g.detach()


def lbfgs_direction(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, valid: torch.Tensor,
                    gamma: torch.Tensor, small_batch: int = 64, order: Optional[list] = None,
                    rho: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The L-BFGS product H·g for every row (Nocedal & Wright alg. 7.4).

    Args:
        g: (B, D) gradients. S, Y: (B, m, D) steps and gradient changes, oldest first (or in ``order``).
        valid: (B, m) bool (invalid pairs are skipped per row). gamma: (B,) initial scaling sᵀy / yᵀy.
        small_batch: up to this many rows, :func:`lbfgs_direction_solve` (a few batched products: per-op
            overhead rules there); above it, :func:`lbfgs_direction_loop` (LAPACK's triangular solves go
            one matrix at a time). The two are the same arithmetic, tested equal.
        order: the slots of S and Y to use, oldest first (default all m in turn): a ring buffer is read
            in place by the loop, not gathered.
        rho: (B, m) 1 / sᵀy per slot, 0 where invalid, if the caller keeps it (else computed here).
    Returns:
        (B, D) H·g (the search direction is its negative).

    (The compact matrix form of Byrd, Nocedal & Schnabel was tried: no faster here, and less
    accurate in float32 once the pairs grow nearly dependent.)
    """
    if g.shape[0] <= small_batch:
        if order is not None:
            idx = torch.tensor(order, device=g.device)
            S, Y, valid = S[:, idx], Y[:, idx], valid[:, idx]
        return lbfgs_direction_solve(g, S, Y, valid, gamma)
    return lbfgs_direction_loop(g, S, Y, valid, gamma, order, rho)


def lbfgs_direction_loop(g, S, Y, valid, gamma, order: Optional[list] = None,
                         rho: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`lbfgs_direction` by the two-loop recursion, one history pair per step."""
    if rho is None:
        rho = valid.to(g.dtype) / (S * Y).sum(-1).clamp(min=1e-10)  # (B, m), 0 for invalid pairs
    order = list(range(S.shape[1])) if order is None else order
    q = g
    alphas = {}
    for k in reversed(order):
        a = rho[:, k] * (S[:, k] * q).sum(-1)
        q = torch.addcmul(q, a[:, None], Y[:, k], value=-1.0)
        alphas[k] = a
    r = gamma[:, None] * q
    for k in order:
        b = rho[:, k] * (Y[:, k] * r).sum(-1)
        r = torch.addcmul(r, (alphas[k] - b)[:, None], S[:, k])
    return r


def lbfgs_direction_solve(g, S, Y, valid, gamma) -> torch.Tensor:
    """:func:`lbfgs_direction` with each loop of the recursion written as one triangular system.

    First loop: α_k = ρ_k (s_kᵀg − Σ_{j>k} α_j s_kᵀy_j), i.e. (I + diag ρ · triu₁(SYᵀ)) α = ρ ⊙ Sg.
    Second loop, in c_k = α_k − β_k with β_k = ρ_k y_kᵀ(r₀ + Σ_{j<k} c_j s_j), r₀ = γ(g − Yᵀα):
    (I + diag ρ · tril₋₁(YSᵀ)) c = α − ρ ⊙ Y r₀; then H·g = r₀ + Sᵀc. An invalid pair (ρ = 0) gets
    α = c = 0, as in the loop. Both systems are unit triangular, so the solver reads only the strict
    triangle of diag ρ · SYᵀ (resp. its transpose) and neither the identity nor the mask is formed.
    """
    SY = S @ Y.transpose(1, 2)  # (B, m, m): [k, j] = s_kᵀ y_j
    rho = valid.to(g.dtype) / torch.diagonal(SY, dim1=1, dim2=2).clamp(min=1e-10)  # (B, m), 0 for invalid pairs
    upper = rho[..., None] * SY
    a = torch.linalg.solve_triangular(upper, (rho * (S @ g[..., None])[..., 0])[..., None], upper=True,
                                      unitriangular=True)[..., 0]
    r0 = gamma[:, None] * (g - (Y.transpose(1, 2) @ a[..., None])[..., 0])
    lower = rho[..., None] * SY.transpose(1, 2)
    c = torch.linalg.solve_triangular(lower, (a - rho * (Y @ r0[..., None])[..., 0])[..., None], upper=False,
                                      unitriangular=True)[..., 0]
    return r0 + (S.transpose(1, 2) @ c[..., None])[..., 0]


def _finite_rows(*ts):
    ok = None
    for t in ts:
        r = torch.isfinite(t) if t.dim() == 1 else torch.isfinite(t).all(-1)
        ok = r if ok is None else ok & r
    return ok


def lbfgs(closure: Closure, x0: torch.Tensor, max_iter: int = 30, history: int = 10,
          ftol: float = 1e-6, gtol: float = 1e-6, max_ls: int = 10, c1: float = 1e-4, c2: float = 0.9,
          active: torch.Tensor | None = None, grad_fn: Optional[Callable] = None,
          memory: Optional[dict] = None) -> OptimResult:
    """Minimise each row of a separable objective with L-BFGS (see module docstring).

    Args:
        closure: x (B, D) -> f (B,). x0: (B, D) start. active: (B,) bool, rows to optimise.
        ftol: relative decrease below which a sample has converged; gtol: max |g| likewise.
        grad_fn: optional ``(x, rows) -> (f, ∂f/∂x)`` that replaces autograd on ``closure``
            (an analytic gradient of the same objective).
        memory: a previous run's ``OptimResult.memory`` over the same variables and rows: its curvature
            pairs start this run's history (a stage that changes only the weights of an objective).

    At batch size 1 the bookkeeping is ~100 tensor operations an iteration, each costing more than
    its arithmetic, so it is written with few of them: a trial point is finite when f + gᵀd is (a
    non-finite gradient entry makes that product non-finite), constants are made once, and nothing
    is copied that is not changed.
    """
    B, D = x0.shape
    dev, dt = x0.device, x0.dtype
    x = x0.detach().clone()
    vg = (lambda xs, rows=None: value_and_grad(closure, xs, rows)) if grad_fn is None else grad_fn
    f, g = vg(x)
    active = torch.ones(B, dtype=torch.bool, device=dev) if active is None else active.clone()
    failed = ~_finite_rows(f, g) & active
    active &= ~failed
    converged = torch.zeros(B, dtype=torch.bool, device=dev)
    iters = torch.zeros(B, dtype=torch.long, device=dev)
    # ring buffers of steps s_k and gradient changes y_k; a slot is read only once written (slot_order).
    # (B, history, D) views of slot-major storage: each slot S[:, k] is contiguous for the two-loop recursion
    S = torch.empty(history, B, D, device=dev, dtype=dt).transpose(0, 1)
    Y = torch.empty(history, B, D, device=dev, dtype=dt).transpose(0, 1)
    valid = torch.zeros(B, history, dtype=torch.bool, device=dev)
    gamma = torch.ones(B, device=dev, dtype=dt)
    slot_order: list[int] = []  # ring slots, oldest first
    if memory is not None and memory["S"].shape[-1] == D and len(memory["order"]):  # newest pairs, oldest first
        n = min(history, len(memory["order"]))
        keep_slots = memory["order"][-n:]
        idx = torch.tensor(keep_slots, dtype=torch.long, device=dev)
        S[:, :n], Y[:, :n], valid[:, :n] = memory["S"][:, idx], memory["Y"][:, idx], memory["valid"][:, idx]
        gamma = memory["gamma"].clone()
        slot_order = list(range(n))
    RHO = torch.zeros(B, history, device=dev, dtype=dt)  # 1 / sᵀy of each stored pair (0: none)
    if slot_order:
        RHO[:, :n] = valid[:, :n].to(dt) / (S[:, :n] * Y[:, :n]).sum(-1).clamp(min=1e-10)
    stalls = torch.zeros(B, dtype=torch.long, device=dev)
    ones, zeros = torch.ones(B, device=dev, dtype=dt), torch.zeros(B, device=dev, dtype=dt)
    infs = torch.full((B,), float("inf"), device=dev, dtype=dt)
    trace = []
    for it in range(len(slot_order), len(slot_order) + max_iter):
        run = active & ~converged
        if not run.any():
            break
        if slot_order:
            n = len(slot_order)
            rho = RHO * valid  # invalidated pairs (steepest-descent restarts) count for nothing
            if slot_order[0] == 0 and slot_order[-1] == n - 1:  # not wrapped yet: the first n slots, in order
                d = -lbfgs_direction(g, S[:, :n], Y[:, :n], valid[:, :n], gamma, rho=rho[:, :n])
            else:
                d = -lbfgs_direction(g, S, Y, valid, gamma, order=slot_order, rho=rho)
        else:
            d = -gamma[:, None] * g
        gd0 = (g * d).sum(-1)
        bad_dir = gd0 >= -1e-12
        if bad_dir.any():  # not a descent direction: reset that sample to steepest descent
            d[bad_dir] = -g[bad_dir]
            valid[bad_dir] = False
            gd0 = (g * d).sum(-1)
        alpha = ones
        if slot_order:  # rows without history take a first step of length 1/|g|₁ (at most 1)
            no_hist = ~valid.any(1)
            if no_hist.any():
                alpha = torch.where(no_hist, (1.0 / g.abs().sum(-1).clamp(min=1e-12)).clamp(max=1.0), ones)
        else:
            alpha = (1.0 / g.abs().sum(-1).clamp(min=1e-12)).clamp(max=1.0)
        # per-sample strong-Wolfe line search by bracketing
        armijo_slope, curv = c1 * gd0, c2 * gd0  # f(α) ≤ f + α c₁ gᵀd;  |g(α)ᵀd| ≤ −c₂ gᵀd
        lo, hi, best_a, best_f, best_g = zeros, infs, zeros, f, g
        done = ~run
        for ls in range(max_ls):
            todo = None if ls == 0 and run.all() else (~done).nonzero().squeeze(1)
            if todo is None or len(todo) == B:
                ft, gt = vg(x + alpha[:, None] * d)
            else:
                ft, gt = f.clone(), g.clone()
                ft[todo], gt[todo] = vg(x[todo] + alpha[todo, None] * d[todo], todo)
            gdt = (gt * d).sum(-1)
            armijo = torch.isfinite(ft + gdt) & (ft <= f + alpha * armijo_slope)
            better = armijo & (ft < best_f) & ~done
            best_a = torch.where(better, alpha, best_a)
            best_f = torch.where(better, ft, best_f)
            best_g = torch.where(better[:, None], gt, best_g)
            done = done | (armijo & (gdt.abs() <= -curv))
            if done.all():
                break
            too_far = ~armijo | (gdt >= 0)
            hi = torch.where(~done & too_far, alpha, hi)
            lo = torch.where(~done & ~too_far, alpha, lo)
            alpha = torch.where(done, alpha, torch.where(torch.isinf(hi), 2 * alpha, 0.5 * (lo + hi)))
        moved = run & (best_a > 0)
        stuck = run & ~moved
        s = best_a[:, None] * d
        y = best_g - g
        sy = (s * y).sum(-1)
        k = it % history
        if k in slot_order:
            slot_order.remove(k)
        slot_order.append(k)
        keep = moved & (sy > 1e-10)
        S[:, k], Y[:, k] = torch.where(keep[:, None], s, 0.0), torch.where(keep[:, None], y, 0.0)
        valid[:, k] = keep
        RHO[:, k] = torch.where(keep, 1.0 / sy.clamp(min=1e-10), 0.0)
        gamma = torch.where(keep, sy / (y * y).sum(-1).clamp(min=1e-20), gamma)
        f_old = f
        x = torch.where(moved[:, None], x + s, x)
        f = torch.where(moved, best_f, f)
        g = torch.where(moved[:, None], best_g, g)
        iters += run
        stalls = torch.where(stuck, stalls + 1, 0)
        valid &= ~stuck[:, None]  # no progress: restart from steepest descent
        small_df = (f_old - f).abs() <= ftol * f_old.abs().clamp(min=1.0)
        converged |= run & ((moved & small_df) | (g.abs().amax(-1) <= gtol) | (stalls >= 2))
        trace.append(f)
    return OptimResult(x, f, iters, converged | failed, failed, _stack_trace(trace, f),
                       memory={"S": S, "Y": Y, "valid": valid, "gamma": gamma, "order": slot_order})


def adam(closure: Closure, x0: torch.Tensor, max_iter: int = 100, lr: float = 0.02, ftol: float = 1e-6,
         patience: int = 5, active: torch.Tensor | None = None) -> OptimResult:
    """Adam over the batch (``torch.optim.Adam``); a row is frozen once its loss stops improving
    by more than ``ftol`` (relative) for ``patience`` steps. Non-finite steps are undone."""
    B = x0.shape[0]
    dev = x0.device
    x = torch.nn.Parameter(x0.detach().clone())
    opt = torch.optim.Adam([x], lr=lr)
    active = torch.ones(B, dtype=torch.bool, device=dev) if active is None else active.clone()
    frozen = ~active
    best_f = torch.full((B,), float("inf"), device=dev)
    best_x = x.detach().clone()
    calm = torch.zeros(B, dtype=torch.long, device=dev)
    iters = torch.zeros(B, dtype=torch.long, device=dev)
    trace = []
    for _ in range(max_iter):
        if frozen.all():
            break
        opt.zero_grad()
        with torch.enable_grad():
            f = closure(x, None)
            f.sum().backward()
        fd = f.detach()
        ok = torch.isfinite(fd) & torch.isfinite(x.grad).all(-1)
        improved = ok & (fd < best_f - ftol * best_f.abs().clamp(min=1.0))
        best_x = torch.where((ok & (fd < best_f))[:, None], x.detach(), best_x)
        best_f = torch.where(ok & (fd < best_f), fd, best_f)
        calm = torch.where(improved, torch.zeros_like(calm), calm + 1)
        frozen |= calm >= patience
        x.grad[frozen | ~ok] = 0
        iters += (~frozen).long()
        keep = x.detach().clone()
        opt.step()
        with torch.no_grad():
            x[frozen] = keep[frozen]
            x[~ok] = best_x[~ok]
        trace.append(best_f.clone())
    f, _ = value_and_grad(closure, best_x)
    failed = ~torch.isfinite(f) & active
    return OptimResult(best_x, f, iters, frozen | failed, failed, _stack_trace(trace, f))


NormalClosure = Callable[[torch.Tensor, Optional[torch.Tensor]], tuple]

_SOLVER_POOL = None  # threads for batched factorisations (created on first large batch)


def cholesky_solve_batched(A: torch.Tensor, b: torch.Tensor, min_rows: int = 64) -> tuple:
    """Solve the SPD systems A x = b by Cholesky: A (R, D, D), b (R, D) -> x (R, D), ok (R,) bool.

    A CPU build factors a batch one matrix at a time on one core (LAPACK per matrix); from ``min_rows``
    rows on, the batch is split over ``torch.get_num_threads()`` Python threads (torch releases the GIL
    inside the call), which is faster on a multi-core machine (docs/decisions.md). A matrix that is not positive
    definite gives ok False (its x is then not to be used).
    """
    global _SOLVER_POOL

    def one(Ab):
        L, info = torch.linalg.cholesky_ex(Ab[0])
        return torch.cholesky_solve(Ab[1][..., None], L)[..., 0], info == 0

    n = torch.get_num_threads()
    if A.device.type != "cpu" or n < 2 or A.shape[0] < min_rows:
        return one((A, b))
    if _SOLVER_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _SOLVER_POOL = ThreadPoolExecutor(n, thread_name_prefix="smplify-solve")
    parts = list(_SOLVER_POOL.map(one, zip(A.chunk(n), b.chunk(n))))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def normal_equations(r: torch.Tensor, J: torch.Tensor) -> tuple:
    """Gauss-Newton normal equations of residuals r (B, M) with Jacobian J (B, M, D): g = Jᵀr (B, D),
    H = JᵀJ (B, D, D)."""
    Jt = J.transpose(1, 2)
    return (Jt @ r[..., None])[..., 0], Jt @ J


def levenberg_marquardt(normal: NormalClosure, x0: torch.Tensor, max_iter: int = 30, ftol: float = 1e-6,
                        mu0: float = 1e-3, active: torch.Tensor | None = None) -> OptimResult:
    """Batched Levenberg-Marquardt for objectives of the form f = ‖r(x)‖² + c(x) (c piecewise constant).

    ``normal(x, rows) -> (f (R,), g (R, D), H (R, D, D))`` for the rows ``rows`` (None: all): the
    objective and its Gauss-Newton normal equations, g = Jᵀr (half the gradient) and H = JᵀJ
    (:func:`normal_equations` makes them from residuals). Each row keeps its own damping μ
    (Marquardt's scaling, H + μ·diag(H)) and is accepted on its true objective f, so a row's step
    never raises its loss; a rejected step raises μ (Nielsen's update), an accepted one lowers it.
    One evaluation per iteration, no autograd. A row has converged when an accepted step lowers f
    by less than ``ftol`` (relative) or μ has grown past 1e10 (no step helps); non-finite trials
    are rejected, a non-finite start is ``failed``.
    """
    B, D = x0.shape
    dev, dt = x0.device, x0.dtype
    x = x0.detach().clone()
    with torch.no_grad():
        f, g, H = normal(x, None)
    diag_of = lambda M: torch.diagonal(M, dim1=1, dim2=2)
    active = torch.ones(B, dtype=torch.bool, device=dev) if active is None else active.clone()
    failed = ~_finite_rows(f, g, diag_of(H)) & active
    active &= ~failed
    converged = torch.zeros(B, dtype=torch.bool, device=dev)
    iters = torch.zeros(B, dtype=torch.long, device=dev)
    mu = torch.full((B,), mu0, device=dev, dtype=dt)
    nu = torch.full((B,), 2.0, device=dev, dtype=dt)
    trace = []
    for _ in range(max_iter):
        run = active & ~converged
        n_run = int(run.sum())
        if n_run == 0:
            break
        every = n_run == B  # then no row gathers
        idx = run.nonzero().squeeze(1)
        Hr, gr, mur, fr = (H, g, mu, f) if every else (H[idx], g[idx], mu[idx], f[idx])
        diag = diag_of(Hr).clone()
        damp = diag + 1e-9 * diag.amax(-1, keepdim=True).clamp(min=1e-12)
        diag_of(Hr).add_(mur[:, None] * damp)  # damped in place (Hr is H itself or a gathered copy) ...
        step, ok_solve = cholesky_solve_batched(Hr, gr)
        diag_of(Hr).copy_(diag)  # ... and restored exactly
        step = -step
        ok_solve &= torch.isfinite(step).all(-1)
        step = torch.where(ok_solve[:, None], step, torch.zeros_like(step))
        pred = -(2 * (gr * step).sum(-1) + (step[:, None] @ Hr @ step[..., None])[:, 0, 0])  # predicted ‖r‖² decrease
        with torch.no_grad():
            fn, gn, Hn = normal((x if every else x[idx]) + step, None if every else idx)
        finite = _finite_rows(fn, gn, diag_of(Hn))
        gain = fr - fn
        acc = ok_solve & finite & (gain > 0)
        rho = gain / pred.clamp(min=1e-30)
        new_mu = torch.where(acc, mur * torch.clamp(1 - (2 * rho - 1).pow(3), min=1 / 3), mur * nu[idx])
        nu[idx] = torch.where(acc, torch.full_like(mur, 2.0), nu[idx] * 2)
        mu[idx] = new_mu.clamp(max=1e12)
        small = acc & (gain <= ftol * fr.abs().clamp(min=1.0))
        if every and bool(acc.all()):  # every row ran and moved: take the new state without copying it
            x, f, g, H = x + step, fn, gn, Hn
        else:
            a = idx[acc]
            x[a] = x[a] + step[acc]
            f[a], g[a], H[a] = fn[acc], gn[acc], Hn[acc]
        iters[idx] += 1
        converged[idx] |= small | (new_mu >= 1e10)
        trace.append(f.clone())
    return OptimResult(x, f, iters, converged | failed, failed, _stack_trace(trace, f))
