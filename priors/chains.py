"""A pose prior factorised by body part: one Gaussian mixture per limb chain.

The 21 body joints are split into five chains (left/right leg, spine and head, left/right arm);
each chain gets its own mixture over its joints' axis-angle numbers, and the pose's negative
log-likelihood is the sum over chains, each in SMPLify's max-component form:

    f(θ) = Σ_c min_k [−log w_ck + ½ log det Σ_ck + ½ (θ_c − μ_ck)ᵀ Σ_ck⁻¹ (θ_c − μ_ck)] + const.

A pose made of familiar limbs is familiar even when that *combination* never occurred in the
training motion (a dancer's arms on a climber's legs), which is what a held-out activity
needs; a single 63-D mixture only knows whole poses it has seen. Every chain term is a sum of
squares, so the prior has a least-squares form (:meth:`ChainGMMPrior.least_squares`: g = ½∇f,
H = ½∇²f block-diagonal, exact) and the fitter's analytic L-BFGS / Levenberg-Marquardt path
stays fast. Files are plain ``.npz`` (no code runs on load).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

#: chain name -> SMPL joint ids (1..21)
CHAINS: Dict[str, tuple] = {
    "left_leg": (1, 4, 7, 10), "right_leg": (2, 5, 8, 11), "spine_head": (3, 6, 9, 12, 15),
    "left_arm": (13, 16, 18, 20), "right_arm": (14, 17, 19, 21),
}
#: the limb chains plus one mixture over the whole body (chains may overlap: their terms add up), so
#: familiar limbs *and* familiar whole-body coordination both count
CHAINS_WITH_BODY: Dict[str, tuple] = dict(CHAINS, body=tuple(range(1, 22)))


def chain_columns(joints: Sequence[int]) -> list:
    """Columns of the 63-vector holding these SMPL joints' axis-angle numbers."""
    return [3 * (j - 1) + a for j in joints for a in range(3)]


class _Chain:
    """One chain's mixture, with the max form's per-component tables."""

    def __init__(self, cols, means, covars, weights):
        self.cols = torch.tensor(cols, dtype=torch.long)
        self.in_order = list(cols) == list(range(63))  # the whole body, columns 0..62 in order
        self.means = torch.as_tensor(means, dtype=torch.float32)  # (K, d)
        cov = torch.as_tensor(covars, dtype=torch.float64)
        L = torch.linalg.cholesky(cov)
        P = torch.linalg.inv(L).transpose(1, 2)
        self.half_precisions = (0.5 * P @ P.transpose(1, 2)).float()  # (K, d, d)
        log_det = 2 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(-1)
        d = self.means.shape[1]
        self.weights = np.asarray(weights, np.float64)
        self.offset = (0.5 * log_det + 0.5 * d * math.log(2 * math.pi)
                       - torch.log(torch.as_tensor(self.weights))).float()  # (K,)
        self.covars = np.asarray(covars, np.float64)

    def best(self, x: torch.Tensor):
        """x (B, d) -> f (B,), g = ½Σ_k⁻¹(x − μ_k) (B, d), k (B,) for the best component."""
        diff = x[:, None] - self.means  # (B, K, d)
        Hd = torch.einsum("kde,bke->bkd", self.half_precisions, diff)
        comp = self.offset + (diff * Hd).sum(-1)
        f, k = comp.min(1)
        return f, Hd[torch.arange(len(x)), k], k


