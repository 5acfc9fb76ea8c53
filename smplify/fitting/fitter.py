"""The staged SMPLify fitter: batched, per-sample convergence, flip test, restarts.

A :class:`~smplify.fitting.result.FitInput` is one person: 2D targets already mapped onto the body
model's points (24 joints then the model's surface landmarks) and a camera. :class:`Fitter` fits a list
of them in one batched optimisation and returns :class:`~smplify.fitting.result.FitResult` s. It loads
no files: :func:`smplify.api.build_fitter` loads the prior and the regressor and builds one.
"""
from __future__ import annotations

import copy
import time
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..body import BodyModel
from ..config import FIT_DEVICES, FitConfig, device_problem
from ..residuals import has_least_squares_form
from .batch import Batch, make_batch
from .flip import flip_test
from .objective import Objective
from .params import ParamLayout
from .result import FitInput, FitResult, build_results
from .stages import run_stages, settled
from .starts import FACING_CAMERA, TURNED_AROUND, Starts, turned


def _on_device(obj, device: torch.device, depth: int = 0):
    """obj itself where it already lives on ``device`` (or holds no tensors), else a copy moved there:
    a tensor, a torch module, a list/tuple/dict of them, or an object (a prior) whose attributes hold
    them, however nested (a sum of priors keeps its parts in a list; a chain prior its mixtures)."""
    if obj is None or depth > 6:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, torch.nn.Module):
        here = next(iter(obj.buffers()), next(iter(obj.parameters()), None))
        return obj if here is None or here.device == device else copy.deepcopy(obj).to(device)
    if isinstance(obj, (list, tuple)):
        moved = [_on_device(v, device, depth + 1) for v in obj]
        return obj if all(a is b for a, b in zip(moved, obj)) else type(obj)(moved)
    if isinstance(obj, dict):
        moved = {k: _on_device(v, device, depth + 1) for k, v in obj.items()}
        return obj if all(moved[k] is obj[k] for k in obj) else moved
    if not hasattr(obj, "__dict__") or isinstance(obj, type):
        return obj
    moved = {k: _on_device(v, device, depth + 1) for k, v in vars(obj).items()}
    moved = {k: v for k, v in moved.items() if v is not getattr(obj, k)}
    if not moved:
        return obj
    out = copy.copy(obj)
    for k, v in moved.items():
        setattr(out, k, v)
    return out


def resolve_optimizer(config: FitConfig, prior, latent: bool) -> str:
    """'auto' -> Levenberg-Marquardt where the pose prior has a least-squares form (GMM in SMPLify's
    max form, bend), else L-BFGS (no prior; the VAE, whose decoder is no residual). 'lm' on a prior
    without that form is an error."""
    opt = config.optimizer
    if opt not in ("auto", "lm", "lbfgs", "adam"):
        raise ValueError(f"optimizer must be auto, lm, lbfgs or adam, not {opt!r}")
    if opt not in ("auto", "lm"):
        return opt
    ok = not latent and has_least_squares_form(prior)
    if opt == "lm" and not ok:
        raise ValueError(f"optimizer 'lm' needs a pose prior with a least-squares form (none, gmm, bend); "
                         f"prior {config.prior!r} has none: use lbfgs, adam or auto")
    # auto: LM only with a pose prior; without one a single view leaves depth ambiguous and L-BFGS's early
    # stop regularises (docs/decisions.md, "Optimiser")
    return "lm" if opt == "lm" or (ok and getattr(prior, "name", "") != "none") else "lbfgs"


