"""`smplify doctor`: what is installed, what is found, what is missing and where to get it."""
from __future__ import annotations

import importlib.util
import json
import os
import platform
from pathlib import Path

from .body.model_file import MODEL_ENV, DEFAULT_MODEL_PATH, ModelFileError, load_model_file
from .body.names import NUM_JOINTS

LICENSED = {
    "SMPL / SMPL-H / SMPL-X model files": "register at https://smpl.is.tue.mpg.de (SMPL), https://mano.is.tue.mpg.de "
    "(SMPL-H) or https://smpl-x.is.tue.mpg.de (SMPL-X); then pass --model PATH or set " + MODEL_ENV,
    "SMPLify gmm_08.pkl": "from the SMPLify download at https://smplify.is.tue.mpg.de; pass --prior-file PATH",
    "VPoser weights": "from https://smpl-x.is.tue.mpg.de (VPoser v2); not loadable by smplify yet — "
    "use `smplify train-prior vae` on AMASS instead",
}

PRIOR_FILES = {
    "gmm": Path(__file__).resolve().parent.parent / "priors" / "assets" / "gmm_open.npz",
    "vae": Path(__file__).resolve().parent.parent / "priors" / "assets" / "vae_open.pt",
}


def _detector_weights() -> dict:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return {"found": False, "reason": "mediapipe is not installed (pip install mediapipe==0.10.21)"}
    root = Path(list(spec.submodule_search_locations)[0])
    files = [root / "modules" / "pose_landmark" / "pose_landmark_full.tflite",
             root / "modules" / "pose_detection" / "pose_detection.tflite"]
    try:
        from importlib.metadata import version

        ver = version("mediapipe")
    except Exception:  # pragma: no cover
        ver = "unknown"
    return {"found": all(f.exists() for f in files), "version": ver, "files": [str(f) for f in files],
            "missing": [str(f) for f in files if not f.exists()]}


def collect(model=None) -> dict:
    """Everything `doctor` reports, as one JSON-able dict."""
    report: dict = {"python": platform.python_version()}
    try:
        import torch

        report["torch"] = torch.__version__
    except ImportError:
        report["torch"] = None
    try:
        data = load_model_file(model)
        report["body_model"] = {
            "name": data.name, "path": data.path, "vertices": data.num_vertices, "joints": NUM_JOINTS,
            "betas": data.num_betas, "landmarks": list(data.landmark_names),
            "source": data.meta.get("source", ""), "license": data.meta.get("license", ""),
        }
    except (ModelFileError, Exception) as exc:  # doctor reports, never crashes
        report["body_model"] = {"name": None, "path": str(model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL_PATH),
                                "error": str(exc)}
    report["user_model_env"] = {MODEL_ENV: os.environ.get(MODEL_ENV)}
    report["detector"] = _detector_weights()
    report["priors"] = {k: {"path": str(p), "found": p.exists()} for k, p in PRIOR_FILES.items()}
    report["licensed_files"] = {k: v for k, v in LICENSED.items()}
    return report


def run(args) -> int:
    report = collect(getattr(args, "model", None))
    bm = report["body_model"]
    healthy = bool(bm.get("name")) and report["detector"]["found"]
    if args.json:  # the same exit status as the plain report: 1 when something is missing or refused
        print(json.dumps(report, indent=2))
        return 0 if healthy else 1
    ok = lambda b: "ok     " if b else "MISSING"
    print(f"python {report['python']}, torch {report['torch']}")
    if bm.get("name"):
        print(f"[ok     ] body model  {bm['name']}: {bm['vertices']} vertices, {bm['joints']} joints, "
              f"{bm['betas']} betas, {len(bm['landmarks'])} landmarks\n            {bm['path']}")
    else:
        err = bm["error"]
        print(f"[MISSING] body model  " + (err if err.startswith(bm["path"]) else f"{bm['path']}: {err}"))
    det = report["detector"]
    print(f"[{ok(det['found'])}] detector    mediapipe {det.get('version', '-')} pose_landmark_full "
          f"(model_complexity=1)" + ("" if det["found"] else f": {det.get('reason') or det.get('missing')}"))
    for name, p in report["priors"].items():
        print(f"[{ok(p['found'])}] prior       {name}: {p['path']}")
    print("licensed files (optional; nobody needs them to get started):")
    for name, where in report["licensed_files"].items():
        print(f"  - {name}: {where}")
    return 0 if healthy else 1


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="show what is found and what is missing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--model", help="body model file or folder to check (default: $%s or the open model)" % MODEL_ENV)
    p.set_defaults(func=run)
