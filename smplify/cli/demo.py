"""`smplify demo`: fit the bundled example photo end to end and say where to look."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..paths import EXAMPLE_PHOTO


def fit_arguments(image, out, prior: str) -> argparse.Namespace:
    """What `smplify fit IMAGE --out OUT --prior PRIOR` would parse: every other option at its default
    (parsed by fit's own parser, so that a new fit option cannot be missing here)."""
    from .fit import add_parser

    parser = argparse.ArgumentParser(prog="smplify")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["fit", str(image), "--out", str(out), "--prior", prior])


def run(args) -> int:
    from .. import doctor
    from .fit import run as run_fit

    report = doctor.collect()
    bm = report["body_model"]
    if not bm.get("name"):
        print(f"error: {bm['error']}")
        return 2
    print(f"body model: {bm['name']} ({bm['vertices']} vertices, {bm['joints']} joints, {bm['betas']} betas)")
    print(f"photo: {args.image}")
    fit_args = fit_arguments(args.image, args.out, args.prior)
    rc = run_fit(fit_args)
    stem = Path(args.image).stem
    out = Path(args.out)
    print("look at:")
    for suffix in ("_overlay.png", ".obj", ".npz", ".json"):
        p = out / f"{stem}{suffix}"
        if p.exists():
            print(f"  {p}")
    return rc


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="fit the bundled example photo and write its outputs")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--image", default=str(EXAMPLE_PHOTO))
    p.add_argument("--prior", default="chain", choices=["none", "gmm", "vae", "chain", "limits", "bend"])
    p.set_defaults(func=run)
