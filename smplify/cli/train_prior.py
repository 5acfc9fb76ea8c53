"""`smplify train-prior gmm|vae --data PATH... --out FILE`: train a pose prior.

--data takes our open pose set, AMASS .npz files, plain pose .npz files, or folders of
them (searched recursively); left/right mirrored copies are added. The prior file is
written to a temporary name and renamed, so a failed run never replaces a good prior.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

#: the shipped VAE recipe: equal to priors.vae.DENOISE, KL_WEIGHT, RECON_WEIGHT (tests/test_priors.py checks;
#: not imported here, so that building the parser loads no torch)
VAE_DENOISE, VAE_KL_WEIGHT, VAE_RECON_WEIGHT = 0.0, 5e-3, 0.3


def add_parser(sub) -> None:
    p = sub.add_parser("train-prior", help="train a GMM, chain-GMM or VAE pose prior on pose files")
    p.add_argument("kind", choices=["gmm", "chain", "vae"])
    p.add_argument("--data", nargs="+", required=True, help="pose .npz files or folders (ours, AMASS, plain)")
    p.add_argument("--out", required=True, help="output file (.npz for gmm, .pt for vae)")
    p.add_argument("--components", type=int, default=8, help="GMM components (per chain for chain; default 8)")
    p.add_argument("--reg", type=float, help="covariance regularisation added to each component's diagonal, "
                                            "rad² (default: 1e-4 gmm, 1e-3 chain)")
    p.add_argument("--weight", type=float, default=1.0,
                   help="gmm, chain, vae (its penalty mode): scale of the whole prior, stored in the file (chosen by python -m "
                        "smplify.cli.crossval; see docs/priors.md)")
    p.add_argument("--with-body", type=float, metavar="REG",
                   help="chain: also a whole-body mixture with this covariance regularisation (its term adds up)")
    p.add_argument("--limits-weight", type=float, default=0.0,
                   help="chain: add the anatomical joint limits with this weight (stored in the file)")
    p.add_argument("--epochs", type=int, default=60, help="VAE epochs (default 60)")
    p.add_argument("--hidden", type=int, default=512, help="VAE hidden width (default 512)")
    p.add_argument("--denoise", type=float, default=VAE_DENOISE,
                   help=f"VAE: denoising training, the encoder reads each pose plus Gaussian noise on its 63 numbers "
                        f"(σ drawn per pose from U[0, DENOISE] rad), the decoder gives back the clean pose; 0: a "
                        f"plain VAE (default {VAE_DENOISE:g}, what ships)")
    p.add_argument("--kl-weight", type=float, default=VAE_KL_WEIGHT,
                   help=f"VAE: weight of the KL term (default {VAE_KL_WEIGHT:g}, what ships)")
    p.add_argument("--recon-weight", type=float, default=VAE_RECON_WEIGHT,
                   help=f"VAE: W of the penalty ½|μ|² + W·Σ_j d_j/s_j (d_j: joint j's reconstruction error, s_j: its mean "
                        f"over the training poses), stored in the file (default {VAE_RECON_WEIGHT:g}, what ships)")
    p.add_argument("--no-mirror", action="store_true", help="do not add left/right mirrored copies")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


#: fewest distinct poses (after mirroring) a VAE is trained on: fewer is memorising, not a prior
VAE_MIN_POSES = 100


def _out_problem(out: Path, kind: str):
    """Why ``--out`` cannot take a ``kind`` prior (checked before any training), or None."""
    want = ".npz" if kind in ("gmm", "chain") else ".pt"
    if out.is_dir():
        return f"{out}: is a folder; --out is the prior file to write ({want} for a {kind} prior)"
    if out.suffix.lower() != want:
        return f"--out {out}: a {kind} prior is written as {want}; name it {out.with_suffix(want).name}"
    return None


def _data_problem(poses, kind: str, components: int):
    """Why ``poses`` cannot train a ``kind`` prior (too few distinct poses), or None."""
    import numpy as np

    from priors.gmm import min_samples

    distinct = len(np.unique(np.round(np.asarray(poses, np.float64), 5), axis=0))
    need = min_samples(components) if kind == "gmm" else VAE_MIN_POSES
    if distinct >= need:
        return None
    what = f"a {components}-component GMM" if kind == "gmm" else "a VAE"
    return (f"too little data to train {what}: {len(poses)} poses, {distinct} distinct, need at least {need} "
            f"distinct poses (more data" + (" or fewer --components)" if kind == "gmm" else ")"))


def run(args) -> int:
    from priors.posedata import PoseDataError, collect_with_info

    t0 = time.time()
    out = Path(args.out)
    problem = _out_problem(out, args.kind)  # before the data is read and the prior trained
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        poses, info = collect_with_info(args.data, mirror=not args.no_mirror)
    except PoseDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = _data_problem(poses, args.kind, args.components)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"data": [str(p) for p in args.data], "mirrored": not args.no_mirror, "seed": args.seed,
            "command": "smplify " + " ".join(sys.argv[1:]) if sys.argv and "smplify" in sys.argv[0] else "",
            "files": [{k: f[k] for k in ("file", "kind", "frames") if k in f} for f in info["files"]],
            "sources": info["sources"], "licences": info["licences"]}
    if info["skipped"]:
        meta["skipped"] = info["skipped"]
    print(f"{len(poses)} poses from {len(info['files'])} file(s)"
          + (f" ({len(info['skipped'])} non-motion npz skipped)" if info["skipped"] else ""))
    try:
        if args.kind == "gmm":
            from priors.gmm import GMMPrior

            prior = GMMPrior.fit(poses, args.components, args.seed, dict(meta, weight=args.weight),
                                 reg_covar=args.reg or 1e-4)
            detail = f"{args.components} components, train mean log-likelihood {prior.meta['train_mean_loglik']:.1f}"
        elif args.kind == "chain":
            from priors.chains import ChainGMMPrior

            prior = ChainGMMPrior.fit(poses, args.components, args.reg or 1e-3, args.seed, meta, body_reg=args.with_body)
            prior.weight = args.weight
            prior.meta["limits_weight"] = args.limits_weight
            detail = f"{args.components} components per chain, weight {args.weight:g}, limits {args.limits_weight:g}"
        else:
            from smplify.body import BodyModel, load_model_file

            from priors.vae import VAEPrior

            prior = VAEPrior.fit(poses, BodyModel(load_model_file()), epochs=args.epochs, seed=args.seed,
                                  meta=dict(meta, weight=args.weight),
                                  hidden=args.hidden, denoise=args.denoise, kl_weight=args.kl_weight,
                                  recon_weight=args.recon_weight)
            f = prior.meta["final"]
            detail = f"latent {prior.latent_dim}, weight {args.weight:g}, recon weight {args.recon_weight:g}, final rotation loss {f['rot']:.4f}, KL {f['kl']:.1f}"
    except ValueError as exc:  # too little data, wrong shapes: nothing is written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prior.save(out)
    print(f"trained {args.kind} prior on {len(poses)} poses in {time.time() - t0:.1f} s: {detail}\nwrote {out}")
    return 0

