"""Input checks at the model boundary, so a wrong tensor shape fails with a sentence, not deep in a matmul."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stdpose.errors import StdposeError


class ModelInputError(StdposeError, ValueError):
    """A tensor handed to the model has the wrong rank, shape, joint count or dtype."""


def check_tensor(name: str, x: object, expected: Sequence[int | str | None], floating: bool = True) -> torch.Tensor:
    """Check that `x` is a tensor whose shape matches `expected`.

    `expected` lists one entry per dimension: an int must match exactly; a str names a free size (e.g. "B") that must
    be positive; None accepts anything. Returns `x` for chaining.
    """
    spec = "(" + ", ".join(str(e) if e is not None else "*" for e in expected) + ")"
    if not isinstance(x, torch.Tensor):
        raise ModelInputError(f"{name} must be a torch.Tensor of shape {spec}, got {type(x).__name__}")
    if x.dim() != len(expected):
        raise ModelInputError(f"{name} must have shape {spec} ({len(expected)} dims), got {tuple(x.shape)}")
    for axis, (size, want) in enumerate(zip(x.shape, expected)):
        if isinstance(want, int) and size != want:
            raise ModelInputError(f"{name} must have shape {spec}, got {tuple(x.shape)} (dim {axis} is {size})")
        if isinstance(want, str) and size == 0:
            raise ModelInputError(f"{name} has an empty dimension {want} (shape {tuple(x.shape)})")
    if floating and not x.is_floating_point():
        raise ModelInputError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x
