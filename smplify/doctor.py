"""What is installed, what is found, what is missing and where to get it (`smplify doctor`)."""
from __future__ import annotations

import importlib.util
import os
import platform
from pathlib import Path

from .body.model_file import MODEL_ENV, DEFAULT_MODEL_PATH, ModelFileError, load_model_file
from .body.names import NUM_JOINTS
from .paths import GMM_PRIOR, VAE_PRIOR

LICENSED = {
    "SMPL / SMPL-H / SMPL-X model files": "register at https://smpl.is.tue.mpg.de (SMPL), https://mano.is.tue.mpg.de "
    "(SMPL-H) or https://smpl-x.is.tue.mpg.de (SMPL-X); then pass --model PATH or set " + MODEL_ENV,
    "SMPLify gmm_08.pkl": "from the SMPLify download at https://smplify.is.tue.mpg.de; pass --prior-file PATH",
    "VPoser weights": "from https://smpl-x.is.tue.mpg.de (VPoser v2); not loadable by smplify yet — "
    "use `smplify train-prior vae` on AMASS instead",
}

PRIOR_FILES = {"gmm": GMM_PRIOR, "vae": VAE_PRIOR}


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
