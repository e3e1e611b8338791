"""stdpose: human pose estimation in sparsely-labeled videos (STDPose, AAAI 2025).

`stdpose.propagate(video, labels, method=..., checkpoint=..., interval=None) -> Video` is the one-call API
(`stdpose.api`); it is imported on first use so that `stdpose --help` stays fast.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "propagate"]


def __getattr__(name: str) -> Any:
    if name == "propagate":
        from stdpose.api import propagate

        return propagate
    raise AttributeError(f"module 'stdpose' has no attribute {name!r}")
