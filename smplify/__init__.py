"""smplify: fit an SMPL-family body model to a single photo.

Pipeline: image -> keypoints -> camera -> body -> priors -> objective -> optimiser -> outputs.

    import smplify
    result = smplify.fit("photo.jpg", prior="gmm")    # -> FitResult (see smplify.api)
    clip = smplify.fit_video("clip.mp4")              # -> SequenceResult: (T, ...) parameters, one betas

``fit``, ``fit_many``, ``make_fitter`` and ``load_body`` are loaded on first use, so
``import smplify`` stays cheap (no torch import until you fit).
"""
__version__ = "0.1.0"

#: names re-exported from :mod:`smplify.api`, imported lazily by :func:`__getattr__`
_API = ("fit", "fit_many", "fit_video", "make_fitter", "load_body")

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        from . import api

        value = getattr(api, name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
