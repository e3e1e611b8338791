"""Geometry of a person crop: box -> affine crop, augmentation, Gaussian heatmap targets and their decoding.

Coordinate convention (everywhere in stdpose): pixel centres sit at integer coordinates, so an image of width W
spans [-0.5, W - 0.5]. `crop_affine` maps the crop box centre to ((W - 1) / 2, (H - 1) / 2) and the box extent to
W x H pixels. With that convention the input crop (H, W) and the heatmap (H/4, W/4) relate exactly by
x_heatmap = (x_input + 0.5) / 4 - 0.5, and a horizontal flip is x -> (W - 1) - x at every resolution, so flipped
heatmaps need no one-pixel shift (the bias the "unbiased data processing" paper removes from HRNet's pipeline).

Heatmap targets are Gaussians centred at the exact sub-pixel keypoint location (no rounding), and decoding refines
the argmax with DARK's second-order Taylor step on the log heatmap (configurable: "dark", "quarter" offset as in
HRNet, or "none"), so encode -> decode returns keypoints to a small fraction of a heatmap pixel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from stdpose.errors import ConfigError
from stdpose.skeleton import SLOT, flip_permutation

IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)

UPPER_BODY_SLOTS = tuple(
    SLOT[n] for n in ("nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                      "left_elbow", "right_elbow", "left_wrist", "right_wrist")
)
LOWER_BODY_SLOTS = tuple(
    SLOT[n] for n in ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
)

# ------------------------------------------------------------------------------------------------ crop geometry


def box_to_center_size(
    box_xywh: Any, aspect_ratio_w_over_h: float, enlarge: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Crop centre (2,) and size (2,) = (width, height) for a person box: the box is padded to the input's aspect
    ratio (keeping it whole) and then enlarged by `enlarge` (the paper's 25%). ValueError for an empty box."""
    x, y, w, h = (float(v) for v in box_xywh)
    if not (w > 0 and h > 0) or not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"box has zero or negative size or non-finite values: {(x, y, w, h)}")
    center = np.array([x + w / 2.0, y + h / 2.0])
    if w > aspect_ratio_w_over_h * h:
        h = w / aspect_ratio_w_over_h
    else:
        w = h * aspect_ratio_w_over_h
    return center, np.array([w, h]) * enlarge


