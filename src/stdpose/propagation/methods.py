"""Non-learned propagation methods (nearest label, linear interpolation, Farneback optical flow, `auto`) and the
`Propagator` interface every propagation method implements (the learned STDPose propagator included).

    from stdpose.propagation.methods import get_propagator
    out = get_propagator("linear").propagate(video, frames=None, labeled=video.labeled_indices())
"""

from __future__ import annotations

from typing import Any

from stdpose.errors import ConfigError
from stdpose.propagation.common import (
    FrameSource,
    PosePrediction,
    Propagator,
    SegmentPropagator,
    assemble_video,
    distance_score,
)

BASELINES = ("nearest", "linear", "flow")
METHODS = (*BASELINES, "auto")  # auto: reliability-weighted flow + interpolation (stdpose.propagation.auto)


def get_propagator(name: str, **kwargs: Any) -> Propagator:
    """A weight-free propagator by name ("nearest", "linear", "flow", "auto"); keyword options go to its
    constructor (see `SegmentPropagator`, `FlowPropagator` for max_side / farneback, `AutoPropagator` for flow /
    region_margin / use_appearance)."""
    if name == "nearest":
        from stdpose.propagation.nearest import NearestPropagator as cls
    elif name == "linear":
        from stdpose.propagation.linear import LinearPropagator as cls
    elif name == "flow":
        from stdpose.propagation.flow import FlowPropagator as cls
    elif name == "auto":
        from stdpose.propagation.auto import AutoPropagator as cls
    else:
        raise ConfigError(f"unknown propagation method {name!r}; weight-free methods: {', '.join(METHODS)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad option for the {name} propagator: {exc}") from exc


__all__ = [
    "BASELINES",
    "METHODS",
    "FrameSource",
    "PosePrediction",
    "Propagator",
    "SegmentPropagator",
    "assemble_video",
    "distance_score",
    "get_propagator",
]
