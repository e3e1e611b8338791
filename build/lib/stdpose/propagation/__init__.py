"""Pose propagation, the product's main job: fill in the unlabeled frames of a sparsely labeled video.

- `tracks`: which labeled person continues into which frame (track segments between two labels).
- `alignment`: label-file frames -> video frames (sparse label files, image folders, videos).
- `common`: the `Propagator` interface and the output assembly every method shares.
- `nearest`, `linear`, `flow`: methods that need no trained weights; `methods.get_propagator` builds them.
- `learned`: the STDPose network as a propagator (a trained checkpoint).
- `protocol`: the sparse-label evaluation protocol (PoseWarper's) used by the command, benchmarks and demo.
"""
