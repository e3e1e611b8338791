"""Procedural PoseTrack-like videos with exact ground truth, written as PoseTrack18 JSON + JPEG frames.

No real dataset can be downloaded where stdpose is developed, so this generator is the built-in default data. Each
video has several articulated people (15 PoseTrack joints) drawn as textured, shaded limbs over a textured scene
seen by a panning, zooming, shaking camera; motion is fast and non-linear within 7 frames (swinging limbs with
periods of 4-16 frames, speed changes, turns, depth changes), fast limbs are motion-blurred, people occlude each
other and are occluded by objects, enter and leave the view, and some videos have a crowd area that is an ignore
region. Every frame is labeled (`is_labeled=True`): the propagation protocol drops labels itself.

Annotation choices (see docs/synthetic.md):
- v=1 only for joints that are in the image AND visible (the joint's own limb is on top at its pixel); occluded
  joints, joints outside the image and joints inside an ignore region are (0, 0, 0), as in PoseTrack. The ears
  (slots 3, 4) are always (0, 0, 0). A person with no visible joint is not annotated in that frame.
- `bbox` is the person's whole silhouette (occluded parts included) clipped to the image; `bbox_head` the head.
- Full ground truth (every joint, occluded or not) stays in memory in `Person.extra["_full_keypoints"]`.
Everything is deterministic from (seed, split, video index): the same seed gives identical JSON and pixels.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stdpose.data.records import Frame, Person, Video
from stdpose.data.synthetic_body import Person3D, sample_person
from stdpose.data.synthetic_render import (
    OBJECT_ID,
    PART_STRIDE,
    VISIBLE_PARTS,
    Layer,
    PersonGeometry,
    SceneObject,
    composite,
    draw_object,
    draw_person,
    make_background,
    sample_object,
)
from stdpose.errors import ConfigError, DataError
from stdpose.skeleton import EVALUATED_SLOTS, NUM_SLOTS

GENERATOR_VERSION = 1
SPLITS = ("train", "val")
_SPLIT_NUMBER = {"train": 0, "val": 100000}  # video numbers: train 000001.., val 100001..
INFO_FILE = "synth_info.json"


@dataclass(frozen=True)
class PresetConfig:
    """Size and difficulty of a generated dataset. Ranges are (min, max), sampled per video or person."""

    name: str
    width: int
    height: int
    train_videos: int
    val_videos: int
    frames: tuple[int, int]
    persons: tuple[int, int]
    person_height: tuple[float, float]  # person height / frame height at t = 0
    occluder_prob: float = 0.5  # videos with static foreground objects
    moving_object_prob: float = 0.3  # videos with a vehicle crossing in front of the people
    ignore_region_prob: float = 0.2  # videos with a crowd area that is an ignore region
    enter_leave_prob: float = 0.3  # per person: placed to walk into (or out of) the view
    shake: float = 2.0  # camera shake std in pixels at 240 px frame height (per video, up to this)
    motion_blur: bool = True
    jpeg_quality: int = 90
    det_miss_rate: float = 0.05
    det_false_positives: float = 0.3  # per frame (Poisson mean)

    def validate(self) -> None:
        if self.width < 64 or self.height < 48:
            raise ConfigError(f"preset {self.name}: frames must be at least 64x48, got {self.width}x{self.height}")
        if self.frames[0] < 1 or self.frames[1] < self.frames[0] or self.frames[1] > 9999:
            raise ConfigError(f"preset {self.name}: frames range {self.frames} must satisfy 1 <= min <= max <= 9999")
        if self.persons[0] < 1 or self.persons[1] < self.persons[0] or self.persons[1] > PART_STRIDE:
            raise ConfigError(f"preset {self.name}: persons range {self.persons} must satisfy 1 <= min <= max <= 32")
        if not 0.05 <= self.person_height[0] <= self.person_height[1] <= 1.5:
            raise ConfigError(f"preset {self.name}: person_height {self.person_height} must be within [0.05, 1.5]")
        if self.train_videos < 0 or self.val_videos < 0 or self.train_videos + self.val_videos == 0:
            raise ConfigError(f"preset {self.name}: needs at least one video")
        if self.train_videos > 99999 or self.val_videos > 99999:
            raise ConfigError(f"preset {self.name}: at most 99999 videos per split")


PRESETS: dict[str, PresetConfig] = {
    # tests and the CPU demo: a few short, small videos (labels at 0, 7, 14, 21 under T = 7)
    "tiny": PresetConfig("tiny", width=192, height=144, train_videos=4, val_videos=2, frames=(22, 22),
                         persons=(2, 3), person_height=(0.6, 0.85), ignore_region_prob=0.25),
    # benchmarks: about 60 train and 20 val videos of 30-60 frames
    "bench": PresetConfig("bench", width=320, height=240, train_videos=60, val_videos=20, frames=(30, 60),
                          persons=(2, 4), person_height=(0.5, 0.8)),
}


def get_preset(preset: str | PresetConfig) -> PresetConfig:
    """A PresetConfig by name (ConfigError listing the names when unknown), or the given one, validated."""
    if isinstance(preset, PresetConfig):
        cfg = preset
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise ConfigError(f"unknown synthetic preset {preset!r}; known presets: {', '.join(PRESETS)}")
    cfg.validate()
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# scene description (all random choices of one video)


@dataclass
class Crowd:
    """A crowd area: an ignore region (scene-coordinate outline) with small unlabeled people inside."""

    outline: np.ndarray  # (4, 2) scene px
    backdrop: SceneObject
    figures: list[tuple[Person3D, float, float, float]]  # person, scene x, scene ground y, px per body height


@dataclass
class Scene:
    """Everything needed to render one video; `cameras` are the per-frame 2x3 scene -> image matrices."""

    name: str
    vid_id: str
    split: str
    num_frames: int
    width: int
    height: int
    background: np.ndarray  # (Hs, Ws, 3) float32
    origin: tuple[float, float]  # scene coordinates of the image's top-left at zero pan / zoom 1
    horizon: float  # image y of the horizon (ground line of infinitely far people) at zero pan
    ground_gain: float  # ground line of a person = horizon + ground_gain * (person height in px)
    focal: float  # person height in px = focal / depth
    persons: list[Person3D]
    cameras: np.ndarray  # (num_frames, 2, 3)
    occluders: list[SceneObject] = field(default_factory=list)
    movers: list[SceneObject] = field(default_factory=list)
    crowd: Crowd | None = None
    shutter: float = 0.4  # exposure as a fraction of the frame interval
    motion_blur: bool = True
    noise: float = 2.0
    gain: float = 1.0
    bias: float = 0.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    defocus: float = 0.0
    render_seed: int = 0

    def image_id(self, index: int) -> int:
        """PoseTrack18's convention: 1, the 6-digit video number, the 4-digit frame index."""
        return int(f"1{int(self.vid_id):06d}{index:04d}")

    def file_name(self, index: int) -> str:
        return f"images/{self.split}/{self.name}/{index:06d}.jpg"

    def ground_y(self, unit: float) -> float:
        """Scene y of the ground line for a person `unit` px tall."""
        return self.origin[1] + self.horizon + self.ground_gain * unit

    def geometry(self, person: Person3D, t: float, camera: np.ndarray) -> PersonGeometry:
        """Body points of `person` at time t in image pixels under `camera`."""
        x, depth = person.root(t)
        unit = self.focal / depth
        w = person.world_points(t)  # (K, 3) body heights
        sx = self.origin[0] + self.width / 2 + (x + w[:, 0]) * unit
        sy = self.ground_y(unit) + w[:, 1] * unit
        pts = np.stack([sx, sy], axis=1) @ camera[:, :2].T + camera[:, 2]
        scale = float(np.sqrt(abs(np.linalg.det(camera[:, :2]))))
        return PersonGeometry(pts, w[:, 2], unit * scale, depth)


