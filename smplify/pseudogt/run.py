"""`smplify pseudo-gt`: a dataset of photos or keypoints in, SMPL pseudo-ground-truth out.

Design
------
* Samples are enumerated lazily and deterministically (sorted paths; COCO annotations in
  file order), each with a stable id. ``--shard K/N`` keeps every N-th sample from K.
* Samples are fitted in fixed chunks of ``--batch`` consecutive samples, so a chunk always
  holds the same samples and fits to the same numbers, however often the run is resumed.
* Each sample is written as ``samples/<id>.npz`` then ``samples/<id>.json`` (the JSON last,
  both by temp-file-and-rename): a sample with its JSON is finished, anything else is not.
  A failed sample gets ``failed/<id>.json`` with the reason. A rerun skips finished and
  failed samples, so a run killed at any moment (even SIGKILL) resumes to the same result.
* Only one chunk is in memory: peak memory does not grow with the dataset.
* At the end, ``consolidate`` stacks every finished sample (sorted by id) into
  ``pseudo_gt.npz``, writes ``quality.csv``, ``accepted.txt``, ``rejected.csv`` (with the
  reason), ``summary.json`` and ``quality_histograms.png``. ``smplify pseudo-gt-merge``
  combines shard folders and consolidates them.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from .api import IMAGE_SUFFIXES
from .cli import one_line
from .fileio import atomic_savez, atomic_write, atomic_write_text

KEYPOINT_SUFFIXES = {".json", ".npz", ".npy"}


@dataclass
class Thresholds:
    max_error: float = 0.05  # mean reprojection error / keypoint-box diagonal
    max_nll: float = 0.0  # GMM negative log-likelihood of the body pose
    min_keypoints: int = 8  # keypoints with confidence >= 0.3
    require_converged: bool = False

    def reasons(self, q: dict) -> List[str]:
        r = []
        if not np.isfinite(q["norm_error"]) or q["norm_error"] > self.max_error:
            r.append(f"reprojection error {q['norm_error']:.3f} of the box > {self.max_error}")
        if q["prior_nll"] > self.max_nll:
            r.append(f"pose prior NLL {q['prior_nll']:.1f} > {self.max_nll}")
        if q["confident_keypoints"] < self.min_keypoints:
            r.append(f"{q['confident_keypoints']} confident keypoints < {self.min_keypoints}")
        if self.require_converged and not q["converged"]:
            r.append("did not converge")
        if q.get("failed"):
            r.append("optimisation diverged")
        return r


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")[:180]


class InputError(ValueError):
    """INPUT itself is unusable (missing, malformed JSON, not COCO): one line, exit status 2."""


def _coco_entry_problem(ann, image_ids) -> Optional[str]:
    """Why a COCO annotation cannot be fitted, for the checks the reader would skip silently."""
    if not isinstance(ann, dict):
        return f"annotation is a {type(ann).__name__}, not an object"
    if ann.get("iscrowd"):
        return "crowd annotation"
    kp = ann.get("keypoints")
    if isinstance(kp, list) and len(kp) == 51 and len(kp[2::3]) == 17:
        try:
            if all(float(v) == 0 for v in kp[2::3]):
                return "no labelled keypoints"
        except (TypeError, ValueError):
            pass  # the reader says which numbers are bad
    if image_ids is not None and ann.get("image_id") not in image_ids:
        return f"image id {ann.get('image_id')} not in images"
    return None


def enumerate_samples(src: Path) -> Iterator[tuple]:
    """(sample id, loader) in a fixed order. loader() -> Keypoints2D (raises on a bad sample).

    INPUT itself is checked before anything is yielded: a missing path, malformed JSON, a JSON
    that is not a COCO annotation file, or any other single file raises :class:`InputError`.
    """
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: not found")
    if src.is_file():
        if src.suffix.lower() != ".json":
            raise InputError(f"{src}: expected a folder of photos or keypoint files, or a COCO annotation file")
        try:
            d = json.loads(src.read_text())
        except UnicodeDecodeError:
            raise InputError(f"{src}: not a text file") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{src}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        except OSError as exc:
            raise InputError(f"{src}: cannot read ({exc.strerror or exc})") from None
        if not isinstance(d, dict):
            raise InputError(f"{src}: a JSON {type(d).__name__}, not a COCO annotation file (an object with an "
                             f"'annotations' list)")
        if not isinstance(d.get("annotations"), list):
            raise InputError(f"{src}: not a COCO annotation file (no 'annotations' list)")
        return _coco_samples(src, d)
    return _folder_samples(src)


def _coco_samples(src: Path, d: dict) -> Iterator[tuple]:
    from .keypoints.readers import iter_coco_people

    ims = d.get("images")
    images = {im["id"]: im for im in ims if isinstance(im, dict) and "id" in im} if isinstance(ims, list) else None
    seen = set()
    for j, ann in enumerate(d["annotations"]):
        has_id = isinstance(ann, dict) and "id" in ann
        aid = ann["id"] if has_id else f"at index {j}"
        # the annotation id; entries without one (or repeating one) by their place in the file
        sid = _safe(f"ann{aid}") if has_id and _safe(f"ann{aid}") not in seen else f"ann_at{j}"
        seen.add(sid)

        def load(ann=ann, aid=aid):
            problem = _coco_entry_problem(ann, None if images is None else set(images))
            if problem:
                raise ValueError(problem)
            # only this person's image: no copy of the whole file per sample
            one = {"images": [images[ann["image_id"]]] if images else [], "annotations": [ann]}
            k = next(iter(iter_coco_people(one, where=f"{src} annotation {aid}")), None)
            if k is None:
                raise ValueError("no person to fit in this annotation")
            return k.validate(f"{src} annotation {aid}")

        yield sid, load


def _folder_samples(src: Path) -> Iterator[tuple]:
    from .keypoints.readers import read_keypoints

    for p in sorted(src.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        rel = str(p.relative_to(src))
        if p.suffix.lower() in IMAGE_SUFFIXES:
            from .keypoints.detect import detect_image

            yield _safe(rel), (lambda p=p: detect_image(p))
        elif p.suffix.lower() in KEYPOINT_SUFFIXES:
            try:
                n = len(read_keypoints(p, validate=False))
            except Exception:
                n = 1  # the loader will report why
            for i in range(n):
                yield _safe(rel + (f"_{i}" if n > 1 else "")), (lambda p=p, i=i: read_keypoints(p)[i])


def _quality(res, fit_input, nll: float) -> dict:
    w = fit_input.confidence >= 0.3
    xy = fit_input.xy[w]
    diag = float(np.linalg.norm(xy.max(0) - xy.min(0))) if len(xy) > 1 else float("nan")
    return {"mean_error_px": res.mean_error_px, "norm_error": res.mean_error_px / diag if diag > 0 else float("inf"),
            "prior_nll": nll, "confident_keypoints": int(w.sum()), "converged": bool(res.converged),
            "flipped": bool(res.flipped), "failed": bool(res.failed), "box_diagonal_px": diag}


def run_pseudo_gt(src, out, prior: str = "gmm", batch: int = 64, shard=(0, 1), thresholds: Thresholds = Thresholds(),
                  config=None, progress: bool = True, max_chunks: Optional[int] = None, model: Optional[str] = None,
                  gender: str = "neutral", focal: Optional[float] = None) -> dict:
    """Fit every (unfinished) sample of the shard; then consolidate. Returns the summary.

    model/gender: the body model (as for ``smplify fit --model/--gender``); focal: the focal length
    in pixels for every sample (default: EXIF, else a 55° field of view). A bad ``src`` raises
    :class:`InputError` before any output is written.
    """
    import torch
    from tqdm import tqdm

    from . import api
    from .outputs.writers import result_arrays, result_report

    src, out = Path(src), Path(out)
    k, n = shard
    samples = [s for i, s in enumerate(enumerate_samples(src)) if i % n == k]  # InputError before any output
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "failed").mkdir(exist_ok=True)
    for stale in list((out / "samples").glob(".*.tmp")) + list((out / "failed").glob(".*.tmp")):
        stale.unlink()  # half-written files of a killed run: never read as finished
    done = lambda sid: (out / "samples" / f"{sid}.json").exists() or (out / "failed" / f"{sid}.json").exists()
    fitter = api.make_fitter(prior, model, config, gender=gender)
    yard = api._prior("gmm", None)
    chunks = [samples[i : i + batch] for i in range(0, len(samples), batch)]
    todo = [c for c in chunks if not all(done(sid) for sid, _ in c)]
    t0 = time.time()
    bar = tqdm(total=sum(len(c) for c in todo), desc="pseudo-gt", unit="sample", disable=not progress)
    for ci, chunk in enumerate(todo):
        if max_chunks is not None and ci >= max_chunks:
            break
        items, ids = [], []
        for sid, load in chunk:
            try:
                kps = load()
                items.append(api.keypoints_to_input(kps, fitter.body, focal=focal, tag=sid))
                ids.append(sid)
            except Exception as exc:  # bad photo / nobody / malformed entry: record and go on
                if not done(sid):
                    atomic_write_text(out / "failed" / f"{sid}.json", json.dumps({"id": sid, "reason": one_line(exc)}))
        if items:
            results = fitter.fit(items)
            with torch.no_grad():
                nll = yard.nll(torch.tensor(np.stack([r.body_pose[:63] for r in results]))).numpy()
            for sid, it, res, nl in zip(ids, items, results, nll):
                if done(sid):
                    continue
                q = _quality(res, it, float(nl))
                arrays = dict(result_arrays(res, fitter.body.data.path), kp_index=it.index, kp_xy=it.xy,
                              kp_confidence=it.confidence, kp_weight=it.weight)
                atomic_savez(out / "samples" / f"{sid}.npz", **arrays)
                rep = dict(result_report(res), id=sid, quality=q)
                atomic_write_text(out / "samples" / f"{sid}.json", json.dumps(rep, default=float))
        bar.update(len(chunk))
    bar.close()
    summary = consolidate(out, thresholds)
    summary["fit_time_s"] = round(time.time() - t0, 2)
    summary["throughput_samples_per_s"] = round(sum(len(c) for c in todo) / max(1e-9, time.time() - t0), 2)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def consolidate(out, thresholds: Thresholds = Thresholds()) -> dict:
    """Stack finished samples (sorted by id) and sort them into accepted and rejected."""
    out = Path(out)
    ids = sorted(p.stem for p in (out / "samples").glob("*.json") if not p.name.startswith("."))
    keys = ("global_orient", "body_pose", "betas", "transl", "focal_length", "principal_point", "image_size")
    stacks = {k: [] for k in keys}
    models = {"body_model": [], "body_model_path": []}
    rows, rejected = [], []
    for sid in ids:
        rep = json.loads((out / "samples" / f"{sid}.json").read_text())
        with np.load(out / "samples" / f"{sid}.npz", allow_pickle=False) as z:
            for k in keys:
                stacks[k].append(z[k].reshape(-1) if k in ("focal_length", "principal_point", "image_size") else z[k][0])
            for k in models:
                models[k].append(str(z[k]) if k in z.files else "")
        q = rep["quality"]
        reasons = thresholds.reasons(q)
        rows.append(dict(id=sid, image=rep.get("image"), accepted=int(not reasons), **q))
        if reasons:
            rejected.append((sid, "; ".join(reasons)))
    failed = sorted((json.loads(p.read_text()) for p in (out / "failed").glob("*.json") if not p.name.startswith(".")),
                    key=lambda d: d["id"])
    arrays = {k: np.stack(v) if v else np.zeros((0,)) for k, v in stacks.items()}
    arrays["ids"] = np.array(ids)
    for k, v in models.items():  # per sample: which body model the parameters belong to
        arrays[k] = np.array(v, dtype=str)
    arrays["accepted"] = np.array([r["accepted"] for r in rows], bool)
    for q in ("norm_error", "prior_nll", "confident_keypoints", "converged", "flipped"):
        arrays[q] = np.array([r[q] for r in rows], float)
    atomic_savez(out / "pseudo_gt.npz", **arrays)

    def write_csv(t):
        with open(t, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["id", "image", "accepted", "mean_error_px", "norm_error", "box_diagonal_px",
                                    "prior_nll", "confident_keypoints", "converged", "flipped", "failed"])
            w.writeheader()
            w.writerows(rows)

    atomic_write(out / "quality.csv", write_csv)
    atomic_write_text(out / "accepted.txt", "".join(f"{r['id']}\n" for r in rows if r["accepted"]))

    def write_rej(t):
        with open(t, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "reason"])
            w.writerows(rejected + [(f["id"], "failed: " + f["reason"]) for f in failed])

    atomic_write(out / "rejected.csv", write_rej)
    summary = {"samples": len(ids) + len(failed), "fitted": len(ids), "accepted": int(arrays["accepted"].sum()),
               "rejected": len(rejected), "failed": len(failed), "thresholds": thresholds.__dict__,
               "body_models": sorted(set(models["body_model_path"])),  # more than one: a resume changed --model
               "failures": failed[:20]}
    _histograms(rows, out / "quality_histograms.png", thresholds)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _histograms(rows, path: Path, th: Thresholds) -> None:
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    for a, key, lim, lab in ((ax[0], "norm_error", th.max_error, "reprojection error / box diagonal"),
                             (ax[1], "prior_nll", th.max_nll, "GMM pose NLL"),
                             (ax[2], "confident_keypoints", th.min_keypoints, "confident keypoints")):
        v = np.array([r[key] for r in rows], float)
        a.hist(v[np.isfinite(v)], bins=30, color="#6d8fbf")
        a.axvline(lim, color="r", ls="--", label="threshold")
        a.set_xlabel(lab)
        a.legend(fontsize=7)
    fig.suptitle(f"{sum(r['accepted'] for r in rows)} accepted of {len(rows)} fitted")
    fig.tight_layout()
    atomic_write(path, lambda t: fig.savefig(t, dpi=100, format="png"))
    plt.close(fig)


def merge(dirs, out, thresholds: Thresholds = Thresholds()) -> dict:
    """Combine shard folders (each sample once) and consolidate.

    Every file is copied to a temporary name and renamed, and a sample's ``.npz`` before its
    ``.json`` (the finished marker), so a merge killed at any moment resumes to the same result.
    """
    out = Path(out)
    for sub in ("samples", "failed"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for stale in (out / sub).glob(".*.tmp"):
            stale.unlink()  # half-copied files of a killed merge

    def copy(f: Path, dest: Path) -> None:
        atomic_write(dest, lambda tmp: shutil.copy2(f, tmp))

    for d in map(Path, dirs):
        for marker in sorted((d / "samples").glob("*.json")):
            if marker.name.startswith("."):
                continue
            dest = out / "samples" / marker.name
            if dest.exists():
                continue  # finished already (from this merge's earlier run or another folder)
            npz = marker.with_suffix(".npz")
            if not npz.exists():
                continue  # not a finished sample
            copy(npz, dest.with_suffix(".npz"))
            copy(marker, dest)
        for f in sorted((d / "failed").glob("*.json")):
            if not f.name.startswith(".") and not (out / "failed" / f.name).exists():
                copy(f, out / "failed" / f.name)
    return consolidate(out, thresholds)


def _regressor_slots(model, body):
    """This body's points -> the regressor's input slots (None when they are the same points).

    The shipped regressor reads the open model's points (24 joints + its landmarks); another body
    model (official SMPL, the tiny test model) is mapped by point name, as the fitter does, and its
    points the regressor never saw are hidden from it (index -1).
    """
    import torch

    if model.num_points == len(body.point_names):
        return None
    from .body.model_file import DEFAULT_MODEL_PATH
    from .body.names import SMPL_JOINT_NAMES

    with np.load(DEFAULT_MODEL_PATH, allow_pickle=False) as z:
        theirs = list(SMPL_JOINT_NAMES) + [str(n) for n in z["landmark_names"]]
    if len(theirs) != model.num_points:
        raise ValueError(f"regressor made for {model.num_points} body points, model {body.name} has "
                         f"{len(body.point_names)}, and the open model's names do not match either")
    slot = {n: i for i, n in enumerate(theirs)}
    return torch.tensor([slot.get(n, -1) for n in body.point_names], dtype=torch.long)


def _to_slots(slots, index, w):
    """(index, weight) on the regressor's slots: unmapped points get weight 0."""
    import torch

    if slots is None:
        return index, w
    index = slots[index]
    return index.clamp(min=0), torch.where(index >= 0, w, torch.zeros_like(w))


