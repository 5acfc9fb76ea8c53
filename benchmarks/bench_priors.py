"""Prior evidence: ROC AUC on held-out poses and a picture of samples from each prior.

    python -m benchmarks.bench_priors   (writes benchmarks/results/priors.{json,md}, docs/img/prior_samples.png)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from priors import get_pose_prior
from priors.evaluate import prior_auc
from priors.posedata import open_poses
from smplify.paths import DOCS

from .common import markdown_table, peak_rss_mb, save

IMG = DOCS / "img" / "prior_samples.png"


def _spread(poses: np.ndarray, n: int) -> np.ndarray:
    """n poses evenly spread over a sequence."""
    return poses[np.linspace(0, len(poses) - 1, n).astype(int)]


def sample_grid(path: Path, n: int = 6) -> None:
    from smplify import api
    from smplify.outputs.render import render_mesh

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    body = api.load_body()
    faces = body.faces.numpy()
    rows = {"GMM": get_pose_prior("gmm").sample(n, seed=1), "VAE": get_pose_prior("vae").sample(n, seed=1),
            "held-out mocap (truth)": _spread(open_poses("heldout"), n)}
    size = (240, 300)
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.6, len(rows) * 2.1))
    for i, (name, poses) in enumerate(rows.items()):
        for j, pose in enumerate(poses):
            with torch.no_grad():
                v = body.mesh(torch.tensor([[np.pi, 0.0, 0.0]]), torch.tensor(pose[None], dtype=torch.float32),
                              torch.zeros(1, 10), torch.tensor([[0.0, 0.0, 3.2]])).vertices[0].numpy()
            rgb, mask, _ = render_mesh(v, faces, (300.0, 300.0), (120.0, 150.0), size)
            img = np.ones_like(rgb)
            img[mask] = rgb[mask]
            axes[i, j].imshow(img)
            axes[i, j].axis("off")
        axes[i, 0].set_title(name, loc="left", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    real = open_poses("heldout")
    rows, payload = [], {}
    for name in ("gmm", "vae", "bend", "none"):
        r = prior_auc(get_pose_prior(name), real)
        payload[name] = r
        rows.append([name, f"{r['auc_vs_noise_0.3rad']:.4f}", f"{r['auc_vs_noise_0.3rad_per_joint']:.4f}",
                     f"{r['auc_vs_uniform_in_limits']:.4f}"])
    sample_grid(IMG)
    payload["peak_rss_mb"] = peak_rss_mb()
    table = markdown_table(["prior", "AUC vs N(0, 0.3 rad) per axis-angle component",
                            "AUC vs 0.3 rad per joint (angle ~ abs N(0, 0.3), random axis)",
                            "AUC vs uniform in limits"], rows)
    table += (f"\n\n{len(real)} held-out poses (holosoma_climb_4). Per-component noise turns each joint by "
              f"~0.48 rad on average; per-joint noise by ~0.24 rad. Samples: docs/img/prior_samples.png.")
    save("priors", payload, table)
    print(table)


if __name__ == "__main__":
    main()