def video_rng(seed: int, split: str, index: int, stream: int = 0) -> np.random.Generator:
    """The random stream of one video: independent of the other videos and of how many videos are made."""
    return np.random.default_rng([int(seed), SPLITS.index(split), int(index), stream])


def sample_scene(preset: str | PresetConfig, split: str, index: int, seed: int = 0) -> Scene:
    """All random choices of video `index` of `split`: scene, camera path, people, objects, crowd, image effects."""
    cfg = get_preset(preset)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    rng = video_rng(seed, split, index)
    W, H = cfg.width, cfg.height
    n = int(rng.integers(cfg.frames[0], cfg.frames[1] + 1))
    name = video_name(split, index)
    vid_id = name.split("_")[0]

    # scene texture larger than the view: room for pan (+-25% W), zoom (+-8%) and shake
    ws, hs = int(W * 1.8), int(H * 1.3)
    origin = ((ws - W) / 2, (hs - H) / 2)
    h_lo, h_hi = cfg.person_height
    horizon = rng.uniform(0.12, 0.28) * H
    ground_gain = (0.97 * H - horizon) / (h_hi * H)  # the tallest people stand near the bottom edge
    background = make_background(rng, ws, hs, origin[1] + horizon)

    # camera: pan, zoom, roll and shake per frame
    shake = rng.uniform(0.2, 1.0) * cfg.shake * H / 240
    max_pan = 0.22 * W
    pan_v = rng.uniform(-1, 1) * min(max_pan / max(n, 1), 2.0 * W / 320)
    pan_a, pan_p, pan_c = rng.uniform(0, 0.06) * W, rng.uniform(20, 60), rng.uniform(0, 2 * math.pi)
    zoom_a, zoom_p, zoom_c = rng.uniform(0, 0.07), rng.uniform(25, 80), rng.uniform(0, 2 * math.pi)
    jitter = np.zeros((n, 3))
    state = np.zeros(3)
    for k in range(n):  # AR(1) shake: x, y in px, roll in radians
        state = 0.5 * state + rng.normal(0, 1, 3) * (shake, shake, math.radians(0.4) * shake / max(cfg.shake, 1e-6))
        jitter[k] = state
    cameras = np.zeros((n, 2, 3))
    pans = []
    for k in range(n):
        pan = float(np.clip(pan_v * (k - n / 2) + pan_a * math.sin(2 * math.pi * k / pan_p + pan_c), -max_pan, max_pan))
        zoom = 1.0 + zoom_a * math.sin(2 * math.pi * k / zoom_p + zoom_c)
        roll = jitter[k, 2]
        rot = zoom * np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
        centre = np.array([origin[0] + W / 2 + pan, origin[1] + H / 2])
        pans.append(pan)
        cameras[k, :, :2] = rot
        cameras[k, :, 2] = np.array([W / 2, H / 2]) + jitter[k, :2] - rot @ centre

    # people
    count = int(rng.integers(cfg.persons[0], cfg.persons[1] + 1))
    focal = float(H)
    depth_range = (1.0 / (h_hi * 1.15), 1.0 / (h_lo * 0.8))
    slots = (np.arange(count) + rng.uniform(0.2, 0.8, count)) / count  # spread people across the view
    rng.shuffle(slots)
    persons = []
    for p in range(count):
        mode = "stay"
        if p == 0 and count >= 2 and index == 0:
            mode = "enter"  # guarantee that even tiny datasets contain an entrance and an exit
        elif p == 0 and count >= 2 and index == 1:
            mode = "leave"
        elif rng.random() < cfg.enter_leave_prob:
            mode = "enter" if rng.random() < 0.5 else "leave"
        kind = ("walk" if rng.random() < 0.7 else "run") if mode != "stay" else None
        person = sample_person(rng, kind=kind)
        height0 = rng.uniform(h_lo, h_hi)
        depth0 = 1.0 / height0
        half = W / 2 / (focal / depth0)  # half the view width in body heights
        view_x = pans[0] / (focal / depth0)  # world x at the view's centre in frame 0
        x0 = view_x + (slots[p] * 2 - 1) * half * 0.85
        if mode != "stay":
            side = -1.0 if rng.random() < 0.5 else 1.0
            inward = -side  # direction of motion for an entrance
            direction = inward if mode == "enter" else side
            # facing: moving along +x needs -sin(yaw) > 0, i.e. yaw near -pi/2
            person.yaw0 = -direction * math.pi / 2 + rng.uniform(-0.5, 0.5)
            person.yaw_amp = min(person.yaw_amp, 0.25)
            person.turns = []
            if mode == "enter":  # start fully outside (limbs reach ~0.3 body heights from the pelvis)
                offset = half + rng.uniform(0.3, 0.4)
                need, frac = offset - half + 0.25, 0.55
            else:
                offset = half - rng.uniform(0.1, 0.3)
                need, frac = half - offset + 0.45, 0.6
            x0 = view_x + side * offset
            loco = 1.0 if person.motion.kind == "walk" else 1.6
            # |sin(yaw)| >= cos(0.5 + 0.25) while walking sideways; 0.8 leaves some margin
            person.speed = max(person.speed, need / (frac * n * loco * 0.8))
        person.integrate(x0, depth0, n, depth_range, depth_gain=1.0)
        persons.append(person)

    scene = Scene(
        name=name, vid_id=vid_id, split=split, num_frames=n, width=W, height=H,
        background=background, origin=origin, horizon=horizon, ground_gain=ground_gain, focal=focal,
        persons=persons, cameras=cameras, motion_blur=cfg.motion_blur,
    )

    # foreground occluders near the people's paths, and background movers
    front_unit = h_hi * 1.2 * H
    if rng.random() < cfg.occluder_prob or index == 0:
        for _ in range(int(rng.integers(1, 3))):
            target = persons[int(rng.integers(count))]
            sx = origin[0] + W / 2 + target.root(rng.uniform(0, n))[0] * focal * h_hi + rng.uniform(-0.1, 0.1) * W
            scene.occluders.append(sample_object(rng, sx, scene.ground_y(front_unit), H, moving=False))
    if rng.random() < cfg.moving_object_prob:
        sx = origin[0] + rng.uniform(0, 1) * W + W / 2
        obj = sample_object(rng, sx, scene.ground_y(front_unit), H, moving=True)
        obj.outline = obj.outline - np.array([obj.velocity[0] * n / 2, 0.0])  # cross the view mid-video
        scene.occluders.append(obj)
    for _ in range(int(rng.integers(0, 3))):
        sx = origin[0] + rng.uniform(0, 1) * W + W / 2
        far = sample_object(rng, sx, scene.ground_y(h_lo * 0.35 * H), H * 0.4, moving=rng.random() < 0.6)
        scene.movers.append(far)
    if rng.random() < cfg.ignore_region_prob or (index == 1 and split == "train"):
        scene.crowd = _sample_crowd(rng, scene, h_lo)

    # image effects
    scene.shutter = rng.uniform(0.15, 0.45)
    scene.noise = rng.uniform(1.0, 4.0)
    scene.gain = rng.uniform(0.8, 1.15)
    scene.bias = rng.uniform(-15, 15)
    scene.cast = tuple(float(c) for c in rng.uniform(0.9, 1.1, 3))
    scene.defocus = rng.uniform(0.5, 1.0) if rng.random() < 0.15 else 0.0
    scene.render_seed = int(rng.integers(2**31))
    return scene


