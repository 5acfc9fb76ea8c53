"""`python -m smplify.cli.build_pose_data`: the open pose set from all the open mocap (inverse kinematics)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..paths import OPEN_POSES, ROOT


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m smplify.cli.build_pose_data",
                                 description="all open mocap -> SMPL body poses (IK), with source and activity group")
    ap.add_argument("--mocap", default=str(ROOT.parent / "shared" / "data" / "mocap"))
    ap.add_argument("--out", default=str(OPEN_POSES))
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--max-frame-error-cm", type=float, default=3.0,
                    help="drop frames whose mean IK error over the mapped joints is above this")
    ap.add_argument("--only", nargs="*", help="only these sequence names or groups (for tests)")
    ap.add_argument("--salsa-arm-offsets", action="store_true",
                    help="IK the salsa files' arms with per-sequence offsets and still collars (their shoulders sit "
                         "11 cm from the midline, SMPL's 18 cm); measured in docs/priors.md, not the default")
    a = ap.parse_args(argv)
    if not Path(a.mocap).is_dir():
        print(f"error: {a.mocap}: mocap folder not found", file=sys.stderr)
        return 2
    from priors.build_pose_data import MAX_MEAN_ERROR_CM, build

    rep = build(a.mocap, a.out, a.fps, a.iterations, a.max_frame_error_cm, a.only, salsa_arm_offsets=a.salsa_arm_offsets)
    print(json.dumps(rep["sources"], indent=1))
    bad = [n for n, r in rep["sequences"].items() if r["ik_mean_error_cm"] > MAX_MEAN_ERROR_CM]
    if bad:
        print(f"error: IK error above {MAX_MEAN_ERROR_CM} cm in {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