class ChainGMMPrior:
    """Sum of per-chain Gaussian mixtures (max form). ``nll(pose (B, 63)) -> (B,)``."""

    name = "chain"
    supports_latent = False

    def __init__(self, chains: Dict[str, dict], meta: dict | None = None, weight: float = 1.0):
        self.chains = {n: _Chain(chain_columns(c["joints"]), c["means"], c["covars"], c["weights"])
                       for n, c in chains.items()}
        self.joints = {n: tuple(int(j) for j in c["joints"]) for n, c in chains.items()}
        self.weight = float(weight)
        self.meta = dict(meta or {})
        self._stack_chains()

    def _stack_chains(self):
        """Padded tables so all partial chains (the limbs: 12 or 15 columns) evaluate in one batched op:
        C chains padded to D columns and K components. Padded columns gather a constant 0 (column 63 of
        the pose padded by one zero) against a 0 mean and zero half-precision rows/columns, so they add
        nothing; they scatter into a dummy slot that is dropped. Padded components get offset +inf and
        never win the min. Whole-body chains (63 columns) stay in :attr:`_full` and are evaluated alone.
        The tables are plain tensor attributes, so :func:`smplify.fitting.fitter._on_device` moves them."""
        parts = [ch for ch in self.chains.values() if len(ch.cols) < 63]
        self._full = [ch for ch in self.chains.values() if len(ch.cols) >= 63]
        C = len(parts)
        D = max((len(ch.cols) for ch in parts), default=1)
        K = max((len(ch.offset) for ch in parts), default=1)
        idx = torch.full((C, D), 63, dtype=torch.long)
        means = torch.zeros(C, K, D)
        hp = torch.zeros(C, K, D, D)
        offset = torch.full((C, K), math.inf)
        for c, ch in enumerate(parts):
            d, k = len(ch.cols), len(ch.offset)
            idx[c, :d] = ch.cols
            means[c, :k, :d] = ch.means
            hp[c, :k, :d, :d] = ch.half_precisions
            offset[c, :k] = ch.offset
        self._stack_idx = idx  # (C, D) pose column per padded slot, 63 = the dummy
        self._stack_hidx = (idx[:, :, None] * 64 + idx[:, None, :]).reshape(-1)  # (C*D*D,) into a 64x64 H
        self._stack_means = means  # (C, K, D)
        self._stack_hp = hp  # (C, K, D, D)
        self._stack_offset = offset  # (C, K)
        self._stack_n = C

    def _best_stacked(self, p: torch.Tensor):
        """p (B, 63) -> f (B,) summed over the stacked chains, g (B, C, D), k (B, C) best components."""
        x = torch.cat([p, p.new_zeros(p.shape[0], 1)], 1)[:, self._stack_idx]  # (B, C, D)
        diff = x[:, :, None] - self._stack_means  # (B, C, K, D)
        Hd = torch.einsum("ckde,bcke->bckd", self._stack_hp, diff)
        comp = self._stack_offset + (diff * Hd).sum(-1)  # (B, C, K)
        f, k = comp.min(2)
        g = Hd.gather(2, k[:, :, None, None].expand(-1, -1, 1, Hd.shape[-1]))[:, :, 0]
        return f.sum(1), g, k

    def _parts(self):
        return self.chains.values()

    def nll(self, pose: torch.Tensor) -> torch.Tensor:
        p = pose[:, :63]
        f = self._best_stacked(p)[0] if self._stack_n else p.new_zeros(p.shape[0])
        for ch in self._full:
            f = f + ch.best(p[:, ch.cols])[0]
        return self.weight * f

    def least_squares(self, pose: torch.Tensor, hessian: bool = True):
        """f (B,), g = ½∇f (B, 63), H = ½∇²f (B, 63, 63) block-diagonal (None without ``hessian``)."""
        p = pose[:, :63]
        B = p.shape[0]
        if self._stack_n:
            f, gs, k = self._best_stacked(p)
            g = p.new_zeros(B, 64).index_add_(1, self._stack_idx.reshape(-1), gs.reshape(B, -1))[:, :63]
            if hessian:
                blocks = self._stack_hp[torch.arange(self._stack_n, device=k.device), k]  # (B, C, D, D)
                H = p.new_zeros(B, 64 * 64).index_add_(1, self._stack_hidx, blocks.reshape(B, -1))
                H = H.view(B, 64, 64)[:, :63, :63]
            else:
                H = None
        else:
            f, g = p.new_zeros(B), p.new_zeros(B, 63)
            H = p.new_zeros(B, 63, 63) if hessian else None
        for ch in self._full:  # chains may overlap (a whole-body mixture beside the limb chains): add
            fc, gc, k = ch.best(p[:, ch.cols])
            f = f + fc
            if ch.in_order:
                g = g + gc
                H = H + ch.half_precisions[k] if hessian else None
            else:
                g[:, ch.cols] += gc
                if hessian:
                    H[:, ch.cols[:, None], ch.cols[None, :]] += ch.half_precisions[k]
        g = g.contiguous()
        H = H.contiguous() if hessian else None
        if self.weight != 1.0:
            f, g = f * self.weight, g * self.weight
            H = H * self.weight if hessian else None
        return f, g, H

    def mean_pose(self) -> torch.Tensor:
        """Each chain's weighted mean (the widest chain's where chains overlap)."""
        out = torch.zeros(63)
        for ch in sorted(self._parts(), key=lambda c: -len(c.cols)):
            w = torch.as_tensor(ch.weights / ch.weights.sum(), dtype=torch.float32)
            out[ch.cols] = (w[:, None] * ch.means.cpu()).sum(0)
        return out

    # ---- training and files ------------------------------------------------------------
    @classmethod
    def fit(cls, poses: np.ndarray, components: int = 8, reg_covar: float = 1e-3, seed: int = 0,
            meta: dict | None = None, chains: Dict[str, tuple] = CHAINS,
            body_reg: float | None = None) -> "ChainGMMPrior":
        """One full-covariance mixture per chain on (N, 63) poses (scikit-learn EM). ``body_reg``: also a
        whole-body mixture (chain ``body``, all 21 joints, ``components`` components) with that covariance
        regularisation, whose term adds to the limb chains' (the sum the leave-one-group-out evaluation
        calls gmm+chain)."""
        from sklearn.mixture import GaussianMixture

        poses = np.asarray(poses, np.float64)
        if poses.ndim != 2 or poses.shape[1] != 63:
            raise ValueError(f"chain-GMM training needs (N, 63) body poses, got shape {poses.shape}")
        if len(poses) < max(10, 2 * components):
            raise ValueError(f"too little data for {components}-component chain mixtures: {len(poses)} poses")
        out = {}
        for name, joints in chains.items():
            gm = GaussianMixture(components, covariance_type="full", reg_covar=reg_covar, max_iter=300, n_init=1,
                                 random_state=seed).fit(poses[:, chain_columns(joints)])
            out[name] = {"joints": joints, "means": gm.means_, "covars": gm.covariances_, "weights": gm.weights_}
        if body_reg is not None:
            chains = dict(chains, body=tuple(range(1, 22)))
            gm = GaussianMixture(components, covariance_type="full", reg_covar=body_reg, max_iter=300, n_init=1,
                                 random_state=seed).fit(poses)
            out["body"] = {"joints": chains["body"], "means": gm.means_, "covars": gm.covariances_,
                           "weights": gm.weights_}
        meta = dict(meta or {}, components=components, reg_covar=reg_covar, body_reg_covar=body_reg,
                    samples=int(len(poses)),
                    chains={n: list(j) for n, j in chains.items()}, date=time.strftime("%Y-%m-%d"))
        return cls(out, meta)

    def save(self, path) -> Path:
        from smplify.fileio import atomic_savez

        arrays = {}
        for n, ch in self.chains.items():
            arrays[f"{n}__joints"] = np.array(self.joints[n], np.int16)
            arrays[f"{n}__means"] = ch.means.cpu().numpy().astype(np.float32)
            arrays[f"{n}__covars"] = ch.covars.astype(np.float32)
            arrays[f"{n}__weights"] = ch.weights.astype(np.float32)
        meta = dict(self.meta, kind="chain-gmm", weight=self.weight, chain_names=list(self.chains))
        atomic_savez(Path(path), compressed=True, meta_json=np.array(json.dumps(meta)), **arrays)
        return Path(path)

    @classmethod
    def load(cls, path) -> "ChainGMMPrior":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: chain-GMM prior file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta_json"]))
                chains = {n: {"joints": tuple(int(j) for j in z[f"{n}__joints"]), "means": z[f"{n}__means"],
                              "covars": z[f"{n}__covars"].astype(np.float64), "weights": z[f"{n}__weights"]}
                          for n in meta["chain_names"]}
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{path}: not a chain-GMM prior file ({type(exc).__name__}: {exc})") from None
        return cls(chains, meta, weight=float(meta.get("weight", 1.0)))