def refine_regressor(out, body, steps: int = 200, lr: float = 2e-5, seed: int = 0, weights=None,
                     benchmark_cases: int = 60) -> dict:
    """Fine-tune the regressor on the accepted fits (fits supervise the network); report its
    benchmark error on held-out synthetic cases before and after.

    body: the body model the fits were made with (their parameters belong to it); weights: the
    regressor to start from (default: the shipped one).
    """
    import torch

    from .regressor import load_regressor
    from .regressor.cli import DEFAULT_WEIGHTS
    from .regressor.train import regression_loss, save_regressor

    out = Path(out)
    acc = [l.strip() for l in (out / "accepted.txt").read_text().splitlines() if l.strip()]
    if not acc:
        return {"refined": False, "reason": "no accepted samples"}
    weights = Path(weights or DEFAULT_WEIGHTS)
    model = load_regressor(weights)
    slots = _regressor_slots(model, body)
    before = regressor_benchmark(model, body, n=benchmark_cases, seed=seed)
    data = []
    for sid in acc:
        with np.load(out / "samples" / f"{sid}.npz", allow_pickle=False) as z:
            data.append({k: z[k] for k in z.files if k not in ("body_model", "body_model_path", "prior", "camera_convention")})
    M = max(len(d["kp_index"]) for d in data)
    pad = lambda a, fill=0: np.concatenate([a, np.full((M - len(a),) + a.shape[1:], fill, a.dtype)])
    index = torch.tensor(np.stack([pad(d["kp_index"]) for d in data]))
    xy = torch.tensor(np.stack([pad(d["kp_xy"]) for d in data]))
    w = torch.tensor(np.stack([pad(d["kp_confidence"] * d["kp_weight"] * (d["kp_confidence"] >= 0.3)) for d in data]))
    index, w = _to_slots(slots, index, w)
    focal = torch.tensor(np.stack([d["focal_length"] for d in data]))
    pp = torch.tensor(np.stack([d["principal_point"] for d in data]))
    target = {k: torch.tensor(np.stack([d[k][0] for d in data])) for k in ("global_orient", "betas", "transl")}
    target["body_pose"] = torch.tensor(np.stack([d["body_pose"][0][:63] for d in data]))
    from priors.posedata import open_poses

    from .regressor.cli import layouts_for
    from .regressor.train import synthetic_batch

    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    train_poses, layouts = torch.tensor(open_poses("train")), layouts_for(body)
    for _ in range(steps):
        b = torch.randint(len(data), (min(64, len(data)),), generator=g)
        terms = regression_loss(model, body, index[b], xy[b], w[b], focal[b], pp[b], {k: v[b] for k, v in target.items()})
        # replay synthetic pairs in every step, so a small set of fits refines without forgetting
        sc, si, sxy, sw = synthetic_batch(body, train_poses, layouts, 64, g)
        si, sw = _to_slots(slots, si, sw)
        syn = regression_loss(model, body, si, sxy, sw, sc.focal, sc.principal_point,
                              {"global_orient": sc.global_orient, "body_pose": sc.body_pose, "betas": sc.betas,
                               "transl": sc.transl})
        loss = sum(terms.values()) + sum(syn.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    after = regressor_benchmark(model, body, n=benchmark_cases, seed=seed)
    dest = out / "regressor_refined.pt"
    save_regressor(model, dest, dict(getattr(model, "meta", {}), refined_on=len(data), steps=steps,
                                     refined_from=str(weights), body_model=body.name))
    return {"refined": True, "samples": len(data), "steps": steps, "body_model": body.name,
            "start_weights": str(weights), "benchmark_cases": benchmark_cases,
            "benchmark_pa_mpjpe_mm_before": before, "benchmark_pa_mpjpe_mm_after": after, "weights": str(dest)}


def regressor_benchmark(model, body, n: int = 60, seed: int = 0) -> float:
    """Regressor-alone PA-MPJPE (mm) on held-out synthetic cases (MediaPipe layout, 3 px noise)."""
    import torch

    from .keypoints.layouts import MEDIAPIPE33
    from .keypoints.mapping import layout_targets
    from .metrics import pa_mpjpe
    from .benchmark.synthetic import make_cases
    from .regressor.train import predict

    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=n, noise_levels=(3.0,),
                       dropouts=(0.1,), seed=seed)
    fi = [c.fit_input for c in cases]
    index, w = _to_slots(_regressor_slots(model, body), torch.tensor(np.stack([f.index for f in fi])),
                         torch.tensor(np.stack([f.confidence * f.weight for f in fi])))
    p = predict(model, body, index, torch.tensor(np.stack([f.xy for f in fi])), w,
                torch.tensor([f.camera.focal for f in fi]), torch.tensor([f.camera.principal_point for f in fi]))
    with torch.no_grad():
        J = body.joints_and_landmarks(p["global_orient"], p["body_pose"], p["betas"], p["transl"]).joints
    return float((pa_mpjpe(J, torch.tensor(np.stack([c.joints3d for c in cases]))) * 1000).mean())


