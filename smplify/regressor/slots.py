"""Which body points the regressor reads: another body model's points mapped onto its input slots.

The shipped regressor was trained on the open model's points (24 joints + its landmarks); another
model (official SMPL, the tiny test model) shares the joints and some landmarks by name, and its
points the regressor never saw are hidden from it (slot -1, weight 0; the fit still uses them).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence, Tuple

import numpy as np
import torch


@functools.lru_cache(maxsize=1)
def open_point_names() -> Tuple[str, ...]:
    """The open model's point names (24 joints, then its landmarks): the shipped regressor's slots."""
    from ..body.names import SMPL_JOINT_NAMES
    from ..paths import OPEN_BODY_MODEL

    with np.load(OPEN_BODY_MODEL, allow_pickle=False) as z:
        return tuple(SMPL_JOINT_NAMES) + tuple(str(n) for n in z["landmark_names"])


def regressor_slots(model, body) -> Optional[torch.Tensor]:
    """(N,) long: this body's points -> the regressor's input slots (-1: none), by name; None when the
    regressor reads this body's own points. ``model.point_names`` names its slots
    (:func:`~smplify.regressor.load_regressor` sets them)."""
    if model.num_points == len(body.point_names):
        return None
    theirs: Sequence[str] = getattr(model, "point_names", None) or ()
    if len(theirs) != model.num_points:
        raise ValueError(f"regressor made for {model.num_points} body points, model {body.name} has "
                         f"{len(body.point_names)}, and the open model's names do not match either")
    slot = {n: i for i, n in enumerate(theirs)}
    return torch.tensor([slot.get(n, -1) for n in body.point_names], dtype=torch.long)


def to_slots(slots: Optional[torch.Tensor], index: torch.Tensor, w: torch.Tensor):
    """(index, weight) (B, M) on the regressor's slots: points it does not read get weight 0."""
    if slots is None:
        return index, w
    index = slots[index]
    return index.clamp(min=0), torch.where(index >= 0, w, torch.zeros_like(w))
