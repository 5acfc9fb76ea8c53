"""The fitter on another torch device: a clear error where there is none, the same fits where there is."""
import numpy as np
import pytest
import torch

from smplify.body import BodyModel
from smplify.body.tiny import make_tiny_model
from smplify.config import FitConfig
from smplify.api import build_fitter


def _cases(n=4):
    from smplify.evaluation.synthetic import make_cases
    from smplify.keypoints.layouts import MEDIAPIPE33
    from smplify.keypoints.mapping import layout_targets

    body = BodyModel(make_tiny_model(with_posedirs=False))
    return body, make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=n, noise_levels=(3.0,),
                            dropouts=(0.1,), seed=7)


def test_a_device_that_is_not_there_is_a_clear_error():
    body, _ = _cases(1)
    with pytest.raises(ValueError, match="not a torch device"):
        build_fitter(body, FitConfig(prior="none", device="banana"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device"):
            build_fitter(body, FitConfig(prior="none", device="cuda"))


def test_the_callers_body_and_prior_stay_where_they_are():
    body, cases = _cases(2)
    f = build_fitter(body, FitConfig(prior="gmm", device="cpu"))
    assert f.body is body  # already on the device: no copy
    res = f.fit([c.fit_input for c in cases])
    assert all(np.isfinite(r.body_pose).all() and not r.failed for r in res)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("optimizer,prior,init", [("lm", "gmm", "mean"), ("lbfgs", "gmm", "mean"),
                                                  ("lbfgs", "vae", "mean"), ("lm", "gmm", "regressor")])
def test_cuda_fits_agree_with_cpu_fits(optimizer, prior, init):
    from smplify import api

    body = api.load_body()  # the open model (the regressor was trained on its points)
    from smplify.evaluation.synthetic import make_cases
    from smplify.keypoints.layouts import MEDIAPIPE33
    from smplify.keypoints.mapping import layout_targets

    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=6, noise_levels=(3.0,),
                       dropouts=(0.1,), seed=7)
    inputs = [c.fit_input for c in cases]
    cfg = dict(prior=prior, optimizer=optimizer, init=init)
    cpu = api.make_fitter(**cfg).fit(inputs)
    gpu_fitter = api.make_fitter(**cfg, device="cuda")
    gpu = gpu_fitter.fit(inputs)
    assert next(iter(body.buffers())).device.type == "cpu"  # the cached body was copied, not moved
    for a, b in zip(cpu, gpu):
        assert not b.failed and np.isfinite(b.body_pose).all() and b.optimizer == a.optimizer
        # float32 on different hardware: the same fit up to rounding, which long L-BFGS runs can amplify
        assert abs(a.mean_error_px - b.mean_error_px) < 1.0
        assert abs(a.loss_terms["total"] - b.loss_terms["total"]) < 0.05 * abs(a.loss_terms["total"]) + 20


def test_every_prior_moves_whole_to_a_device():
    """The fitter moves its prior to the optimisation's device: every tensor it holds, also inside a sum of
    priors (the default chain prior keeps its parts in a list) and inside nested mixtures. The 'meta' device
    stands in for a GPU here."""
    import torch

    from priors import get_pose_prior
    from smplify.fitting.fitter import _on_device

    def tensors(obj, depth=0):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif depth < 7 and isinstance(obj, (list, tuple)):
            for v in obj:
                yield from tensors(v, depth + 1)
        elif depth < 7 and isinstance(obj, dict):
            for v in obj.values():
                yield from tensors(v, depth + 1)
        elif depth < 7 and hasattr(obj, "__dict__") and not isinstance(obj, (type, torch.nn.Module)):
            for v in vars(obj).values():
                yield from tensors(v, depth + 1)

    for name in ("chain", "gmm", "limits"):
        prior = get_pose_prior(name)
        before = list(tensors(prior))
        assert before, name
        moved = _on_device(prior, torch.device("meta"))
        assert all(t.device.type == "meta" for t in tensors(moved)), name
        assert all(t.device.type == "cpu" for t in tensors(prior)), name  # the original is left as it was
        assert _on_device(prior, torch.device("cpu")) is prior  # already there: no copy
