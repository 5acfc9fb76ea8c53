"""`smplify crossval` (also `python -m smplify.cli.crossval`): leave-one-group-out evaluation of pose priors
(:mod:`priors.crossval`): each activity group held out in turn, priors and weights chosen on the rest."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    ap = sub.add_parser("crossval", help="pose priors on activity groups they never saw (leave one group out)")
    ap.add_argument("--out", required=True, help="folder for crossval.csv, summary.md, summary.json")
    ap.add_argument("--poses", help="pose set with per-pose groups (default: the shipped open_poses.npz)")
    ap.add_argument("--priors", help="comma-separated (default: priors.crossval.DEFAULT_PRIORS)")
    ap.add_argument("--scales", help="weight scales tried for every prior but none (default: priors.crossval.DEFAULT_SCALES)")
    ap.add_argument("--groups", help="comma-separated groups to hold out (default: all)")
    ap.add_argument("--n", type=int, default=12, help="bodies per group (each at every noise × dropout level)")
    ap.add_argument("--noise", default="0,8")
    ap.add_argument("--dropout", default="0,0.3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", help="folder for the fold priors (default OUT/cache; not for committing)")
    ap.add_argument("--start", default="mean", choices=["mean", "regressor"],
                    help="mean: every fit from the fold's mean pose; regressor: from a regressor trained on the fold")
    ap.add_argument("--regressor-steps", type=int, default=1500)
    ap.add_argument("--pck", metavar="WHEEL",
                    help="also train every learned prior with pose-classification-kit's 2D poses (its PyPI wheel, "
                         "pip download --no-deps pose-classification-kit==1.1.5), lifted per fold with the fold's own "
                         "prior; rows PRIOR+pck (priors.pck, docs/priors.md)")
    ap.add_argument("--pck-per-class", type=int, default=200, help="at most this many people per class (0: all)")
    ap.add_argument("--pck-lift-prior", default="gmm+chain", help="the fold prior kind the 2D poses are lifted with")
    ap.add_argument("--pck-lift-scale", type=float, default=3.0, help="its weight scale")
    ap.add_argument("--summary-only", action="store_true", help="only (re)write the summary from the CSV")
    ap.add_argument("--auc", action="store_true",
                    help="instead: each fold prior's ROC AUC on its held-out group (real vs noisy poses) -> auc.json")
    ap.set_defaults(func=run)


def run(a) -> int:
    import torch

    from priors import crossval as cv

    out = Path(a.out)
    a.poses = a.poses or str(cv.OPEN_POSES)
    a.priors = a.priors or cv.DEFAULT_PRIORS
    a.scales = a.scales or cv.DEFAULT_SCALES
    pck = None
    if a.pck:
        if not Path(a.pck).is_file():
            print(f"error: {a.pck}: wheel not found", file=sys.stderr)
            return 2
        pck = cv.ExtraPCK(a.pck, a.pck_per_class or None, a.pck_lift_prior, a.pck_lift_scale)
    if a.auc:
        torch.set_num_threads(1)
        learned = ("gmm", "gmm-sharp", "chain", "vae")
        kinds = [k for k in a.priors.split(",") if all(x in learned or x.startswith("chain:") for x in k.split("+"))]
        cv.fold_auc(out, a.poses, kinds, a.groups.split(",") if a.groups else None,
                 Path(a.cache) if a.cache else None, pck=pck)
        return 0
    try:
        if not a.summary_only:
            torch.set_num_threads(1)
            cv.run(out, a.poses, a.priors.split(","), [float(x) for x in a.scales.split(",")],
                a.groups.split(",") if a.groups else None, a.n, [float(x) for x in a.noise.split(",")],
                [float(x) for x in a.dropout.split(",")], a.seed, Path(a.cache) if a.cache else out / "cache",
                start=a.start, regressor_steps=a.regressor_steps, pck=pck)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    csv_path = out / "crossval.csv"
    if not csv_path.exists():
        print(f"error: {csv_path}: no results", file=sys.stderr)
        return 2
    s = cv.summarise(cv.read_csv(csv_path))
    (out / "summary.json").write_text(json.dumps(s, indent=1))
    (out / "summary.md").write_text(cv.markdown(s))
    print(cv.markdown(s))
    return 0


def main(argv=None) -> int:
    from . import main as smplify_main

    return smplify_main(["crossval", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
