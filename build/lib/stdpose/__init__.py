"""stdpose: human pose estimation in sparsely-labeled videos (STDPose, AAAI 2025)."""

__version__ = "0.1.0"
