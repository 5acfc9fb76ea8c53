"""`smplify doctor [--json]`: what is found and what is missing; exit status 1 (with --json too) if the
body model or the detector is missing or refused."""
from __future__ import annotations

import json


def run(args) -> int:
    from ..doctor import collect

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
    p.add_argument("--model", help="body model file or folder to check (default: $%s or the open model)" % "SMPLIFY_MODEL")
    p.set_defaults(func=run)
