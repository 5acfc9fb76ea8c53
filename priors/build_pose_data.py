"""Convert all the open mocap into SMPL body poses by inverse kinematics and store them (one command).

    python -m smplify.cli.build_pose_data       # ../shared/data/mocap -> priors/assets/open_poses.npz

Every sequence (the three minutes of cmu_01_01/01_03, mocapbank, holosoma climbing, and the 165 CMU
clips of ``mocap/cmu`` in three skeleton layouts) is read at ``--fps`` (10), its unit is estimated from
limb lengths (file units are not trusted), SMPL is fitted to its joint *positions* (:mod:`priors.ik`),
and frames whose IK error exceeds ``--max-frame-error-cm`` are dropped. Each pose keeps its sequence
(source) and activity group, so evaluation can hold out whole groups (:mod:`priors.crossval`).
Poses are stored as float16 (axis-angle; at most 1e-3 rad off) to keep the shipped file small.
Sources, units and licences: shared/data/SOURCES.md, mocap/cmu/SOURCES.md, priors/assets/ATTRIBUTION.md.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from smplify.fileio import atomic_savez
from smplify.paths import PRIOR_ASSETS

from .posedata import HELDOUT, OPEN_POSES

MAX_MEAN_ERROR_CM = 2.0  # a sequence whose mean IK error is above this fails the build's check


def layout_of(name: str) -> str:
    """The skeleton layout (source family) of a sequence name, for the per-source IK report."""
    if name.startswith("holosoma"):
        return "holosoma 53-joint positions"
    if name.startswith("mocapbank"):
        return "mocapbank 19-joint BVH"
    if name in ("cmu_01_01", "cmu_01_03"):
        return "CMU cgspeed 31-joint (assimp)"
    sub = int(name.split("_")[1])
    return {60: "CMU salsa 43-joint", 61: "CMU salsa 43-joint", 131: "CMU 3dsmax 31-joint"}.get(sub, "CMU cgspeed 31-joint")


def build(mocap_root, out=OPEN_POSES, fps: float = 10.0, iterations: int = 400, max_frame_error_cm: float = 3.0,
          only=None, log=print, salsa_arm_offsets: bool = False) -> dict:
    """IK every open sequence at ``fps``; store poses + per-pose sequence and group + a per-sequence report.
    ``salsa_arm_offsets``: the salsa files' arms get per-sequence offsets and still collars
    (:func:`priors.mocap.ik_options`; measured in docs/priors.md, not the default)."""
    from smplify.body import BodyModel, load_model_file

    from .ik import estimate_unit, fit_sequence
    from .mocap import ik_options, load_open_mocap

    body = BodyModel(load_model_file())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seqs = load_open_mocap(mocap_root, fps, cmu_clips=True)
    for w in caught:
        log(f"warning: {w.message}")
    if only:
        seqs = [(s, j) for s, j in seqs if s.name in only or s.group in only]
    groups = sorted({s.group for s, _ in seqs})
    poses, seq_ids, grp_ids, names, report = [], [], [], [], {}
    for k, (seq, jmap) in enumerate(seqs):
        t = time.time()
        unit = estimate_unit(body, seq.positions, seq.joint_names, jmap)
        r = fit_sequence(body, seq.positions * unit, seq.joint_names, jmap, iterations=iterations,
                         **(ik_options(jmap) if salsa_arm_offsets else {}))
        keep = np.flatnonzero(r.frame_error_m * 100 <= max_frame_error_cm)
        poses.append(r.body_pose[keep].astype(np.float16))
        seq_ids.append(np.full(len(keep), k, np.int16))
        grp_ids.append(np.full(len(keep), groups.index(seq.group), np.int8))
        names.append(seq.name)
        report[seq.name] = {"frames": int(len(keep)), "frames_ik": int(len(r.body_pose)), "fps": round(seq.fps, 3),
                            "group": seq.group, "layout": layout_of(seq.name), "source": seq.source,
                            "licence": seq.licence, "unit_m": round(unit, 5),
                            "nominal_unit_m": seq.unit, "ik_mean_error_cm": round(r.mean_error_m * 100, 2),
                            "ik_limb_error_cm": round(r.limb_error_m * 100, 2), "heldout": seq.name in HELDOUT,
                            "seconds": round(time.time() - t, 1)}
        log(f"[{k + 1}/{len(seqs)}] {seq.name} ({seq.group}): {len(keep)} of {len(r.body_pose)} frames kept, unit "
            f"{unit:.4f} m, IK error {r.mean_error_m * 100:.2f} cm (limbs {r.limb_error_m * 100:.2f} cm)")
    seq = np.concatenate(seq_ids)
    split = np.where(np.isin(np.array(names)[seq], HELDOUT), "heldout", "train")
    summary = per_source(report)
    out = Path(out)
    atomic_savez(out, compressed=True, poses=np.concatenate(poses), sequence=seq, sequence_names=np.array(names),
                 group=np.concatenate(grp_ids), group_names=np.array(groups), split=split,
                 report_json=np.array(json.dumps(report)), sources_json=np.array(json.dumps(summary)),
                 attribution=np.array((PRIOR_ASSETS / "ATTRIBUTION.md").read_text()))
    return {"sequences": report, "sources": summary}


def per_source(report: dict) -> dict:
    """IK error and pose counts per skeleton layout and per activity group (frame-weighted means)."""
    out = {}
    for key in ("layout", "group"):
        agg = {}
        for r in report.values():
            a = agg.setdefault(r[key], {"sequences": 0, "poses": 0, "_e": 0.0, "_l": 0.0, "_n": 0, "worst_cm": 0.0})
            a["sequences"] += 1
            a["poses"] += r["frames"]
            a["_e"] += r["ik_mean_error_cm"] * r["frames_ik"]
            a["_l"] += r["ik_limb_error_cm"] * r["frames_ik"]
            a["_n"] += r["frames_ik"]
            a["worst_cm"] = max(a["worst_cm"], r["ik_mean_error_cm"])
        for a in agg.values():
            n = max(1, a.pop("_n"))
            a["ik_mean_error_cm"] = round(a.pop("_e") / n, 2)
            a["ik_limb_error_cm"] = round(a.pop("_l") / n, 2)
        out[key] = agg
    return out
