"""`python -m smplify.cli.crossval`: leave-one-group-out evaluation of pose priors (:mod:`priors.crossval`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    import torch

    from priors import crossval as cv

    ap = argparse.ArgumentParser(prog="python -m smplify.cli.crossval", description=cv.__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for crossval.csv, summary.md, summary.json")
    ap.add_argument("--poses", default=str(cv.OPEN_POSES), help="pose set with per-pose groups (open_poses.npz)")
    ap.add_argument("--priors", default=cv.DEFAULT_PRIORS)
    ap.add_argument("--scales", default=cv.DEFAULT_SCALES, help="weight scales tried for every prior but none")
    ap.add_argument("--groups", help="comma-separated groups to hold out (default: all)")
    ap.add_argument("--n", type=int, default=12, help="bodies per group (each at every noise × dropout level)")
    ap.add_argument("--noise", default="0,8")
    ap.add_argument("--dropout", default="0,0.3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", help="folder for the fold priors (default OUT/cache; not for committing)")
    ap.add_argument("--start", default="mean", choices=["mean", "regressor"],
                    help="mean: every fit from the fold's mean pose; regressor: from a regressor trained on the fold")
    ap.add_argument("--regressor-steps", type=int, default=1500)
    ap.add_argument("--summary-only", action="store_true", help="only (re)write the summary from the CSV")
    ap.add_argument("--auc", action="store_true",
                    help="instead: each fold prior's ROC AUC on its held-out group (real vs noisy poses) -> auc.json")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.auc:
        torch.set_num_threads(1)
        kinds = [k for k in a.priors.split(",") if k in ("gmm", "gmm-sharp", "chain", "vae")]
        cv.fold_auc(out, a.poses, kinds, a.groups.split(",") if a.groups else None,
                 Path(a.cache) if a.cache else None)
        return 0
    try:
        if not a.summary_only:
            torch.set_num_threads(1)
            cv.run(out, a.poses, a.priors.split(","), [float(x) for x in a.scales.split(",")],
                a.groups.split(",") if a.groups else None, a.n, [float(x) for x in a.noise.split(",")],
                [float(x) for x in a.dropout.split(",")], a.seed, Path(a.cache) if a.cache else out / "cache",
                start=a.start, regressor_steps=a.regressor_steps)
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


if __name__ == "__main__":
    sys.exit(main())
