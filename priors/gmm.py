"""Gaussian-mixture pose prior (SMPLify's kind), fitted with scikit-learn.

Saved as a plain ``.npz`` (means, covariances, weights, metadata JSON); SMPLify's own
``gmm_08.pkl`` is read through the restricted unpickler. That file is 69-D (SMPL joints
1-23, hands included); a 69-D mixture is reduced to our 63 body dimensions by taking each
component's marginal (the first 63 mean entries and the 63x63 covariance block), which is
exact for a Gaussian. The negative log-likelihood is
batched torch: ``nll(pose, mode='logsumexp')`` is exact; ``mode='max'`` is SMPLify's
max-component form, min_k [−log w_k + ½ log det Σ_k + ½ (x−μ_k)ᵀ Σ_k⁻¹ (x−μ_k)].
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch


D_BODY = 63  # SMPL body joints 1..21
D_SMPLIFY = 69  # SMPLify's gmm_08.pkl: joints 1..23


def min_samples(components: int) -> int:
    """Fewest poses :meth:`GMMPrior.fit` accepts: two per component (and at least 10)."""
    return max(10, 2 * components)


class GMMPrior:
    name = "gmm"
    supports_latent = False

    def __init__(self, means: np.ndarray, covars: np.ndarray, weights: np.ndarray, meta: dict | None = None,
                 mode: str = "max"):
        means, covars, weights = np.asarray(means), np.asarray(covars), np.asarray(weights)
        meta = dict(meta or {})
        if means.ndim != 2 or covars.shape != (len(means), means.shape[1], means.shape[1]) or \
                weights.shape != (len(means),):
            raise ValueError(f"GMM arrays do not fit together: means {means.shape}, covariances {covars.shape}, "
                             f"weights {weights.shape} (expected (K, D), (K, D, D), (K,))")
        if means.shape[1] == D_SMPLIFY:  # marginal over body joints 1..21: drop the two hand joints
            means, covars = means[:, :D_BODY], covars[:, :D_BODY, :D_BODY]
            meta.setdefault("reduced", "69-D (joints 1-23) -> 63-D marginal over joints 1-21")
        elif means.shape[1] != D_BODY:
            raise ValueError(f"GMM has {means.shape[1]} dimensions; expected 63 (joints 1-21) or 69 (SMPLify)")
        self.means = torch.as_tensor(means, dtype=torch.float32)  # (K, D)
        cov = torch.as_tensor(covars, dtype=torch.float64)
        L = torch.linalg.cholesky(cov)
        P = torch.linalg.inv(L).transpose(1, 2)
        # a prior weight w (meta 'weight', chosen by leave-one-group-out evaluation) scales the whole nll:
        # f = w·(−log w_k − log N(x; μ_k, Σ_k)); the precision factors carry √w, the constants w
        self.weight = w = float(meta.get("weight", 1.0))
        self._covars = cov  # unscaled, for sampling and saving
        self.prec_chol = (P * math.sqrt(w)).float()  # (K, D, D): wΣ⁻¹ = P Pᵀ
        self.half_precisions = (0.5 * w * P @ P.transpose(1, 2)).float()  # (K, D, D): ½wΣ⁻¹, the max form's Gauss-Newton H
        self.log_det = (2 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(-1)).float()
        self.log_w = torch.log(torch.as_tensor(weights, dtype=torch.float32))
        self.meta = meta
        self.mode = mode
        D = self.means.shape[1]
        self.const = 0.5 * D * math.log(2 * math.pi)
        self.nll_offset = w * (0.5 * self.log_det + self.const - self.log_w)  # (K,): the nll's constant per component
        K = len(self.means)
        # for best_component: every ½Σ_k⁻¹ side by side, [i, (k, j)] = ½Σ_k⁻¹[i, j], and ½Σ_k⁻¹ μ_k (K, D)
        self.half_precisions_side = self.half_precisions.permute(1, 0, 2).reshape(D, K * D).contiguous()
        self.half_precision_means = (self.half_precisions @ self.means[:, :, None])[..., 0]
        self._weights = np.asarray(weights)

    def component_nll(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, K): −log w_k − log N(x; μ_k, Σ_k)."""
        diff = pose[:, None, :] - self.means[None]  # (B, K, D)
        m = (diff.transpose(0, 1) @ self.prec_chol).pow(2).sum(-1).transpose(0, 1)  # ‖(x−μ_k)ᵀP_k‖², (B, K)
        return torch.add(self.nll_offset, m, alpha=0.5)

    def best_component(self, pose: torch.Tensor) -> tuple:
        """SMPLify's max form and its half gradient: (B, D) -> f (B,) the best component's nll, g (B, D) =
        ½Σ_k⁻¹(x − μ_k) for that k, and k (B,). Every component's ½Σ_k⁻¹(x − μ_k) comes from one matrix
        product with the precisions side by side, and f_k = c_k + (x − μ_k)ᵀ½Σ_k⁻¹(x − μ_k) from it."""
        B, D = pose.shape
        Hd = (pose @ self.half_precisions_side).view(B, -1, D) - self.half_precision_means  # (B, K, D)
        comp = self.nll_offset + ((pose[:, None] - self.means) * Hd).sum(-1)  # (B, K)
        f, k = comp.min(1)
        return f, torch.gather(Hd, 1, k[:, None, None].expand(B, 1, D))[:, 0], k

    def nll(self, pose: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """Negative log-likelihood of (B, 63) poses -> (B,)."""
        c = self.component_nll(pose[:, :63])
        if (mode or self.mode) == "max":
            return c.min(-1).values
        return -self.weight * torch.logsumexp(-c / self.weight, -1)

    def mean_pose(self) -> torch.Tensor:
        """Weighted mean of the component means (63,)."""
        return (torch.as_tensor(self._weights, dtype=torch.float32, device=self.means.device)[:, None] * self.means).sum(0)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        k = rng.choice(len(self._weights), n, p=self._weights / self._weights.sum())
        cov = self._covars.numpy()
        return np.stack([rng.multivariate_normal(self.means[i].numpy(), cov[i], method="cholesky") for i in k]).astype(np.float32)

    # ---- files ----------------------------------------------------------------------
    @classmethod
    def fit(cls, poses: np.ndarray, components: int = 8, seed: int = 0, meta: dict | None = None,
            progress: bool = True, reg_covar: float = 1e-4) -> "GMMPrior":
        """Fit on (N, 63) poses. A progress bar shows each EM initialisation's iterations."""
        poses = np.asarray(poses)
        if poses.ndim != 2 or poses.shape[1] != D_BODY:
            raise ValueError(f"GMM training needs (N, 63) body poses, got shape {poses.shape}")
        if components < 1:
            raise ValueError(f"a GMM needs at least 1 component, got {components}")
        if len(poses) < min_samples(components):
            raise ValueError(f"too little data for a {components}-component GMM: {len(poses)} poses, need at least "
                             f"{min_samples(components)} (use more data or fewer --components)")
        gm = _progress_mixture(components, progress, covariance_type="full", reg_covar=reg_covar, max_iter=300,
                               n_init=1, random_state=seed)
        try:
            gm.fit(poses)
        finally:
            gm.close_bar()
        meta = dict(meta or {}, components=components, reg_covar=reg_covar, samples=int(len(poses)), converged=bool(gm.converged_),
                    joints="SMPL body joints 1-21 (63 axis-angle numbers)", date=time.strftime("%Y-%m-%d"),
                    train_mean_loglik=float(gm.score(poses)))
        return cls(gm.means_, gm.covariances_, gm.weights_, meta)

    def save(self, path) -> Path:
        path = Path(path)
        from smplify.fileio import atomic_savez

        cov = self._covars.numpy()
        # a half-written file never replaces a good one
        atomic_savez(path, means=self.means.numpy(), covars=cov, weights=self._weights,
                     meta_json=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path) -> "GMMPrior":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: GMM prior file not found")
        if path.suffix == ".pkl":  # SMPLify's gmm_08.pkl (means, covars, weights), never executed
            from smplify.body.safe_pickle import safe_load_pickle

            try:
                d = safe_load_pickle(path)
                return cls(np.asarray(d["means"]), np.asarray(d["covars"]), np.asarray(d["weights"]),
                           {"source": str(path), "kind": "SMPLify gmm_08"})
            except KeyError as exc:
                raise ValueError(f"{path}: not a GMM pickle (missing {exc})") from None
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
        try:
            with np.load(path, allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise ValueError("a single array, not an npz")
                meta = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
                return cls(z["means"], z["covars"], z["weights"], meta)
        except KeyError as exc:
            raise ValueError(f"{path}: not a GMM prior (no {exc} array)") from None
        except (ValueError, OSError, EOFError) as exc:
            reason = " ".join(str(exc).split())
            if "pickled" in reason:  # numpy's word for anything that is not an npy/npz
                reason = "not an .npz file"
            raise ValueError(f"{path}: not a GMM prior file (an .npz with means, covars and weights, or SMPLify's "
                             f"gmm_08.pkl): {reason}") from None


def _progress_mixture(components: int, progress: bool, **kw):
    """A scikit-learn GaussianMixture whose EM iterations drive a tqdm bar (same numbers as the
    plain class: only the verbose hooks are overridden)."""
    from sklearn.mixture import GaussianMixture
    from tqdm import tqdm

    class _GM(GaussianMixture):
        def _print_verbose_msg_init_beg(self, n_init):
            self._bar.reset(total=self.max_iter)
            self._bar.set_postfix_str("", refresh=False)
            self._bar.set_description(f"train-prior gmm, init {n_init + 1}/{self.n_init}")

        def _print_verbose_msg_iter_end(self, n_iter, diff_ll):
            self._bar.update(1)
            self._bar.set_postfix(change=f"{diff_ll:.2e}", refresh=False)

        def _print_verbose_msg_init_end(self, lb, init_has_converged=None):
            self._bar.set_postfix(lower_bound=f"{lb:.2f}", converged=bool(init_has_converged))
            self._bar.refresh()

        def close_bar(self):
            self._bar.close()

    gm = _GM(components, **kw)
    gm._bar = tqdm(total=kw.get("max_iter", 100), unit="iter", disable=not progress, leave=True)
    return gm