class SumPrior:
    """Weighted sum of pose priors (e.g. a learned prior plus the anatomical limits). The mean pose is
    the first part's. Has a least-squares form when every part has one."""

    supports_latent = False

    def __init__(self, parts: Sequence, weights: Sequence[float] | None = None, name: str | None = None):
        self.parts = list(parts)
        self.weights = [1.0] * len(self.parts) if weights is None else [float(w) for w in weights]
        self.name = name or "+".join(getattr(p, "name", "?") for p in self.parts)
        self.meta = {"parts": [getattr(p, "meta", {}) for p in self.parts], "weights": self.weights}

    def nll(self, pose: torch.Tensor) -> torch.Tensor:
        return sum(w * p.nll(pose) for p, w in zip(self.parts, self.weights))

    def least_squares(self, pose: torch.Tensor, hessian: bool = True):
        from smplify.residuals import pose_prior_normal

        f = g = H = None
        for p, w in zip(self.parts, self.weights):
            fp, gp, Hp = pose_prior_normal(p, pose, hessian)
            f = w * fp if f is None else f + w * fp
            if gp is not None:
                g = w * gp if g is None else g + w * gp
            if hessian and Hp is not None:
                Hp = torch.diag_embed(Hp) if Hp.dim() == 2 else Hp
                H = w * Hp if H is None else H + w * Hp
        if g is None:
            g = pose.new_zeros(pose.shape[0], 63)
        if hessian and H is None:
            H = pose.new_zeros(pose.shape[0], 63)
        return f, g, H

    def mean_pose(self) -> torch.Tensor:
        return self.parts[0].mean_pose()

    @property
    def has_least_squares(self) -> bool:
        from smplify.residuals import has_least_squares_form

        return all(has_least_squares_form(p) for p in self.parts)