# ---- command line --------------------------------------------------------------------------
def _thresholds(args) -> Thresholds:
    return Thresholds(args.max_error, args.max_nll, args.min_keypoints, args.require_converged)


def _add_thresholds(p) -> None:
    p.add_argument("--max-error", type=float, default=0.05, help="max mean reprojection error / box diagonal")
    p.add_argument("--max-nll", type=float, default=0.0, help="max GMM pose negative log-likelihood")
    p.add_argument("--min-keypoints", type=int, default=8, help="min keypoints with confidence >= 0.3")
    p.add_argument("--require-converged", action="store_true")


def add_parser(sub) -> None:
    from .fit_cli import add_fit_options

    p = sub.add_parser("pseudo-gt", help="fit a dataset into SMPL pseudo-ground-truth (resumable, shardable)")
    p.add_argument("input", help="folder of photos or keypoint files, or a COCO keypoint annotation file")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--shard", default="0/1", help="K/N: this process fits samples K, K+N, K+2N, ... (0 <= K < N)")
    p.add_argument("--refine-regressor", action="store_true", help="fine-tune the regressor on the accepted fits")
    p.add_argument("--refine-steps", type=int, default=200, help="fine-tuning steps for --refine-regressor")
    p.add_argument("--refine-benchmark-cases", type=int, default=60,
                   help="held-out synthetic bodies for --refine-regressor's before/after error")
    _add_thresholds(p)
    add_fit_options(p)
    p.set_defaults(func=run)
    m = sub.add_parser("pseudo-gt-merge", help="combine pseudo-gt shard folders")
    m.add_argument("dirs", nargs="+")
    m.add_argument("--out", required=True)
    _add_thresholds(m)
    m.set_defaults(func=run_merge)


