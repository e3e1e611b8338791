"""Non-learned propagation baselines (nearest label, linear interpolation, Farneback optical flow) and the
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


def get_propagator(name: str, **kwargs: Any) -> Propagator:
    """A baseline propagator by name ("nearest", "linear", "flow"); keyword options go to its constructor
    (see `SegmentPropagator`, and `FlowPropagator` for max_side / farneback)."""
    if name == "nearest":
        from stdpose.propagation.nearest import NearestPropagator as cls
    elif name == "linear":
        from stdpose.propagation.linear import LinearPropagator as cls
    elif name == "flow":
        from stdpose.propagation.flow import FlowPropagator as cls
    else:
        raise ConfigError(f"unknown propagation method {name!r}; baselines: {', '.join(BASELINES)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad option for the {name} propagator: {exc}") from exc


__all__ = [
    "BASELINES",
    "FrameSource",
    "PosePrediction",
    "Propagator",
    "SegmentPropagator",
    "assemble_video",
    "distance_score",
    "get_propagator",
]
