"""Crop geometry, flips, heatmap encode/decode accuracy and augmentation settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stdpose.data.transforms import (
    AugmentConfig,
    apply_affine,
    box_to_center_size,
    crop_affine,
    crop_transforms,
    decode_heatmaps,
    flip_heatmaps,
    flip_keypoints,
    half_body_center_size,
    heatmap_to_image,
    render_heatmaps,
    sample_augmentation,
    to_tensor_image,
    warp_image,
)
from stdpose.errors import ConfigError
from stdpose.skeleton import NUM_SLOTS, SLOT

INPUT_WH = (192, 256)
HEATMAP_WH = (48, 64)


def _random_keypoints(rng, w, h, margin=4.0):
    kps = np.zeros((NUM_SLOTS, 3))
    kps[:, 0] = rng.uniform(margin, w - 1 - margin, NUM_SLOTS)
    kps[:, 1] = rng.uniform(margin, h - 1 - margin, NUM_SLOTS)
    kps[:, 2] = 1
    return kps


def test_box_to_center_size_pads_to_aspect_and_enlarges():
    center, size = box_to_center_size((10, 20, 30, 120), 192 / 256)  # tall box: width is padded
    np.testing.assert_allclose(center, [25, 80])
    np.testing.assert_allclose(size, [90 * 1.25, 120 * 1.25])
    center, size = box_to_center_size((0, 0, 300, 100), 0.75, enlarge=1.0)  # wide box: height is padded
    np.testing.assert_allclose(size, [300, 400])
    for bad in ((0, 0, 0, 10), (0, 0, 5, -1), (0, 0, float("nan"), 3)):
        with pytest.raises(ValueError, match="zero or negative"):
            box_to_center_size(bad, 0.75)


def test_crop_affine_maps_box_onto_output_and_inverts():
    center, size = np.array([400.0, 300.0]), np.array([150.0, 200.0])
    fwd = crop_affine(center, size, 0.0, INPUT_WH)
    np.testing.assert_allclose(apply_affine(center, fwd), [(192 - 1) / 2, (256 - 1) / 2])
    # the box edges land on the outer pixel borders (-0.5 and W - 0.5)
    np.testing.assert_allclose(apply_affine([325.0, 200.0], fwd), [-0.5, -0.5])
    np.testing.assert_allclose(apply_affine([475.0, 400.0], fwd), [191.5, 255.5])
    inv = crop_affine(center, size, 30.0, INPUT_WH, inverse=True)
    pts = np.random.default_rng(0).uniform(0, 500, (10, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, crop_affine(center, size, 30.0, INPUT_WH)), inv), pts)
    # +90 degrees turns content counter-clockwise on screen: a point right of the centre ends up above it
    rot = crop_affine(center, np.array([200.0, 200.0]), 90.0, (101, 101))
    np.testing.assert_allclose(apply_affine(center + [50, 0], rot), [50, 50 - 25.25], atol=1e-9)


def test_input_and_heatmap_crops_agree():
    center, size = np.array([100.0, 120.0]), np.array([90.0, 120.0])
    to_input, to_heatmap = crop_transforms(center, size, 17.0, False, INPUT_WH, HEATMAP_WH)
    pts = np.random.default_rng(1).uniform(0, 200, (20, 2))
    np.testing.assert_allclose(apply_affine(pts, to_heatmap), (apply_affine(pts, to_input) + 0.5) / 4 - 0.5)
    f_input, f_heatmap = crop_transforms(center, size, 17.0, True, INPUT_WH, HEATMAP_WH)
    np.testing.assert_allclose(apply_affine(pts, f_input)[:, 0], 191 - apply_affine(pts, to_input)[:, 0])
    np.testing.assert_allclose(apply_affine(pts, f_heatmap), (apply_affine(pts, f_input) + 0.5) / 4 - 0.5)


def test_warp_image_moves_a_dot_where_apply_affine_says():
    image = np.zeros((300, 400, 3), np.uint8)
    image[150, 260] = 255  # x=260, y=150
    center, size = box_to_center_size((200, 80, 120, 160), 0.75)
    affine = crop_affine(center, size, 25.0, INPUT_WH)
    crop = warp_image(image, affine, INPUT_WH)
    assert crop.shape == (256, 192, 3)
    expected = apply_affine([260.0, 150.0], affine)
    gray = crop[..., 0].astype(float)
    ys, xs = np.nonzero(gray)
    centroid = np.array([(xs * gray[ys, xs]).sum(), (ys * gray[ys, xs]).sum()]) / gray[ys, xs].sum()
    np.testing.assert_allclose(centroid, expected, atol=0.2)


def test_encode_decode_is_subpixel_exact():
    rng = np.random.default_rng(3)
    kps = np.stack([_random_keypoints(rng, 48, 64) for _ in range(4)])  # (4, 17, 3)
    maps = np.stack([render_heatmaps(k, (64, 48), sigma=2.0)[0] for k in kps])  # (4, 17, 64, 48)
    coords, maxvals = decode_heatmaps(maps, refine="dark")
    err = np.abs(coords - kps[..., :2]).max()
    assert err < 0.02, err  # heatmap pixels (= 0.08 input pixels)
    assert maxvals.shape == (4, NUM_SLOTS) and np.all(maxvals > 0.8)
    quarter, _ = decode_heatmaps(maps, refine="quarter")
    none, _ = decode_heatmaps(maps, refine="none")
    assert np.abs(quarter - kps[..., :2]).max() <= 0.5 + 1e-9
    assert np.abs(none - kps[..., :2]).max() <= 0.5 + 1e-9
    assert np.abs(quarter - kps[..., :2]).mean() < np.abs(none - kps[..., :2]).mean()
    blurred, _ = decode_heatmaps(maps, refine="dark", blur_kernel=11)  # DARK modulation keeps accuracy
    assert np.abs(blurred - kps[..., :2]).max() < 0.1
    t_coords, t_max = decode_heatmaps(torch.from_numpy(maps))
    assert isinstance(t_coords, torch.Tensor) and t_coords.shape == (4, NUM_SLOTS, 2)
    np.testing.assert_allclose(t_coords.numpy(), coords, atol=1e-4)
    with pytest.raises(ValueError):
        decode_heatmaps(maps, refine="magic")


def test_image_to_heatmap_to_image_round_trip():
    rng = np.random.default_rng(7)
    box = (300.0, 100.0, 180.0, 400.0)
    center, size = box_to_center_size(box, 0.75)
    kps = np.zeros((NUM_SLOTS, 3))
    kps[:, 0] = rng.uniform(box[0], box[0] + box[2], NUM_SLOTS)
    kps[:, 1] = rng.uniform(box[1], box[1] + box[3], NUM_SLOTS)
    kps[:, 2] = 1
    for rotation in (0.0, -30.0):
        _, to_heatmap = crop_transforms(center, size, rotation, False, INPUT_WH, HEATMAP_WH)
        hm_kps = kps.copy()
        hm_kps[:, :2] = apply_affine(kps[:, :2], to_heatmap)
        maps, weights = render_heatmaps(hm_kps, (64, 48))
        assert weights.sum() == NUM_SLOTS
        coords, _ = decode_heatmaps(maps[None])
        back = heatmap_to_image(coords, center[None], size[None], (64, 48), rotation=np.array([rotation]))
        pixel = size[0] / 48  # image pixels per heatmap pixel (~5.6 here)
        assert np.abs(back[0] - kps[:, :2]).max() < 0.05 * pixel
        tb = heatmap_to_image(torch.from_numpy(coords).float(), torch.from_numpy(center[None]),
                              torch.from_numpy(size[None]), (64, 48), rotation=torch.tensor([rotation]))
        np.testing.assert_allclose(tb.numpy(), back, atol=1e-3)


def test_weights_zero_for_unannotated_and_outside_joints():
    kps = np.zeros((NUM_SLOTS, 3))
    kps[:, :2] = [20.0, 30.0]
    kps[:, 2] = 1
    kps[SLOT["left_ear"], 2] = 0
    kps[SLOT["nose"], 0] = -3.0  # left of the heatmap
    kps[SLOT["left_ankle"], 1] = 64.2  # below it
    kps[SLOT["right_ankle"], :2] = [47.4, 63.4]  # inside, at the border
    maps, weights = render_heatmaps(kps, (64, 48))
    assert maps.dtype == np.float32 and maps.shape == (NUM_SLOTS, 64, 48)
    for slot in ("left_ear", "nose", "left_ankle"):
        assert weights[SLOT[slot]] == 0 and not maps[SLOT[slot]].any()
    assert weights[SLOT["right_ankle"]] == 1 and maps[SLOT["right_ankle"]].max() > 0.5
    assert weights.sum() == NUM_SLOTS - 3
    assert maps[SLOT["head_top"]].max() == pytest.approx(1.0)


def test_flip_twice_is_identity_and_consistent_with_heatmaps():
    rng = np.random.default_rng(11)
    kps = _random_keypoints(rng, 48, 64)
    kps[:, :2] = np.round(kps[:, :2] * 8) / 8  # exactly representable: flipping twice must give the same bits
    kps[SLOT["left_ear"]] = 0
    flipped = flip_keypoints(kps, 48)
    np.testing.assert_array_equal(flip_keypoints(flipped, 48), kps)
    # left wrist becomes right wrist, mirrored
    np.testing.assert_allclose(flipped[SLOT["right_wrist"], 0], 47 - kps[SLOT["left_wrist"], 0])
    assert flipped[SLOT["right_ear"], 2] == 0 and flipped[SLOT["right_ear"], 0] == 0
    maps, w = render_heatmaps(kps, (64, 48))
    fmaps, fw = render_heatmaps(flipped, (64, 48))
    np.testing.assert_allclose(flip_heatmaps(maps), fmaps, atol=1e-6)  # no pixel shift needed
    np.testing.assert_array_equal(flip_heatmaps(flip_heatmaps(maps)), maps)
    t = torch.from_numpy(maps)[None]
    assert torch.equal(flip_heatmaps(flip_heatmaps(t)), t)
    np.testing.assert_allclose(flip_heatmaps(t)[0].numpy(), fmaps, atol=1e-6)
    image = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
    mirrored = warp_image(image, np.array([[-1.0, 0, 11], [0, 1, 0]]), (12, 10))
    np.testing.assert_array_equal(mirrored, image[:, ::-1])


def test_augment_config_defaults_and_validation():
    cfg = AugmentConfig()
    assert cfg.rotation == 45.0 and cfg.scale_range == (0.65, 1.35) and cfg.enabled
    cfg = AugmentConfig.from_dict({"rotation": 30, "scale_range": [0.8, 1.2], "flip": False})
    assert cfg.rotation == 30 and cfg.scale_range == (0.8, 1.2) and not cfg.flip
    with pytest.raises(ConfigError, match="unknown augment keys.*allowed"):
        AugmentConfig.from_dict({"rotate_degrees": 30})
    with pytest.raises(ConfigError, match="scale_range"):
        AugmentConfig.from_dict({"scale_range": [1.2, 0.8]})
    with pytest.raises(ConfigError, match="flip_prob"):
        AugmentConfig.from_dict({"flip_prob": 2})
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(AugmentConfig(), rng) for _ in range(400)]
    rotations = np.array([d.rotation for d in draws])
    scales = np.array([d.scale for d in draws])
    assert np.all(np.abs(rotations) <= 45) and np.all((scales >= 0.65) & (scales <= 1.35))
    assert 0.5 < np.mean(rotations != 0) < 0.7 and 0.4 < np.mean([d.flip for d in draws]) < 0.6
    assert scales.min() < 0.7 and scales.max() > 1.3
    off = sample_augmentation(AugmentConfig(enabled=False), rng)
    assert (off.rotation, off.scale, off.flip, off.half_body) == (0.0, 1.0, False, False)
    assert sample_augmentation(None, rng).scale == 1.0


def test_half_body_crop_is_smaller_and_needs_joints():
    rng = np.random.default_rng(0)
    kps = _random_keypoints(rng, 400, 800)
    kps[list(range(0, 11)), 1] = rng.uniform(0, 300, 11)  # upper body at the top
    kps[list(range(11, 17)), 1] = rng.uniform(500, 800, 6)
    full_center, full_size = box_to_center_size(tuple(np.r_[kps[:, :2].min(0), np.ptp(kps[:, :2], 0)]), 0.75)
    for seed in range(5):
        center, size = half_body_center_size(kps, 0.75, np.random.default_rng(seed))
        assert size[1] < full_size[1]
    few = kps.copy()
    few[8:, 2] = 0
    assert half_body_center_size(few, 0.75, rng) is None


def test_to_tensor_image_is_rgb_normalised():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 2] = 255  # pure red in BGR
    t = to_tensor_image(image)
    assert t.shape == (3, 2, 3) and t.dtype == np.float32
    np.testing.assert_allclose(t[0], (1 - 0.485) / 0.229, rtol=1e-5)
    np.testing.assert_allclose(t[2], (0 - 0.406) / 0.225, rtol=1e-5)
