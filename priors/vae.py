"""VPoser-style VAE pose prior.

Encoder: MLP, 63 -> 32-D latent (mean, log-variance). Decoder: MLP, latent -> a 6D
rotation per joint (21 × 6) -> Gram-Schmidt rotation matrices -> axis-angle (roma).
Trained with a KL term plus rotation-matrix and joint-position reconstruction (the joints
of the body model at mean shape). The fitter uses it two ways: in latent space
(pose = decode(z), penalty ½|z|²) or as a penalty on a pose (:meth:`VAEPrior.nll`):
½|μ(θ)|² + W·Σ_j d_j/s_j, d_j the chordal distance of joint j's reconstruction from θ's, s_j
its mean over the training poses (a Laplace residual model per joint, ``joint_scale`` in the
state dict; files without it keep the older form ½|μ|² + W·Σ_j d_j²).
Weights are a plain state dict (``torch.load(weights_only=True)``) with JSON metadata
beside it (same name, ``.json``). The JSON records the SHA-256 of the weights file; the
JSON is renamed into place before the weights, so a run killed between the two renames
leaves a pair whose hash disagrees, which :meth:`VAEPrior.load` reports instead of
silently pairing new metadata with old weights (or the reverse).
"""
from __future__ import annotations

import hashlib
import json
import pickle
import os
import time
from pathlib import Path

import numpy as np
import roma
import torch
from torch import nn

NJ = 21
#: the shipped recipe (``smplify train-prior vae`` defaults; the fold VAEs of priors.crossval use it too)
DENOISE, KL_WEIGHT, RECON_WEIGHT = 0.0, 5e-3, 0.3
_EPS = 1e-4  # chordal distance sqrt(|ΔR|² + eps): smooth at zero (a floor of ~0.007 rad)


