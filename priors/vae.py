"""VPoser-style VAE pose prior.

Encoder: MLP, 63 -> 32-D latent (mean, log-variance). Decoder: MLP, latent -> a 6D
rotation per joint (21 × 6) -> Gram-Schmidt rotation matrices -> axis-angle (roma).
Trained with a KL term plus rotation-matrix and joint-position reconstruction (the joints
of the body model at mean shape). The fitter uses it two ways: in latent space
(pose = decode(z), penalty ½|z|²) or as a penalty on a pose (:meth:`VAEPrior.nll`).
Weights are a plain state dict (``torch.load(weights_only=True)``) with JSON metadata.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import roma
import torch
from torch import nn

NJ = 21


class PoseVAE(nn.Module):
    def __init__(self, latent: int = 32, hidden: int = 512):
        super().__init__()
        self.latent, self.hidden = latent, hidden
        self.enc = nn.Sequential(nn.Linear(NJ * 9, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, NJ * 6))

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

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)

    def encode_mean(self, pose: torch.Tensor) -> torch.Tensor:
        return self.model.encode(pose[:, :63])[0]

    def nll(self, pose: torch.Tensor) -> torch.Tensor:
        """Penalty on a pose: ½|μ(pose)|² plus the rotation error of its reconstruction (B,)."""
        mu = self.encode_mean(pose)
        R = roma.rotvec_to_rotmat(pose[:, :63].reshape(-1, NJ, 3))
        rec = (self.model.decode_rotmat(mu) - R).pow(2).sum((-1, -2)).sum(-1)
        return 0.5 * mu.pow(2).sum(-1) + self.recon_weight * rec

    def mean_pose(self) -> torch.Tensor:
        return self.decode(torch.zeros(1, self.latent_dim))[0]

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        g = torch.Generator().manual_seed(seed)
        return self.decode(torch.randn(n, self.latent_dim, generator=g)).numpy()

    # ---- training and files -----------------------------------------------------------
    @classmethod
    def fit(cls, poses: np.ndarray, body=None, epochs: int = 60, batch: int = 256, lr: float = 1e-3,
            kl_weight: float = 5e-3, latent: int = 32, seed: int = 0, progress: bool = True,
            meta: dict | None = None) -> "VAEPrior":
        from tqdm import tqdm

        torch.manual_seed(seed)
        X = torch.as_tensor(poses, dtype=torch.float32)
        model = PoseVAE(latent)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-5)
        steps = epochs * max(1, len(X) // batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
        g = torch.Generator().manual_seed(seed)
        bar = tqdm(total=steps, desc="train-prior vae", unit="step", disable=not progress)
        t0 = time.time()
        last = {}
        for ep in range(epochs):
            perm = torch.randperm(len(X), generator=g)
            for i in range(0, len(X) - batch + 1, batch):
                x = X[perm[i : i + batch]]
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
        meta = dict(meta or {}, latent=latent, samples=int(len(X)), epochs=epochs, kl_weight=kl_weight,
                    train_time_s=round(time.time() - t0, 1), final=last, date=time.strftime("%Y-%m-%d"),
                    joints="SMPL body joints 1-21 (63 axis-angle numbers)", config={"latent": latent, "hidden": model.hidden})
        return cls(model, meta)

    def save(self, path) -> Path:
        path = Path(path)
        from smplify.fileio import atomic_write, atomic_write_text

        atomic_write(path, lambda tmp: torch.save(self.model.state_dict(), tmp))
        atomic_write_text(path.with_suffix(".json"), json.dumps(self.meta, indent=2))
        return path

    @classmethod
    def load(cls, path) -> "VAEPrior":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: VAE prior file not found")
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        cfg = meta.get("config", {"latent": 32, "hidden": 512})
        model = PoseVAE(cfg["latent"], cfg["hidden"])
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(model, meta)