def _sample_crowd(rng: np.random.Generator, scene: Scene, h_lo: float) -> Crowd:
    """A stand of small spectators in the upper part of the view: a PoseTrack-style ignore region."""
    W, H = scene.width, scene.height
    ox, oy = scene.origin
    w = rng.uniform(0.3, 0.55) * W
    x0 = ox + rng.uniform(0.0, W - w) + rng.uniform(-0.1, 0.1) * W
    y0 = oy + rng.uniform(0.0, 0.03) * H
    y1 = oy + rng.uniform(0.2, 0.28) * H
    slant = rng.uniform(0, 0.06) * W
    outline = np.array([[x0 + slant, y0], [x0 + w - slant, y0], [x0 + w, y1], [x0, y1]])
    backdrop = SceneObject(outline, tuple(float(c) for c in rng.uniform(40, 140, 3)),
                           texture=("stripes", rng.uniform(0.4, 0.8), 0.25), stripe_unit=H / 10)
    figures = []
    rows = 2
    for r in range(rows):
        gy = y0 + (y1 - y0) * (0.55 + 0.45 * r)
        unit = rng.uniform(0.09, 0.12) * H * (0.85 + 0.15 * r)
        count = max(2, int(w / (unit * 0.35)))
        for c in range(count):
            fx = x0 + (c + rng.uniform(0.3, 0.7)) * w / count
            fig = sample_person(rng, kind=str(rng.choice(["wave", "dance", "jacks"])), calm=True)
            fig.integrate(0.0, 1.0, scene.num_frames, (0.5, 2.0), depth_gain=0.0)
            figures.append((fig, fx, gy, unit))
    return Crowd(outline, backdrop, figures)