class VAEFileError(ValueError):
    """A VAE prior file that cannot be used (mismatched metadata, wrong architecture)."""


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _config_from_state(state: dict) -> dict:
    """latent/hidden sizes read off the weights themselves."""
    try:
        return {"latent": int(state["enc.4.weight"].shape[0]) // 2, "hidden": int(state["enc.0.weight"].shape[0])}
    except (KeyError, AttributeError, IndexError) as exc:
        raise VAEFileError(f"not a pose-VAE state dict (missing {exc})") from None


class PoseVAE(nn.Module):
    def __init__(self, latent: int = 32, hidden: int = 512):
        super().__init__()
        self.latent, self.hidden = latent, hidden
        self.enc = nn.Sequential(nn.Linear(NJ * 9, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, NJ * 6))
        self.register_buffer("joint_scale", None)  # (21,) mean training residual per joint, set by VAEPrior.fit

    def residual(self, pose: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 21) squared Frobenius distance of each joint's reconstruction (from z, default μ) from ``pose``."""
        if z is None:
            z = self.encode(pose)[0]
        R = roma.rotvec_to_rotmat(pose[:, : NJ * 3].reshape(-1, NJ, 3))
        return (self.decode_rotmat(z) - R).pow(2).sum((-1, -2))

    def encode(self, pose: torch.Tensor):
        """(B, 63) -> mean, logvar (B, latent). The encoder reads rotation matrices (continuous)."""
        R = roma.rotvec_to_rotmat(pose.reshape(-1, NJ, 3))
        h = self.enc(R.flatten(1))
        return h[:, : self.latent], h[:, self.latent :].clamp(-10, 5)

    def decode_rotmat(self, z: torch.Tensor) -> torch.Tensor:
        return roma.special_gramschmidt(self.dec(z).view(-1, NJ, 3, 2))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent) -> (B, 63) axis-angle."""
        return roma.rotmat_to_rotvec(self.decode_rotmat(z)).flatten(1)


class VAEPrior:
    name = "vae"
    supports_latent = True

    def __init__(self, model: PoseVAE, meta: dict | None = None, recon_weight: float = 10.0):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.latent_dim = model.latent
        self.meta = meta or {}
        self.recon_weight = recon_weight
        # the penalty mode's whole term is scaled by meta 'weight' (chosen by leave-one-group-out evaluation)
        self.weight = float(self.meta.get("weight", 1.0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)

    def encode_mean(self, pose: torch.Tensor) -> torch.Tensor:
        return self.model.encode(pose[:, :63])[0]

    def nll(self, pose: torch.Tensor) -> torch.Tensor:
        """Penalty on a pose (B,): ``weight`` × (½|μ(pose)|² + ``recon_weight`` × its reconstruction error,
        the sum over joints of the chordal distance divided by that joint's mean over the training poses;
        older files without ``joint_scale``: the sum of squared rotation-matrix differences)."""
        mu = self.encode_mean(pose)
        res = self.model.residual(pose[:, :63], mu)
        s = self.model.joint_scale
        rec = res.sum(-1) if s is None else ((res + _EPS).sqrt() / s).sum(-1)
        return self.weight * (0.5 * mu.pow(2).sum(-1) + self.recon_weight * rec)

    def mean_pose(self) -> torch.Tensor:
        return self.decode(torch.zeros(1, self.latent_dim, device=next(self.model.parameters()).device))[0]

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        g = torch.Generator().manual_seed(seed)
        return self.decode(torch.randn(n, self.latent_dim, generator=g)).numpy()

    # ---- training and files -----------------------------------------------------------
    @classmethod
    def fit(cls, poses: np.ndarray, body=None, epochs: int = 60, batch: int = 256, lr: float = 1e-3,
            kl_weight: float = KL_WEIGHT, latent: int = 32, seed: int = 0, progress: bool = True,
            meta: dict | None = None, hidden: int = 512, denoise: float = DENOISE,
            recon_weight: float = RECON_WEIGHT) -> "VAEPrior":
        """Train on (N, 63) ``poses``. ``denoise`` > 0: a denoising VAE, the encoder reads each pose
        plus Gaussian noise on its 63 axis-angle numbers (σ drawn per pose from U[0, denoise]) and the
        decoder is trained to give back the clean pose, so poses off the training manifold
        reconstruct *onto* it and their reconstruction residual (the penalty's second term) grows.
        After training, each joint's mean chordal residual over ``poses`` becomes ``joint_scale``.
        ``recon_weight``: the weight of the scaled residual in :meth:`nll` (stored in the metadata;
        1 would make the penalty the negative log-likelihood of a unit Gaussian latent plus a Laplace
        residual per joint, up to constants; 0.3 ships, chosen by the held-out fits, docs/priors.md)."""
        from tqdm import tqdm

        X = torch.as_tensor(np.asarray(poses), dtype=torch.float32)
        if X.ndim != 2 or X.shape[1] != NJ * 3:
            raise ValueError(f"VAE training needs (N, 63) body poses, got shape {tuple(X.shape)}")
        if len(X) < 2:
            raise ValueError(f"too little data to train a VAE: {len(X)} pose(s), need at least 2")
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        batch = max(1, min(batch, len(X)))  # fewer poses than a batch: one batch of all of them
        torch.manual_seed(seed)
        model = PoseVAE(latent, hidden)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-5)
        steps = epochs * (len(X) // batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
        g = torch.Generator().manual_seed(seed)
        bar = tqdm(total=steps, desc="train-prior vae", unit="step", disable=not progress)
        t0 = time.time()
        last = {}
        for ep in range(epochs):
            perm = torch.randperm(len(X), generator=g)
            for i in range(0, len(X) - batch + 1, batch):
                x = X[perm[i : i + batch]]
                if denoise > 0:
                    sig = torch.rand(len(x), 1, generator=g) * denoise
                    mu, logvar = model.encode(x + sig * torch.randn(x.shape, generator=g))
                else:
                    mu, logvar = model.encode(x)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                Rh = model.decode_rotmat(z)
                R = roma.rotvec_to_rotmat(x.view(-1, NJ, 3))
                rot = (Rh - R).pow(2).sum((-1, -2)).mean()
                kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean()
                loss = rot + kl_weight * kl
                if body is not None:
                    ph = roma.rotmat_to_rotvec(Rh).flatten(1)
                    zb = torch.zeros(len(x), 3)
                    jh = body.joints_and_landmarks(zb, ph).joints
                    with torch.no_grad():
                        jt = body.joints_and_landmarks(zb, x).joints
                    loss = loss + 10.0 * (jh - jt).pow(2).sum(-1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                last = {"loss": float(loss.detach()), "rot": float(rot.detach()), "kl": float(kl.detach())}
                bar.set_postfix(rot=f"{last['rot']:.3f}", kl=f"{last['kl']:.1f}")
        bar.close()
        model.eval()
        with torch.no_grad():  # per-joint residual scale of the training poses themselves
            d = torch.cat([(model.residual(X[i : i + 4096]) + _EPS).sqrt() for i in range(0, len(X), 4096)])
        model.joint_scale = d.mean(0)
        meta = dict(meta or {}, latent=latent, samples=int(len(X)), epochs=epochs, batch=batch, kl_weight=kl_weight,
                    denoise=denoise, recon_weight=recon_weight, penalty="weight * (0.5|mu|^2 + recon_weight * sum_j chord_j / joint_scale_j)",
                    train_time_s=round(time.time() - t0, 1), final=last, date=time.strftime("%Y-%m-%d"),
                    joints="SMPL body joints 1-21 (63 axis-angle numbers)", config={"latent": latent, "hidden": model.hidden})
        return cls(model, meta, recon_weight)

    def save(self, path) -> Path:
        """Write ``path`` (state dict) and ``path.json`` (metadata + the weights' SHA-256).

        Both are written to temporary files first; the JSON is renamed into place, then the
        weights. A crash leaves the old pair, or a pair whose hash disagrees (detected by load).
        """
        path = Path(path)
        meta_path = path.with_suffix(".json")
        tmp_w = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp_m = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
        try:
            torch.save(self.model.state_dict(), tmp_w)
            meta = dict(self.meta, config={"latent": self.model.latent, "hidden": self.model.hidden},
                        weights_file=path.name, weights_sha256=_sha256(tmp_w))
            tmp_m.write_text(json.dumps(meta, indent=2))
            os.replace(tmp_m, meta_path)
            os.replace(tmp_w, path)
            self.meta = meta
        finally:
            for t in (tmp_w, tmp_m):
                if t.exists():
                    t.unlink()
        return path

    @classmethod
    def load(cls, path) -> "VAEPrior":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: VAE prior file not found")
        meta_path = path.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        except ValueError as exc:
            raise VAEFileError(f"{meta_path}: unreadable metadata ({exc})") from None
        want = meta.get("weights_sha256")
        if want and _sha256(path) != want:
            raise VAEFileError(f"{path}: weights do not match their metadata {meta_path.name} (SHA-256 differs: "
                               f"a save was interrupted or one file was replaced); retrain, or restore both files")
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if not (magic.startswith(b"PK") or magic[:1] == b"\x80"):  # torch.save writes a zip (old: a pickle)
            raise VAEFileError(f"{path}: not a torch weights file (expected a .pt written by torch.save).")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights only" not in str(exc).lower():  # not a torch file at all (text, garbage)
                raise VAEFileError(f"{path}: not a torch weights file ({' '.join(str(exc).split())[:120]}).") from None
            # weights_only refused a global: the file would run code
            raise VAEFileError(f"{path}: refused: it holds pickled Python objects (code that would run on loading), "
                               f"not plain tensor weights; smplify loads only state dicts of tensors.") from None
        except Exception as exc:
            first = " ".join(str(exc).split()).split(". ")[0].rstrip(".")[:200]
            raise VAEFileError(f"{path}: cannot read VAE weights ({type(exc).__name__}: {first}).") from None
        if not isinstance(state, dict):
            raise VAEFileError(f"{path}: expected a state dict, got {type(state).__name__}")
        try:
            cfg = _config_from_state(state)
        except VAEFileError as exc:
            raise VAEFileError(f"{path}: {exc}") from None
        said = meta.get("config")
        if said and (said.get("latent"), said.get("hidden")) != (cfg["latent"], cfg["hidden"]):
            raise VAEFileError(f"{path}: weights are latent {cfg['latent']} / hidden {cfg['hidden']} but "
                               f"{meta_path.name} says {said}: the two files do not belong together")
        model = PoseVAE(cfg["latent"], cfg["hidden"])
        scale = state.pop("joint_scale", None)  # older files have none: the older penalty form
        try:
            if scale is not None and tuple(scale.shape) != (NJ,):
                raise RuntimeError(f"joint_scale has shape {tuple(scale.shape)}, expected ({NJ},)")
            model.load_state_dict(state)
            model.joint_scale = None if scale is None else scale.float()
        except RuntimeError as exc:
            raise VAEFileError(f"{path}: weights do not fit the pose-VAE architecture "
                               f"({' '.join(str(exc).split())[:200]})") from None
        return cls(model, meta, float(meta.get("recon_weight", 10.0 if scale is None else 1.0)))
