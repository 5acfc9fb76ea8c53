"""Convert the open mocap into SMPL body poses by inverse kinematics and store them.

    python -m smplify.cli.build_pose_data --mocap ../shared/data/mocap --out priors/assets/open_poses.npz

Sources, units and licences: shared/data/SOURCES.md (and priors/assets/ATTRIBUTION.md).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from smplify.fileio import atomic_savez
from smplify.paths import PRIOR_ASSETS

from .posedata import HELDOUT, OPEN_POSES

UNIT = {"cmu": 0.0254 / 0.45, "mocapbank": 0.01, "holosoma": 1.0}  # CMU ASF: 1 unit = 1/0.45 inch


def build(mocap_root, out=OPEN_POSES, fps: float = 15.0, iterations: int = 400, dedupe_angle: float = 0.0) -> dict:
    """IK every open sequence at ``fps``, then drop near-duplicate frames (every joint within
    ``dedupe_angle`` rad of the last kept frame; 0 keeps all), and store poses + per-sequence report."""
    from smplify.body import BodyModel, load_model_file

    from .ik import fit_sequence
    from .mocap import load_open_mocap, near_duplicate_keep

    body = BodyModel(load_model_file())
    poses, seq_ids, names, report = [], [], [], {}
    for k, (seq, jmap) in enumerate(load_open_mocap(mocap_root, fps)):
        t = time.time()
        unit = UNIT[seq.name.split("_")[0]]
        r = fit_sequence(body, seq.positions * unit, seq.joint_names, jmap, iterations=iterations)
        keep = near_duplicate_keep(r.body_pose, dedupe_angle) if dedupe_angle > 0 else np.arange(len(r.body_pose))
        poses.append(r.body_pose[keep].astype(np.float32))
        seq_ids.append(np.full(len(keep), k, np.int16))
        names.append(seq.name)
        report[seq.name] = {"frames": int(len(keep)), "frames_before_dedupe": int(len(r.body_pose)),
                            "dedupe_angle_rad": dedupe_angle, "fps": fps, "source": seq.source,
                            "licence": seq.licence, "ik_mean_error_cm": round(r.mean_error_m * 100, 2),
                            "ik_limb_error_cm": round(r.limb_error_m * 100, 2), "heldout": seq.name in HELDOUT,
                            "seconds": round(time.time() - t, 1)}
        print(f"{seq.name}: {len(keep)} of {len(r.body_pose)} frames kept, IK error {r.mean_error_m * 100:.2f} cm "
              f"(limbs {r.limb_error_m * 100:.2f} cm)", flush=True)
    seq = np.concatenate(seq_ids)
    split = np.where(np.isin(np.array(names)[seq], HELDOUT), "heldout", "train")
    out = Path(out)
    atomic_savez(out, compressed=True, poses=np.concatenate(poses), sequence=seq, sequence_names=np.array(names),
                        split=split, report_json=np.array(json.dumps(report)),
                        attribution=np.array((PRIOR_ASSETS / "ATTRIBUTION.md").read_text()))
    return report