class Fitter:
    """Fits SMPL-format bodies to 2D keypoints. Build once (:func:`smplify.api.build_fitter`), call
    :meth:`fit` many times.

    body: the body model; prior: the pose prior object (:func:`priors.get_pose_prior`); regressor: the
    keypoint regressor (needed for ``init='regressor'``); start_pose: (63,) axis-angle pose of the mean
    start (``start_pose='shared'``: the same for every prior; None: the prior's own mean).
    """

    def __init__(self, body: BodyModel, config: Optional[FitConfig] = None, prior=None, regressor=None,
                 start_pose: Optional[np.ndarray] = None):
        self.config = c = config or FitConfig()
        try:
            self.device = torch.device(c.device)
        except RuntimeError as e:
            raise ValueError(f"device {c.device!r} is not a torch device ({e})") from None
        if self.device.type not in FIT_DEVICES:
            raise ValueError(device_problem(c.device))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {c.device!r}: this torch build sees no CUDA device")
        if prior is None:
            raise ValueError("Fitter needs a pose prior object (smplify.api.build_fitter loads one by name)")
        if c.learned_start and regressor is None:
            raise ValueError(f"init={c.init!r} needs a regressor (smplify.api.build_fitter loads the shipped one)")
        if c.start_pose == "shared" and start_pose is None:
            raise ValueError("start_pose='shared' needs the shared pose (smplify.api.build_fitter reads it)")
        # the fitter's own copies on its device (the caller's body, prior and regressor stay where they are)
        self.body = _on_device(body, self.device)
        self.prior = prior = _on_device(prior, self.device)
        self.regressor = _on_device(regressor, self.device)
        self.latent = bool(getattr(prior, "supports_latent", False)) and c.vae_mode == "latent"
        self.optimizer = resolve_optimizer(c, prior, self.latent)
        # L-BFGS takes f and its gradient from the analytic Jacobian where the objective has the least-squares
        # form and that Jacobian is exact: not for pose correctives (official SMPL files), whose derivative it
        # leaves out; LM tolerates that (steps are accepted on the true objective), a line search would not
        self.analytic_gradients = (c.analytic_gradients and not self.latent and has_least_squares_form(prior)
                                   and not getattr(self.body, "has_posedirs", False))
        self.layout = ParamLayout(int(prior.latent_dim) if self.latent else 63, body.num_betas)
        self.objective = Objective(self.body, prior, c, self.layout, self.latent)
        points = None
        if self.regressor is not None:
            from ..regressor.slots import regressor_slots

            points = regressor_slots(self.regressor, body)
        self.starts = Starts(self.objective, self.regressor, None if points is None else points.to(self.device),
                             start_pose if c.start_pose == "shared" else None, self.device)

    def body_pose_of(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 63) axis-angle body pose of a parameter block x (B, D)."""
        return self.objective.body_pose_of(x)

    def start(self, inputs: Sequence[FitInput], batch: Batch, orient=FACING_CAMERA,
              start: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, D) the start: the regressor's estimate (``init='regressor'`` or 'regressor+lift'), the lift of
        the world landmarks where people have them (``init='lift'``), or the mean pose with a similar-triangles
        translation, facing ``orient``. ``start``: the start already computed for the other facing (it is
        turned, not re-run)."""
        if self.config.learned_start:
            if start is None:
                with torch.no_grad():
                    start = self.starts.from_regressor(batch, self.config.unseen_joints_from_prior)
                if self.config.init == "lift":
                    start = self.starts.from_lift(inputs, batch, start, self.config)
            return turned(start, self.layout["global_orient"]) if orient == TURNED_AROUND else start
        return self.starts.from_mean(inputs, batch, orient)

    def _bad(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return ~torch.isfinite(x).all(-1) | ~torch.isfinite(f) | (x[:, self.layout["transl"]][:, 2] < 0.05)

    def fit(self, inputs: Sequence[FitInput]) -> List[FitResult]:
        """Fit every input in one batched optimisation; people with and without world landmarks (where the
        world-landmark term is on) in one batch each, as they run different schedules."""
        if not inputs:
            return []
        world = [self.config.world_weight > 0 and i.world is not None for i in inputs]
        if any(world) and not all(world):
            out: List[Optional[FitResult]] = [None] * len(inputs)
            for group in (True, False):
                rows = [b for b, w in enumerate(world) if w == group]
                for b, r in zip(rows, self._fit([inputs[b] for b in rows], group)):
                    out[b] = r
            return out
        return self._fit(inputs, any(world))

    def _fit(self, inputs: Sequence[FitInput], world: bool) -> List[FitResult]:
        """:meth:`fit` of one group: ``world``: everybody has world landmarks and the term is on."""
        t0 = time.perf_counter()
        c, sl = self.config, self.layout
        torch.manual_seed(c.seed)
        B = len(inputs)
        batch = make_batch(inputs, c.min_confidence, self.device, bones=world)
        x0 = self.start(inputs, batch, FACING_CAMERA)
        batch.transl0 = x0[:, sl["transl"]].clone()
        stages = list(c.schedule(world))
        flipped = torch.zeros(B, dtype=torch.bool, device=self.device)
        # the candidate starts and whether each is turned around: the start, under the flip test turned too,
        # and for 'regressor+lift' the lift's (not turned: its facing is the landmarks' own 3D)
        starts, turned_ = [x0], [False]
        if c.flip_test:
            starts.append(self.start(inputs, batch, TURNED_AROUND, start=x0))
            turned_.append(True)
        if c.init == "regressor+lift" and any(i.world is not None for i in inputs):
            starts.append(self.starts.from_lift(inputs, batch, x0, c))
            turned_.append(False)
        if len(starts) > 1:  # every candidate through the camera stage and the first pose stage; the best goes on
            n_flip = max(1, min(c.flip_stages, len(stages)))
            choice = flip_test(self.objective, starts, turned_, batch, self.optimizer, stages[:n_flip],
                               self.analytic_gradients, c.decided_ratio(self.optimizer))
            x0, flipped, batch.transl0 = choice.x0, choice.flipped, choice.transl0
            first = choice.run
            rest = run_stages(self.objective, first.x, batch, self.optimizer, stages[n_flip:],
                              self.analytic_gradients, first.memory)
            x, iters, conv, failed = rest.x, first.iterations + rest.iterations, rest.converged, first.failed | rest.failed
            stage_f = torch.cat([first.stage_losses, rest.stage_losses], 1)
            curve, lengths = torch.cat([first.curve, rest.curve], 1), first.lengths + rest.lengths
        else:
            run = run_stages(self.objective, x0, batch, self.optimizer, stages, self.analytic_gradients)
            x, iters, conv, failed, stage_f, curve, lengths = (run.x, run.iterations, run.converged, run.failed,
                                                               run.stage_losses, run.curve, run.lengths)
        curves, stage_lengths = list(curve.cpu()), [lengths] * B
        restarted = self._bad(x, stage_f[:, -1]) | failed
        if restarted.any():  # restart bad rows from the start with the other optimiser
            rows = restarted.nonzero().squeeze(1)
            other = {"lbfgs": "adam", "adam": "lbfgs", "lm": "lbfgs"}[self.optimizer]
            again = run_stages(self.objective, x0[rows], batch.rows(rows), other, stages, self.analytic_gradients)
            x[rows], iters[rows], conv[rows], failed[rows] = again.x, iters[rows] + again.iterations, again.converged, again.failed
            stage_f[rows] = again.stage_losses
            for j, r in enumerate(rows.tolist()):
                curves[r], stage_lengths[r] = again.curve[j].cpu(), again.lengths
        conv = conv | settled(curves, [ln[-1] if ln else 0 for ln in stage_lengths], c.settle_window, c.settle_tol,
                              self.device)
        bad = self._bad(x, stage_f[:, -1])
        x = torch.where(bad[:, None], x0, x)  # never return NaN: flagged rows keep their start
        with torch.no_grad():
            terms, proj = self.objective.terms(x, batch, False)
            terms["total"] = self.objective.total(terms, stages[-1])
            pose63 = self.body_pose_of(x)
        elapsed = time.perf_counter() - t0
        poses = np.concatenate([pose63.detach().cpu().numpy(), np.zeros((B, 6))], 1).astype(np.float32)
        return build_results(
            inputs, x.detach().cpu().numpy().astype(np.float32), poses, sl,
            focals=(batch.focal * torch.exp(x[:, sl["focal"]])).tolist(),
            err_all=(proj - batch.xy).norm(dim=-1).tolist(), vis_all=(batch.w > 0).tolist(),
            terms={k: v.tolist() for k, v in terms.items()}, stage_losses=stage_f.tolist(), iterations=iters.tolist(),
            bad=bad.tolist(), restarted=restarted.tolist(), converged=conv.tolist(), flipped=flipped.tolist(),
            curves=curves, stage_lengths=stage_lengths, elapsed=elapsed, optimize_focal=c.optimize_focal,
            prior=c.prior, body_model=self.body.name, optimizer=self.optimizer)