# ----------------------------------------------------------------------------------------------------------------
# rendering


def _figure_geometry(fig: Person3D, x: float, gy: float, unit: float, t: float, camera: np.ndarray) -> PersonGeometry:
    w = fig.world_points(t)
    sx, sy = x + w[:, 0] * unit, gy + w[:, 1] * unit
    pts = np.stack([sx, sy], axis=1) @ camera[:, :2].T + camera[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(camera[:, :2]))))
    return PersonGeometry(pts, w[:, 2], unit * scale, 1.0)


def _layer_for(bounds: tuple[float, float, float, float], width: int, height: int) -> Layer | None:
    x0, y0 = max(int(math.floor(bounds[0])), 0), max(int(math.floor(bounds[1])), 0)
    x1, y1 = min(int(math.ceil(bounds[2])) + 1, width), min(int(math.ceil(bounds[3])) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return Layer(x0, y0, x1 - x0, y1 - y0)


def _region_in_image(outline: np.ndarray, camera: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """The crowd outline in integer image coordinates, clipped to the image; None when (almost) out of view."""
    import cv2

    pts = (outline @ camera[:, :2].T + camera[:, 2]).astype(np.float32)
    rect = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    area, poly = cv2.intersectConvexConvex(pts, rect)
    if poly is None or area < 20:
        return None
    return np.round(poly.reshape(-1, 2)).astype(np.int64)


def _inside(poly: np.ndarray, x: float, y: float) -> bool:
    """Strictly inside (poseval drops only points strictly inside an ignore region)."""
    import cv2

    return cv2.pointPolygonTest(poly.astype(np.float32).reshape(-1, 1, 2), (float(x), float(y)), False) > 0


def render_frame(scene: Scene, k: int, rng: np.random.Generator) -> tuple[np.ndarray, Frame]:
    """Render frame k of the scene: the BGR uint8 image and its fully labeled Frame record."""
    import cv2

    W, H = scene.width, scene.height
    cam = scene.cameras[k]
    bg = cv2.warpAffine(scene.background, cam, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frame = Layer(0, 0, W, H, col=bg)

    for mover in scene.movers:
        draw_object(frame, mover, k, cam, 0)
    region = None
    if scene.crowd is not None:
        draw_object(frame, scene.crowd.backdrop, 0, cam, 0)
        for fig, fx, gy, unit in scene.crowd.figures:
            g = _figure_geometry(fig, fx, gy, unit, float(k), cam)
            layer = _layer_for(g.bounds(), W, H)
            if layer is not None:
                draw_person(layer, g, fig, 0)
                composite(frame, layer)
        region = _region_in_image(scene.crowd.outline, cam, W, H)

    # people, far to near; each with motion blur over the exposure
    geoms = [scene.geometry(p, float(k), cam) for p in scene.persons]
    order = sorted(range(len(geoms)), key=lambda i: -geoms[i].depth)
    centre_layers: dict[int, Layer] = {}
    for i in order:
        person, g = scene.persons[i], geoms[i]
        base = (i + 1) * PART_STRIDE
        subs = [g]
        if scene.motion_blur:
            before, after = scene.geometry(person, k - 0.5, cam), scene.geometry(person, k + 0.5, cam)
            blur = scene.shutter * float(np.max(np.linalg.norm(after.pts[:NUM_SLOTS] - before.pts[:NUM_SLOTS], axis=1)))
            if blur > 2.0:  # sub-samples about 3 px apart (at most 5) over the exposure
                m = min(5, 2 * int(math.ceil(blur / 6.0)) + 1)
                times = k + scene.shutter * (np.arange(m) / (m - 1) - 0.5)
                subs = [scene.geometry(person, float(t), cam) if j != m // 2 else g for j, t in enumerate(times)]
        bounds = np.array([s.bounds() for s in subs])
        union = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
        acc = _layer_for(union, W, H)
        if acc is None:
            continue
        centre = Layer(acc.x0, acc.y0, acc.w, acc.h)
        draw_person(centre, g, person, base)
        if len(subs) == 1:
            acc = centre
        else:
            for j, s in enumerate(subs):
                if j == len(subs) // 2:
                    sub = centre
                else:
                    sub = Layer(acc.x0, acc.y0, acc.w, acc.h)
                    draw_person(sub, s, person, base)
                acc.col += sub.col / len(subs)
                acc.alpha += sub.alpha / len(subs)
        composite(frame, acc, centre.ids, centre.alpha)
        centre_layers[i] = centre

    for obj in scene.occluders:
        draw_object(frame, obj, k, cam, OBJECT_ID)

    # camera effects
    img = frame.col * scene.gain + scene.bias
    img *= np.asarray(scene.cast, np.float32)
    if scene.defocus > 0:
        img = cv2.GaussianBlur(img, (0, 0), scene.defocus)
    img += rng.normal(0, scene.noise, img.shape).astype(np.float32)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)

    persons = [p for i in range(len(geoms)) if (p := _annotate(scene, i, geoms[i], centre_layers.get(i), frame.ids,
                                                                 region)) is not None]
    regions = [] if region is None else [(tuple(float(v) for v in region[:, 0]), tuple(float(v) for v in region[:, 1]))]
    rec = Frame(index=k, file_name=scene.file_name(k), persons=persons, is_labeled=True, image_id=scene.image_id(k),
                frame_id=scene.image_id(k), ignore_regions=regions, width=W, height=H)
    return image, rec


def _annotate(scene: Scene, i: int, g: PersonGeometry, layer: Layer | None, ids: np.ndarray,
              region: np.ndarray | None) -> Person | None:
    """The Person record of scene person i (track id i), or None when none of its joints is visible."""
    if layer is None:
        return None
    W, H = scene.width, scene.height
    base = (i + 1) * PART_STRIDE
    kps = np.zeros((NUM_SLOTS, 3))
    full = np.zeros((NUM_SLOTS, 3))  # every joint: v=2 visible, 1 occluded / outside / ignored
    for slot in EVALUATED_SLOTS:
        x, y = float(g.pts[slot, 0]), float(g.pts[slot, 1])
        full[slot] = (x, y, 1.0)
        ix, iy = int(round(x)), int(round(y))
        if not (0 <= ix < W and 0 <= iy < H):
            continue
        code = int(ids[iy, ix]) - base
        if code not in VISIBLE_PARTS[slot]:
            continue
        if region is not None and _inside(region, x, y):
            continue
        # a joint on an edge pixel may lie up to half a pixel outside; keep labels within [0, W-1] x [0, H-1]
        kps[slot] = (round(min(max(x, 0.0), W - 1.0), 2), round(min(max(y, 0.0), H - 1.0), 2), 1.0)
        full[slot, 2] = 2.0
    if not np.any(kps[:, 2] > 0):
        return None
    ys, xs = np.nonzero(layer.alpha > 0.3)
    if len(xs) == 0:
        return None
    x0, x1 = layer.x0 + xs.min() - 0.5, layer.x0 + xs.max() + 0.5
    y0, y1 = layer.y0 + ys.min() - 0.5, layer.y0 + ys.max() + 0.5
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(W)), min(y1, float(H))
    hb = g.head_box(scene.persons[i])
    return Person(
        keypoints=kps,
        track_id=i,
        bbox=(round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)),
        bbox_head=tuple(round(v, 2) for v in hb),
        extra={"_full_keypoints": full},  # "_" keys stay in memory (the PoseTrack writer skips them)
    )


def render_video(scene: Scene) -> Iterator[tuple[np.ndarray, Frame]]:
    """Yield (BGR image, Frame) for every frame of the scene, in order (deterministic)."""
    rng = np.random.default_rng(scene.render_seed)
    for k in range(scene.num_frames):
        yield render_frame(scene, k, rng)


def make_video(preset: str | PresetConfig, split: str, index: int, seed: int = 0
               ) -> tuple[Video, list[np.ndarray]]:
    """Generate one video in memory: its Video record (every frame labeled) and the frames (BGR uint8)."""
    scene = sample_scene(preset, split, index, seed)
    video = _empty_video(scene)
    images = []
    for image, frame in render_video(scene):
        video.frames.append(frame)
        images.append(image)
    return video, images


def _empty_video(scene: Scene) -> Video:
    return Video(name=scene.name, vid_id=scene.vid_id, extra={"synthetic": {"split": scene.split}})


# ----------------------------------------------------------------------------------------------------------------
# detector boxes


def make_detections(video: Video, rng: np.random.Generator, cfg: PresetConfig) -> list:
    """Simulated person detector output for a video: jittered ground-truth boxes (some missed, more so when the
    person is mostly hidden), plus false positives; scores rank true boxes above most false ones."""
    from stdpose.data.formats import Detection

    dets = []
    for frame in video.frames:
        W, H = frame.width or 1, frame.height or 1
        for person in frame.persons:
            x, y, w, h = person.bbox
            visible = float(person.annotated.sum()) / len(EVALUATED_SLOTS)
            if rng.random() < cfg.det_miss_rate + 0.3 * (1 - visible) ** 2:
                continue
            jx, jy = rng.normal(0, 0.06) * w, rng.normal(0, 0.05) * h
            sw, sh = math.exp(rng.normal(0, 0.08)), math.exp(rng.normal(0, 0.06))
            box = _clip_box(x + jx + w * (1 - sw) / 2, y + jy + h * (1 - sh) / 2, w * sw, h * sh, W, H)
            if box is None:
                continue
            score = float(np.clip(0.55 + 0.4 * visible + rng.normal(0, 0.06), 0.05, 0.999))
            dets.append(Detection(frame.image_id, box, round(score, 4)))
        for _ in range(int(rng.poisson(cfg.det_false_positives))):
            h = rng.uniform(0.2, 0.8) * H
            w = h * rng.uniform(0.25, 0.6)
            box = _clip_box(rng.uniform(-0.1, 1.0) * W, rng.uniform(-0.1, 0.6) * H, w, h, W, H)
            if box is not None:
                dets.append(Detection(frame.image_id, box, round(float(rng.uniform(0.05, 0.6)), 4)))
    return dets


def _clip_box(x: float, y: float, w: float, h: float, W: int, H: int) -> tuple[float, float, float, float] | None:
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(W)), min(y + h, float(H))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return (round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2))


