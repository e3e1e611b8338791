"""Geometry of the learned propagator with a stub network whose answer is known exactly.

The stub's `aggregate` returns one of the label heatmaps it is given ([left, right] auxiliary inputs). A correct
propagator renders each label in the crop, hands it over, decodes the answer and maps it back to the image, so
every key frame must come out with that label's joints in image pixels (to sub-pixel precision: DARK decoding of
a rendered Gaussian is exact up to float rounding). A shift, a wrong inverse affine, swapped label sides or the
wrong crop for a key frame all move the joints by pixels and fail these tests; shape checks on an untrained model
cannot see them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stdpose.data.records import Frame, Person, Video
from stdpose.data.transforms import render_heatmaps
from stdpose.model.config import ModelConfig
from stdpose.propagation.learned import STDPosePropagator
from stdpose.skeleton import SLOT

TOLERANCE_PX = 0.1
INPUT_HW = (128, 96)


class LabelEchoModel(torch.nn.Module):
    """Stands in for STDPose: `aggregate` returns the `side` label heatmap (0 left, 1 right) unchanged."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side
        self.cfg = ModelConfig(backbone="nano", input_size=INPUT_HW)
        self.encoded: list[int] = []  # crops per encode_frames call

    def encode_frames(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        n = images.shape[0]
        assert tuple(images.shape[1:]) == (3, *INPUT_HW)
        self.encoded.append(n)
        h, w = self.cfg.heatmap_size
        return {"features": torch.zeros(n, 1, 2, 2), "heatmaps": torch.zeros(n, 17, h, w)}

    def aggregate(self, features: torch.Tensor, heatmaps: torch.Tensor, aux: torch.Tensor) -> dict[str, torch.Tensor]:
        assert aux.shape[1] == 2 and features.shape[1] == 3 and heatmaps.shape[1] == 3
        return {"heatmaps": aux[:, self.side].clone()}


def _pose(x0: float, y0: float, scale: float) -> np.ndarray:
    """(17, 3) a person-like set of distinct joints around (x0, y0), all annotated, off the pixel grid."""
    rng = np.random.default_rng(int(x0))
    offsets = rng.uniform([-0.4, -0.9], [0.4, 0.9], size=(17, 2)) * scale
    kps = np.ones((17, 3))
    kps[:, :2] = np.array([x0, y0]) + offsets + 0.37
    return kps


def _video(n_frames: int = 9) -> tuple[Video, list[int], Person, Person]:
    """Frames 0 and n-1 labeled with one track whose two poses differ in place, size and shape."""
    # close enough that the left label stays inside every interpolated key-frame crop (crop: key)
    left = Person(_pose(250.0, 200.0, 60.0), track_id=3)
    right = Person(_pose(258.0, 206.0, 64.0), track_id=3)
    for p in (left, right):
        xy = p.keypoints[:, :2]
        lo, hi = xy.min(0) - 5, xy.max(0) + 5
        p.bbox = (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
    left.keypoints[15] = 0.0  # one joint annotated only on the right: still predicted
    left.keypoints[16] = 0.0
    right.keypoints[16] = 0.0  # one joint annotated in neither: not predicted
    frames = [Frame(index=i, file_name=f"v/{i:06d}.jpg", is_labeled=i in (0, n_frames - 1)) for i in range(n_frames)]
    frames[0].persons = [left]
    frames[-1].persons = [right]
    return Video(name="v", frames=frames), [0, n_frames - 1], left, right


class _Blank:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> np.ndarray:
        return np.zeros((480, 640, 3), np.uint8)


def _propagate(side: int, crop: str, reuse: bool = True, batch_size: int = 4) -> tuple[Video, LabelEchoModel]:
    video, labeled, _, _ = _video()
    model = LabelEchoModel(side)
    config = {"data": {"task": "propagation", "crop": crop, "sigma": 2.0, "enlarge": 1.25}}
    prop = STDPosePropagator(model, config, progress=False, reuse_backbone=reuse, batch_size=batch_size)
    return prop.propagate(video, _Blank(video.num_frames), labeled), model


def _errors(out: Video, label: Person, joints: np.ndarray) -> np.ndarray:
    """Per key frame, the largest distance (image px) of the chosen joints from the label's."""
    errs = []
    for frame in out.frames[1:-1]:
        (person,) = frame.persons
        assert person.propagated and person.track_id == 3
        errs.append(np.abs(person.keypoints[joints, :2] - label.keypoints[joints, :2]).max())
    return np.array(errs)


CASES = [("segment", True), ("segment", False), ("key", True), ("key", False)]


@pytest.mark.parametrize("crop,reuse", CASES)
def test_echoing_the_left_label_reproduces_its_joints_in_image_pixels(crop, reuse):
    video, _, left, right = _video()
    out, _ = _propagate(0, crop, reuse)
    both = left.annotated & right.annotated
    assert both.sum() == 15
    assert _errors(out, left, both).max() < TOLERANCE_PX
    for frame in out.frames[1:-1]:  # the joint in neither label stays unannotated; one-label joints are predicted
        kps = frame.persons[0].keypoints
        assert kps[16].tolist() == [0.0, 0.0, 0.0] and kps[15, 2] > 0


@pytest.mark.parametrize("crop,reuse", CASES)
def test_echoing_the_right_label_reproduces_its_joints_and_a_swap_would_not(crop, reuse):
    _, _, left, right = _video()
    out, _ = _propagate(1, crop, reuse)
    both = left.annotated & right.annotated
    assert _errors(out, right, both).max() < TOLERANCE_PX
    # the two labels differ in shape, so reading the wrong side misses by many pixels
    assert _errors(out, left, both).min() > 10.0


def test_reuse_encodes_fewer_crops_than_naive_and_gives_the_same_joints():
    reused, m_reuse = _propagate(0, "segment", True)
    naive, m_naive = _propagate(0, "segment", False)
    assert sum(m_naive.encoded) == 3 * 7  # three crops per key frame
    assert sum(m_reuse.encoded) == 2 + 7  # the two labels once, each key frame once
    for a, b in zip(reused.frames, naive.frames, strict=True):
        for pa, pb in zip(a.persons, b.persons, strict=True):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-9)


# ------------------------------------------------------------------------------------------------ flipped crops
# The estimator's flip test feeds the mirrored crop too and maps the answer back (mirror + left/right channel swap).
# The stub below is a "perfect" mirror-equivariant network: it finds two bright dots in the key frame and, like a
# model looking at a person facing the camera, calls the one further right the LEFT wrist; the nose sits between
# them. Its answer on the mirrored crop, mapped back correctly, equals its answer on the plain crop, so the flip
# test must reproduce the dots; a missing mirror, a missing channel swap or a shifted map-back move the joints.

LW, RW, NOSE = SLOT["left_wrist"], SLOT["right_wrist"], SLOT["nose"]


def _blob_centroid(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The brightest blob's intensity-weighted centroid (x, y) in a (H, W) map, and the map with it erased."""
    y, x = np.unravel_index(int(np.argmax(image)), image.shape)
    y0, y1, x0, x1 = max(y - 4, 0), y + 5, max(x - 4, 0), x + 5
    win = image[y0:y1, x0:x1]
    ys, xs = np.mgrid[y0:y1, x0:x1][:, : win.shape[0], : win.shape[1]]
    c = np.array([(win * xs).sum(), (win * ys).sum()]) / win.sum()
    rest = image.copy()
    rest[max(y - 7, 0) : y + 8, max(x - 7, 0) : x + 8] = 0.0
    return c, rest


class DotModel(torch.nn.Module):
    """Estimation stub: (B, 3, 3, H, W) crops -> heatmaps with the two dots as wrists (by image side) and nose."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = ModelConfig(backbone="nano", input_size=INPUT_HW)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = self.cfg.heatmap_size
        out = np.zeros((frames.shape[0], 17, 3))
        for b, crop in enumerate(frames[:, 1].sum(1).cpu().numpy()):  # key frame, channels summed: (H, W)
            crop = crop - crop.min()
            a, rest = _blob_centroid(crop)
            c, _ = _blob_centroid(rest)
            right, left = sorted([a, c], key=lambda p: p[0])
            for slot, xy in ((LW, left), (RW, right), (NOSE, (left + right) / 2)):
                out[b, slot] = [*((xy + 0.5) / 4 - 0.5), 1]  # input pixels -> heatmap pixels
        maps = np.stack([render_heatmaps(k, (h, w), 2.0)[0] for k in out])
        return {"heatmaps": torch.from_numpy(maps)}


def _dot_frame(points: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:480, 0:640]
    image = np.zeros((480, 640))
    for x, y in points:
        image += 250 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 2.0**2))
    return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize("flip", [False, True])
def test_flip_test_maps_the_mirrored_answer_back_onto_the_same_joints(flip):
    from stdpose.engine.predict import Estimator

    wrists = np.array([[290.3, 241.6], [231.8, 241.6]])  # [left wrist (image right), right wrist]; same row
    frames = [_dot_frame(wrists)] * 3
    video = Video(name="v", frames=[Frame(index=i, file_name=f"v/{i}.jpg") for i in range(3)])
    boxes = {1: [((200.0, 170.0, 120.0, 150.0), 0.9)]}
    est = Estimator(DotModel(), {"data": {"task": "estimation"}}, flip_test=flip, progress=False)
    (person,) = est.predict_video(video, frames, boxes, frames_to_predict=[1]).frames[0].persons
    kps = person.keypoints
    assert np.abs(kps[[LW, RW], :2] - wrists).max() < 0.1  # measured 0.014 px
    assert np.abs(kps[NOSE, :2] - wrists.mean(0)).max() < 0.1
    assert person.scores[[LW, RW, NOSE]].min() > 0.75  # one sampled peak (~0.9), not two half peaks (<= 0.5)