def crop_affine(
    center: Any, size: Any, rotation_deg: float, out_size_wh: tuple[int, int], inverse: bool = False
) -> np.ndarray:
    """(2, 3) affine taking image coordinates into a crop of `out_size_wh` pixels (or back, with inverse=True).

    The box of `size` (width, height) around `center` fills the output; a positive `rotation_deg` turns the
    image content counter-clockwise as displayed (y axis pointing down).
    """
    cx, cy = (float(v) for v in np.asarray(center).reshape(2))
    sw, sh = (float(v) for v in np.asarray(size).reshape(2))
    ow, oh = out_size_wh
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    # p_out = S @ R @ (p - c) + d  with R rotating content counter-clockwise on screen
    rot = np.array([[cos, sin], [-sin, cos]])
    scale = np.diag([ow / sw, oh / sh])
    linear = scale @ rot
    offset = np.array([(ow - 1) / 2.0, (oh - 1) / 2.0]) - linear @ np.array([cx, cy])
    forward = np.concatenate([linear, offset[:, None]], axis=1)
    return invert_affine(forward) if inverse else forward


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine."""
    full = np.vstack([affine, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine applying `inner` first, then `outer`."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def hflip_affine(width: int) -> np.ndarray:
    """Mirror x -> (width - 1) - x (pixel-centre convention)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def apply_affine(points: Any, affine: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ affine[:, :2].T + affine[:, 2]


def warp_image(image: np.ndarray, affine: np.ndarray, out_size_wh: tuple[int, int]) -> np.ndarray:
    """Crop/rotate/scale an image with a (2, 3) affine (bilinear, black outside the image)."""
    return cv2.warpAffine(image, affine.astype(np.float64), (int(out_size_wh[0]), int(out_size_wh[1])),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def crop_transforms(
    center: Any, size: Any, rotation_deg: float, flip: bool, input_size_wh: tuple[int, int],
    heatmap_size_wh: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(image -> input crop, image -> heatmap) affines for one crop, with the optional horizontal flip folded in."""
    to_input = crop_affine(center, size, rotation_deg, input_size_wh)
    to_heatmap = crop_affine(center, size, rotation_deg, heatmap_size_wh)
    if flip:
        to_input = compose_affine(hflip_affine(input_size_wh[0]), to_input)
        to_heatmap = compose_affine(hflip_affine(heatmap_size_wh[0]), to_heatmap)
    return to_input, to_heatmap


def to_tensor_image(image_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> RGB float32 (3, H, W), ImageNet-normalised."""
    rgb = image_bgr[..., ::-1].astype(np.float32) / 255.0
    rgb = (rgb - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


# ------------------------------------------------------------------------------------------------ flips


def flip_keypoints(keypoints: np.ndarray, width: float) -> np.ndarray:
    """Mirror (J, 3) or (..., J, 2|3) keypoints horizontally in an image of `width` and swap left/right joints.
    Unannotated joints (v == 0) keep their zeros."""
    kps = np.array(keypoints, dtype=np.float64, copy=True)
    perm = flip_permutation(kps.shape[-2])
    out = kps[..., perm, :]
    if out.shape[-1] == 3:
        annotated = out[..., 2] > 0
        out[..., 0] = np.where(annotated, (width - 1) - out[..., 0], out[..., 0])
    else:
        out[..., 0] = (width - 1) - out[..., 0]
    return out


def flip_heatmaps(heatmaps: Any) -> Any:
    """Mirror (..., J, h, w) heatmaps (numpy or torch) and swap left/right channels; flipping twice is identity."""
    perm = flip_permutation(heatmaps.shape[-3])
    if isinstance(heatmaps, np.ndarray):
        return heatmaps[..., perm, :, ::-1].copy()
    import torch

    return torch.flip(heatmaps, dims=[-1])[..., torch.as_tensor(perm, device=heatmaps.device), :, :]


# ------------------------------------------------------------------------------------------------ heatmaps


def render_heatmaps(
    keypoints: Any, heatmap_size_hw: tuple[int, int], sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets (J, h, w) float32 peaking at 1 at the exact sub-pixel keypoint, and weights (J,).

    keypoints: (J, 3) x, y, v in heatmap pixels. Weight 0 (and an all-zero map) for unannotated joints (v <= 0)
    and for joints outside the heatmap (they cannot be localised in this crop).
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    h, w = heatmap_size_hw
    x, y, v = kps[:, 0:1], kps[:, 1:2], kps[:, 2]
    finite = np.isfinite(x[:, 0]) & np.isfinite(y[:, 0])
    inside = (x[:, 0] >= -0.5) & (x[:, 0] <= w - 0.5) & (y[:, 0] >= -0.5) & (y[:, 0] <= h - 0.5)
    weights = ((v > 0) & finite & inside).astype(np.float32)
    x, y = np.where(finite[:, None], x, 0.0), np.where(finite[:, None], y, 0.0)
    # separable Gaussian, cut at 3 sigma (values below exp(-4.5) ~ 0.011 are set to zero)
    dx = np.arange(w, dtype=np.float64)[None, :] - x  # (J, w)
    dy = np.arange(h, dtype=np.float64)[None, :] - y  # (J, h)
    radius = 3.0 * sigma
    gx = np.exp(-(dx**2) / (2 * sigma**2)) * (np.abs(dx) <= radius)
    gy = np.exp(-(dy**2) / (2 * sigma**2)) * (np.abs(dy) <= radius)
    heatmaps = (gy[:, :, None] * gx[:, None, :] * weights[:, None, None]).astype(np.float32)  # (J, h, w)
    return heatmaps, weights


REFINEMENTS = ("dark", "quarter", "none")


def _gaussian_blur(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """DARK's distribution modulation: blur each map, then restore its original maximum."""
    b, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(b * j, h, w)
    out = np.empty_like(flat)
    for i in range(flat.shape[0]):
        peak = flat[i].max()
        blurred = cv2.GaussianBlur(flat[i], (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
        bmax = blurred.max()
        out[i] = blurred * (peak / bmax) if bmax > 0 else blurred
    return out.reshape(b, j, h, w)


def decode_heatmaps(heatmaps: Any, refine: str = "dark", blur_kernel: int = 0) -> tuple[Any, Any]:
    """Keypoint locations (B, J, 2) x, y in heatmap pixels and peak values (B, J) from heatmaps (B, J, h, w).

    refine: "dark" (Newton step on the log heatmap around the argmax: exact for a Gaussian peak), "quarter"
    (HRNet's quarter-pixel step towards the higher neighbour) or "none". blur_kernel > 0 (odd) first applies
    DARK's Gaussian modulation, useful for noisy network outputs (DARK uses 11 for sigma 2). Accepts numpy or
    torch; returns the same kind (torch results on the input's device).
    """
    if refine not in REFINEMENTS:
        raise ValueError(f"refine must be one of {REFINEMENTS}, got {refine!r}")
    is_torch = not isinstance(heatmaps, np.ndarray)
    device = None
    if is_torch:
        device = heatmaps.device
        hm = heatmaps.detach().float().cpu().numpy()
    else:
        hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must have shape (B, J, h, w), got {hm.shape}")
    b, j, h, w = hm.shape
    flat = hm.reshape(b, j, h * w)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)  # (B, J, 2)
    if refine == "dark":
        src = _gaussian_blur(hm, blur_kernel) if blur_kernel and blur_kernel > 1 else hm
        coords = _dark_refine(src, coords)
    elif refine == "quarter":
        coords = _quarter_refine(hm, coords)
    if is_torch:
        import torch

        return (torch.as_tensor(coords, dtype=torch.float32, device=device),
                torch.as_tensor(maxvals, dtype=torch.float32, device=device))
    return coords, maxvals.astype(np.float32)


def _neighbours(maps: np.ndarray, coords: np.ndarray) -> dict[str, np.ndarray]:
    """Values of each map around its argmax: keys c, l, r, u, d, ul, ur, dl, dr, each (B, J) (edge-padded)."""
    b, j, h, w = maps.shape
    padded = np.pad(maps, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    bi, ji = np.meshgrid(np.arange(b), np.arange(j), indexing="ij")
    x = coords[..., 0].astype(np.int64) + 1
    y = coords[..., 1].astype(np.int64) + 1
    at = {"c": (0, 0), "l": (-1, 0), "r": (1, 0), "u": (0, -1), "d": (0, 1), "ul": (-1, -1), "ur": (1, -1),
          "dl": (-1, 1), "dr": (1, 1)}
    return {k: padded[bi, ji, y + dy, x + dx] for k, (dx, dy) in at.items()}


def _quarter_refine(hm: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Quarter-pixel step towards the higher neighbour (not at the border)."""
    _, _, h, w = hm.shape
    n = _neighbours(hm, coords)
    out = coords.copy()
    x, y = coords[..., 0], coords[..., 1]
    out[..., 0] += np.where((x > 0) & (x < w - 1), 0.25 * np.sign(n["r"] - n["l"]), 0.0)
    out[..., 1] += np.where((y > 0) & (y < h - 1), 0.25 * np.sign(n["d"] - n["u"]), 0.0)
    return out


def _dark_refine(hm: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """offset = -Hessian^-1 @ gradient of log(heatmap) at the argmax (central differences), vectorised."""
    _, _, h, w = hm.shape
    raw = _neighbours(hm, coords)
    peak = raw["c"]
    n = {k: np.log(np.maximum(v.astype(np.float64), 1e-10)) for k, v in raw.items()}  # log only where needed
    dx = 0.5 * (n["r"] - n["l"])
    dy = 0.5 * (n["d"] - n["u"])
    dxx = n["r"] - 2 * n["c"] + n["l"]
    dyy = n["d"] - 2 * n["c"] + n["u"]
    dxy = 0.25 * (n["dr"] - n["dl"] - n["ur"] + n["ul"])
    det = dxx * dyy - dxy * dxy
    x, y = coords[..., 0], coords[..., 1]
    # a proper maximum away from the border; otherwise keep the argmax
    ok = (x >= 1) & (x < w - 1) & (y >= 1) & (y < h - 1) & (peak > 0) & (np.abs(det) > 1e-12) & (dxx < 0) & (dyy < 0)
    safe = np.where(ok, det, 1.0)
    ox = -(dyy * dx - dxy * dy) / safe
    oy = -(dxx * dy - dxy * dx) / safe
    ok &= (np.abs(ox) <= 1.0) & (np.abs(oy) <= 1.0)
    out = coords.copy()
    out[..., 0] += np.where(ok, ox, 0.0)
    out[..., 1] += np.where(ok, oy, 0.0)
    return out


def heatmap_to_image(
    coords: Any, center: Any, size: Any, heatmap_size_hw: tuple[int, int], rotation: Any = None
) -> Any:
    """Map (B, J, 2) heatmap coordinates back to image pixels for crops given by center (B, 2), size (B, 2)
    and optional rotation (B,) degrees. Accepts numpy or torch; returns the same kind."""
    is_torch = not isinstance(coords, np.ndarray)
    device = coords.device if is_torch else None

    def _np(a):
        return a.detach().cpu().double().numpy() if hasattr(a, "detach") else np.asarray(a, dtype=np.float64)

    pts, centers, sizes = _np(coords), _np(center), _np(size)
    rots = np.zeros(len(pts)) if rotation is None else _np(rotation).reshape(-1)
    h, w = heatmap_size_hw
    out = np.empty_like(pts)
    for i in range(len(pts)):
        inv = crop_affine(centers[i], sizes[i], float(rots[i]), (w, h), inverse=True)
        out[i] = apply_affine(pts[i], inv)
    if is_torch:
        import torch

        return torch.as_tensor(out, dtype=torch.float32, device=device)
    return out


# ------------------------------------------------------------------------------------------------ augmentation


@dataclass
class AugmentConfig:
    """Training augmentation (paper Appendix: rotation +-45 degrees, scale 0.65-1.35, half body, flip).

    `rotation_prob` 0.6 and the half-body settings follow the HRNet/ViTPose recipe the paper builds on (the paper
    gives only the ranges). Set `enabled=False` (or a flag) to switch augmentation (or one part) off.
    """

    enabled: bool = True
    rotate: bool = True
    rotation: float = 45.0  # max |degrees|, drawn uniformly
    rotation_prob: float = 0.6
    scale: bool = True
    scale_range: tuple[float, float] = (0.65, 1.35)  # multiplies the crop size, drawn uniformly
    flip: bool = True
    flip_prob: float = 0.5
    half_body: bool = True
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8  # only persons with more annotated joints than this
    half_body_enlarge: float = 1.5

    @classmethod
    def from_dict(cls, cfg: dict | None) -> AugmentConfig:
        """Build from a config mapping; ConfigError for unknown keys or bad values."""
        cfg = dict(cfg or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            raise ConfigError(f"unknown augment keys {unknown}; allowed: {sorted(allowed)}")
        if "scale_range" in cfg:
            cfg["scale_range"] = tuple(float(v) for v in cfg["scale_range"])
        out = cls(**cfg)
        out.check()
        return out

    def check(self) -> None:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"augment.scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        for name in ("rotation_prob", "flip_prob", "half_body_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"augment.{name} must lie in [0, 1], got {p}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AugmentParams:
    """One draw of augmentation parameters (identity by default)."""

    rotation: float = 0.0
    scale: float = 1.0
    flip: bool = False
    half_body: bool = False


def sample_augmentation(cfg: AugmentConfig | None, rng: np.random.Generator) -> AugmentParams:
    """Draw rotation, scale, flip and whether to try a half-body crop."""
    if cfg is None or not cfg.enabled:
        return AugmentParams()
    params = AugmentParams()
    if cfg.scale:
        params.scale = float(rng.uniform(*cfg.scale_range))
    if cfg.rotate and rng.random() < cfg.rotation_prob:
        params.rotation = float(rng.uniform(-cfg.rotation, cfg.rotation))
    if cfg.flip and rng.random() < cfg.flip_prob:
        params.flip = True
    if cfg.half_body and rng.random() < cfg.half_body_prob:
        params.half_body = True
    return params


def half_body_center_size(
    keypoints: np.ndarray, aspect_ratio_w_over_h: float, rng: np.random.Generator, min_joints: int = 8,
    enlarge: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Crop around the upper or the lower body only (HRNet's half-body augmentation), or None when the person has
    too few annotated joints or the chosen half has fewer than 2."""
    kps = np.asarray(keypoints)
    annotated = kps[:, 2] > 0
    if annotated.sum() <= min_joints:
        return None
    upper = [j for j in UPPER_BODY_SLOTS if annotated[j]]
    lower = [j for j in LOWER_BODY_SLOTS if annotated[j]]
    chosen = upper if (rng.random() < 0.5 and len(upper) > 2) or len(lower) < 2 else lower
    if len(chosen) < 2:
        return None
    pts = kps[chosen, :2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return box_to_center_size((x0, y0, w, h), aspect_ratio_w_over_h, enlarge)