# ----------------------------------------------------------------------------------------------------------------
# dataset on disk


def generate_dataset(out_dir: str | Path, preset: str | PresetConfig = "tiny", seed: int = 0,
                     progress: bool = True) -> dict[str, Any]:
    """Write a synthetic dataset under `out_dir` and return a summary.

    Layout: `annotations/<split>/<video>.json` (PoseTrack18, one per video), `images/<split>/<video>/000000.jpg`
    (Frame.file_name is relative to out_dir), `detections/<split>.json` (COCO results style) and `synth_info.json`.
    Every file is written atomically and a video's annotation file only after all its frames, so an interrupted
    run never leaves a half-written file. An existing non-empty folder is only reused when it holds a previous
    synthetic dataset (its `synth_info.json`); files of videos that the new dataset lacks are then removed.
    """
    import cv2
    from tqdm import tqdm

    from stdpose.atomic import atomic_path, atomic_write_json
    from stdpose.data.formats import write_detections, write_posetrack18

    cfg = get_preset(preset)
    out = Path(out_dir)
    previous = _check_out_dir(out)
    start = time.perf_counter()
    counts = {split: cfg.train_videos if split == "train" else cfg.val_videos for split in SPLITS}
    planned = {split: [video_name(split, i) for i in range(counts[split])] for split in SPLITS}
    # mark the folder as ours (and remember every video an earlier run may have left) before writing anything,
    # so that re-running after an interruption is allowed and cleans up
    known = {split: sorted(set(planned[split]) | set((previous or {}).get("videos_by_split", {}).get(split, [])))
             for split in SPLITS}
    atomic_write_json(out / INFO_FILE, {"complete": False, "preset": cfg.name, "seed": int(seed),
                                        "videos_by_split": known}, indent=1)
    total_frames = 0
    summary: dict[str, Any] = {"out_dir": str(out), "preset": cfg.name, "seed": int(seed), "splits": {}}
    written: dict[str, list[str]] = {}
    bar = tqdm(total=sum(counts.values()), desc=f"synth {cfg.name}", unit="video", disable=not progress)
    try:
        for split in SPLITS:
            names, frames, persons, dets_all = [], 0, 0, {}
            for index in range(counts[split]):
                scene = sample_scene(cfg, split, index, seed)
                video = _empty_video(scene)
                for image, frame in render_video(scene):
                    target = out / frame.file_name
                    with atomic_path(target) as tmp:
                        if not cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]):
                            raise DataError(target, "OpenCV could not write the JPEG frame")
                    video.frames.append(frame)
                _prune_frames(out / "images" / split / scene.name, {Path(f.file_name).name for f in video.frames})
                write_posetrack18(video, out / "annotations" / split / f"{scene.name}.json")
                for det in make_detections(video, video_rng(seed, split, index, stream=2), cfg):
                    dets_all.setdefault(det.image_id, []).append(det)
                names.append(scene.name)
                frames += video.num_frames
                persons += sum(len(f.persons) for f in video.frames)
                bar.update(1)
            if counts[split]:
                write_detections(dets_all, out / "detections" / f"{split}.json")
            written[split] = names
            total_frames += frames
            summary["splits"][split] = {"videos": len(names), "frames": frames, "persons": persons,
                                        "detections": sum(len(d) for d in dets_all.values())}
    finally:
        bar.close()
    _remove_stale(out, known, written)
    seconds = time.perf_counter() - start
    summary["videos"] = sum(s["videos"] for s in summary["splits"].values())
    summary["frames"] = total_frames
    summary["persons"] = sum(s["persons"] for s in summary["splits"].values())
    summary["seconds"] = round(seconds, 2)
    summary["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    info = {**summary, "complete": True, "generator_version": GENERATOR_VERSION, "config": _config_dict(cfg),
            "videos_by_split": written}
    atomic_write_json(out / INFO_FILE, info, indent=1)
    return summary


