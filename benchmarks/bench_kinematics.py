"""Forward+backward time: our joints-and-landmarks path vs our mesh path vs smplx.SMPL's forward.

Also the analytic gradient (``PointJacobian.posed`` + ``vjp``, reverse mode without autograd), which is
what the fitter's L-BFGS evaluates: the same joints and landmarks and the same gradient (checked here).

Same arrays, same random poses, measured side by side (interleaved) in one run.
Run: ``python -m benchmarks.bench_kinematics`` (writes benchmarks/results/kinematics.{json,md}).
"""
from __future__ import annotations

import argparse

import torch

from smplify.body import BodyModel, load_model_file
from smplify.body.jacobian import PointJacobian
from smplify.body.model_file import DEFAULT_MODEL_PATH, to_smplx_model

from .common import markdown_table, peak_rss_mb, save, time_call


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,64,1024")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    data = load_model_file() if DEFAULT_MODEL_PATH.exists() else __import__(
        "smplify.body.tiny", fromlist=["x"]).make_tiny_model(with_posedirs=False)
    ours = BodyModel(data)
    ref = to_smplx_model(data)
    rows, payload = [], {"model": data.name, "vertices": data.num_vertices, "rows": []}
    for B in [int(b) for b in args.batches.split(",")]:
        g = torch.Generator().manual_seed(B)
        params = [torch.randn(B, n, generator=g) * s for n, s in ((3, 0.5), (69, 0.3), (10, 1.0), (3, 1.0))]
        params = [p.requires_grad_() for p in params]
        go, bp, be, tr = params

        def joints_path():
            ours.joints_and_landmarks(go, bp, be, tr).points.square().sum().backward()

        def mesh_path():
            ours.mesh(go, bp, be, tr).vertices.square().sum().backward()

        pj = PointJacobian(ours, tuple(range(24)))  # every joint rotated, as body_pose holds 23

        def analytic():
            with torch.no_grad():
                posed = pj.posed(go, bp, be, tr)
                v = 2 * posed.points  # ∂(Σ points²)/∂points
                return (*pj.vjp(posed, v), v.sum(1))

        for p_ in params:
            p_.grad = None
        joints_path()
        g_rot, g_be, g_tr = analytic()
        auto = torch.cat([go.grad, bp.grad], 1)
        assert torch.allclose(g_rot, auto, rtol=1e-3, atol=1e-3 * auto.abs().max()), "analytic gradient != autograd"
        assert torch.allclose(g_be, be.grad, rtol=1e-3, atol=1e-3 * be.grad.abs().max())
        assert torch.allclose(g_tr, tr.grad, rtol=1e-3, atol=1e-3 * tr.grad.abs().max())

        def smplx_full():
            o = ref(global_orient=go, body_pose=bp, betas=be, transl=tr)
            (o.joints.square().sum() + o.vertices.square().sum()).backward()

        reps = max(3, args.repeats if B < 1024 else args.repeats // 4)
        t = {"joints": [], "analytic": [], "mesh": [], "smplx": []}
        for _ in range(3):  # interleave rounds so machine noise hits all alike
            t["joints"].append(time_call(joints_path, reps))
            t["analytic"].append(time_call(analytic, reps))
            t["mesh"].append(time_call(mesh_path, reps))
            t["smplx"].append(time_call(smplx_full, reps))
        med = {k: sorted(v)[1] for k, v in t.items()}
        speedup = med["smplx"] / med["joints"]
        speedup_a = med["smplx"] / med["analytic"]
        rows.append([B, f"{med['joints']*1e3:.2f}", f"{med['analytic']*1e3:.2f}", f"{med['mesh']*1e3:.2f}",
                     f"{med['smplx']*1e3:.2f}", f"{speedup:.1f}×", f"{speedup_a:.1f}×"])
        payload["rows"].append({"batch": B, **{k + "_ms": v * 1e3 for k, v in med.items()}, "speedup": speedup,
                                "speedup_analytic": speedup_a})
    payload["peak_rss_mb"] = peak_rss_mb()
    table = markdown_table(["batch", "joints path fwd+bwd (ms)", "joints path, analytic gradient (ms)",
                            "our mesh fwd+bwd (ms)", "smplx.SMPL fwd+bwd (ms)", "joints path speed-up",
                            "analytic gradient speed-up"], rows)
    table += f"\n\nModel: {data.name} ({data.num_vertices} vertices); peak RSS {payload['peak_rss_mb']:.0f} MiB."
    save("kinematics", payload, table)
    print(table)


if __name__ == "__main__":
    main()