def run(args) -> int:
    from . import api
    from .fit_cli import config_from_args

    try:
        k, n = (int(v) for v in args.shard.split("/"))
        assert 0 <= k < n
    except (ValueError, AssertionError):
        print(f"error: --shard must be K/N with 0 <= K < N, got {args.shard!r}", file=sys.stderr)
        return 2
    if args.batch < 1 or args.refine_steps < 1 or args.refine_benchmark_cases < 1:
        print("error: --batch, --refine-steps and --refine-benchmark-cases must be at least 1", file=sys.stderr)
        return 2
    src = Path(args.input)
    if not src.exists():
        print(f"error: {src}: not found", file=sys.stderr)
        return 2
    cfg = config_from_args(args)
    model, gender = getattr(args, "model", None), getattr(args, "gender", "neutral")
    try:
        api.load_body(model, gender)  # model/prior files: one line, not a traceback (both cached for the run)
        api._prior(cfg.prior, cfg.prior_path)
    except Exception as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        s = run_pseudo_gt(src, args.out, cfg.prior, args.batch, (k, n), _thresholds(args), cfg, model=model,
                          gender=gender, focal=getattr(args, "focal", None))
    except InputError as exc:  # INPUT itself (malformed JSON, not COCO, ...): one line, nothing written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{s['samples']} samples: {s['accepted']} accepted, {s['rejected']} rejected, {s['failed']} failed "
          f"({s['throughput_samples_per_s']} samples/s); outputs in {args.out}/")
    if args.refine_regressor:
        r = refine_regressor(args.out, api.load_body(model, gender), steps=args.refine_steps,
                             weights=getattr(cfg, "regressor_path", None),
                             benchmark_cases=args.refine_benchmark_cases)
        atomic_write_text(Path(args.out) / "refine_regressor.json", json.dumps(r, indent=2))
        if r.get("refined"):
            print(f"regressor refined on {r['samples']} fits: benchmark PA-MPJPE "
                  f"{r['benchmark_pa_mpjpe_mm_before']:.1f} -> {r['benchmark_pa_mpjpe_mm_after']:.1f} mm")
        else:
            print(f"regressor not refined: {r['reason']}")
    return 0


def run_merge(args) -> int:
    s = merge(args.dirs, args.out, _thresholds(args))
    print(f"merged {len(args.dirs)} folders: {s['samples']} samples, {s['accepted']} accepted, "
          f"{s['rejected']} rejected, {s['failed']} failed; outputs in {args.out}/")
    return 0