def video_name(split: str, index: int) -> str:
    """Name of video `index` of a split: '<6-digit number>_synth_<split>' (train 000001.., val 100001..)."""
    return f"{_SPLIT_NUMBER[split] + index + 1:06d}_synth_{split}"


def _config_dict(cfg: PresetConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()}


def _check_out_dir(out: Path) -> dict | None:
    """The previous synth_info.json when `out` holds an earlier synthetic dataset; None for a new/empty folder."""
    from stdpose.data.formats import load_json

    if out.exists() and not out.is_dir():
        raise DataError(out, "output path exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return None
    info = out / INFO_FILE
    if not info.is_file():
        raise DataError(out, f"folder is not empty and holds no {INFO_FILE}; refusing to write a synthetic dataset "
                             "over other files (choose an empty or new folder)")
    previous = load_json(info)
    if not isinstance(previous, dict):
        raise DataError(info, "not a synthetic dataset description")
    by_split = previous.get("videos_by_split")
    by_split = by_split if isinstance(by_split, dict) else {}
    previous["videos_by_split"] = {
        split: [n for n in names if isinstance(n, str)] for split, names in by_split.items()
        if split in SPLITS and isinstance(names, list)
    }
    return previous


def _remove_stale(out: Path, known: dict[str, list[str]], written: dict[str, list[str]]) -> None:
    """Delete the annotation files, frame folders and detection files of an earlier run that this run lacks."""
    for split, names in known.items():
        if split not in SPLITS or not isinstance(names, list):
            continue
        keep = set(written.get(split, []))
        for name in names:
            if not isinstance(name, str) or name in keep or "/" in name or name.startswith("."):
                continue
            (out / "annotations" / split / f"{name}.json").unlink(missing_ok=True)
            folder = out / "images" / split / name
            if folder.is_dir():
                shutil.rmtree(folder)
        if not written.get(split):
            (out / "detections" / f"{split}.json").unlink(missing_ok=True)


def _prune_frames(folder: Path, keep: set[str]) -> None:
    """Remove frames an earlier, longer version of this video left in its folder (only our own NNNNNN.jpg)."""
    for path in folder.glob("*.jpg"):
        if path.name not in keep and path.stem.isdigit():
            path.unlink()


def scaled_preset(preset: str | PresetConfig, **changes: Any) -> PresetConfig:
    """A copy of a preset with some fields changed (e.g. fewer videos), validated."""
    cfg = replace(get_preset(preset), **changes)
    cfg.validate()
    return cfg
