"""`python -m smplify.cli.build_pose_data`: the open pose set from the open mocap (inverse kinematics)."""
from __future__ import annotations

import argparse
import json

from ..paths import OPEN_POSES, ROOT


def main(argv=None):
    ap = argparse.ArgumentParser(description="open mocap -> SMPL body poses (IK)")
    ap.add_argument("--mocap", default=str(ROOT.parent / "shared" / "data" / "mocap"))
    ap.add_argument("--out", default=str(OPEN_POSES))
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--dedupe-angle", type=float, default=0.0,
                    help="drop frames whose every joint is within this many rad of the last kept frame (0, the "
                         "default: keep all; see docs/priors.md for why the shipped set keeps them)")
    a = ap.parse_args(argv)
    from priors.build_pose_data import build

    rep = build(a.mocap, a.out, a.fps, dedupe_angle=a.dedupe_angle)
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
