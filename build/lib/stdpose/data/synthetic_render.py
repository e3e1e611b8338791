"""Drawing for the synthetic video generator: anti-aliased textured primitives, people, backgrounds, objects.

Everything is drawn into float32 layers together with an integer id buffer that records which person part (or
object) is on top at every pixel. The annotations read joint visibility from that buffer, so a joint is marked
visible exactly when its own limb is what the image shows there.

Coordinates: pixel (row i, column j) has its centre at image coordinates (x=j, y=i), the OpenCV convention, so a
keypoint at (x, y) lies in pixel (round(y), round(x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from stdpose.data.synthetic_body import (
    HAIR,
    HEAD_CENTRE,
    L_EYE,
    L_HAND,
    L_TOE,
    PELVIS,
    R_EYE,
    R_HAND,
    R_TOE,
    SHOULDER_MID,
    TORSO_BOX,
    Person3D,
)
from stdpose.skeleton import SLOT

# Part codes inside one person (id buffer value = person_number * PART_STRIDE + code; 0 = background).
TORSO, NECK, HEAD, NOSE = 1, 2, 3, 4
L_UPPER_ARM, L_FOREARM, L_HAND_PART, R_UPPER_ARM, R_FOREARM, R_HAND_PART = 5, 6, 7, 8, 9, 10
L_THIGH, L_SHIN, L_FOOT, R_THIGH, R_SHIN, R_FOOT = 11, 12, 13, 14, 15, 16
PART_STRIDE = 32
OBJECT_ID = -1  # foreground occluders

# Which parts may be on top of a joint for it to count as visible (slot -> part codes).
VISIBLE_PARTS: dict[int, tuple[int, ...]] = {
    SLOT["nose"]: (NOSE,),
    SLOT["head_bottom"]: (HEAD, NECK),
    SLOT["head_top"]: (HEAD,),
    SLOT["left_shoulder"]: (TORSO, L_UPPER_ARM),
    SLOT["right_shoulder"]: (TORSO, R_UPPER_ARM),
    SLOT["left_elbow"]: (L_UPPER_ARM, L_FOREARM),
    SLOT["right_elbow"]: (R_UPPER_ARM, R_FOREARM),
    SLOT["left_wrist"]: (L_FOREARM, L_HAND_PART),
    SLOT["right_wrist"]: (R_FOREARM, R_HAND_PART),
    SLOT["left_hip"]: (TORSO, L_THIGH),
    SLOT["right_hip"]: (TORSO, R_THIGH),
    SLOT["left_knee"]: (L_THIGH, L_SHIN),
    SLOT["right_knee"]: (R_THIGH, R_SHIN),
    SLOT["left_ankle"]: (L_SHIN, L_FOOT),
    SLOT["right_ankle"]: (R_SHIN, R_FOOT),
}

_NOISE_TILE: np.ndarray | None = None


def noise_tile() -> np.ndarray:
    """A fixed 64x64 smooth noise pattern in [-1, 1] (same in every process, so output stays deterministic)."""
    global _NOISE_TILE
    if _NOISE_TILE is None:
        rng = np.random.default_rng(12345)
        big = np.tile(rng.normal(size=(64, 64)).astype(np.float32), (3, 3))  # blur a 3x3 tiling: seamless
        tile = cv2.GaussianBlur(big, (0, 0), 1.5)[64:128, 64:128]
        _NOISE_TILE = tile / np.abs(tile).max()
    return _NOISE_TILE


class Layer:
    """A rectangle of the frame (origin x0, y0) holding premultiplied colour, coverage and the id buffer."""

    def __init__(self, x0: int, y0: int, w: int, h: int, col: np.ndarray | None = None):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.col = np.zeros((h, w, 3), np.float32) if col is None else col  # (h, w, 3) BGR, premultiplied
        self.alpha = np.zeros((h, w), np.float32)
        self.ids = np.zeros((h, w), np.int32)

    def window(self, x_min: float, y_min: float, x_max: float, y_max: float) -> tuple[int, int, int, int] | None:
        """Integer layer-local box (x0, y0, x1, y1), exclusive end, of pixels with centres in the given range."""
        x0 = max(int(math.ceil(x_min)) - self.x0, 0)
        y0 = max(int(math.ceil(y_min)) - self.y0, 0)
        x1 = min(int(math.floor(x_max)) - self.x0 + 1, self.w)
        y1 = min(int(math.floor(y_max)) - self.y0 + 1, self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def grid(self, win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates of the pixel centres in a window: x as (1, w), y as (h, 1), for broadcasting."""
        x0, y0, x1, y1 = win
        xs = np.arange(x0 + self.x0, x1 + self.x0, dtype=np.float32)
        ys = np.arange(y0 + self.y0, y1 + self.y0, dtype=np.float32)
        return xs[None, :], ys[:, None]

    def paint(self, win: tuple[int, int, int, int], cov: np.ndarray, colour: np.ndarray, code: int) -> None:
        """Paint `colour` (h, w, 3) with coverage `cov` (h, w) over the window; ids where coverage > 0.5."""
        x0, y0, x1, y1 = win
        col = self.col[y0:y1, x0:x1]
        col += (colour - col) * cov[..., None]
        alpha = self.alpha[y0:y1, x0:x1]
        alpha += cov * (1 - alpha)
        ids = self.ids[y0:y1, x0:x1]
        ids[cov > 0.5] = code


def _texture(u: np.ndarray, v: np.ndarray, kind: str, period: float, amp: float) -> np.ndarray:
    """Brightness multiplier (h, w) for a pattern in part-local coordinates u (along), v (across), body units."""
    if kind == "stripes":
        return 1.0 + amp * np.tanh(3 * np.sin(2 * np.pi * u / period))
    if kind == "checks":
        return 1.0 + amp * np.sign(np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))
    if kind == "noise":
        tile = noise_tile()
        iu = (np.floor(u / period * 8).astype(np.int64)) % tile.shape[1]
        iv = (np.floor(v / period * 8).astype(np.int64)) % tile.shape[0]
        return 1.0 + 1.5 * amp * tile[iv, iu]
    return None


def _shade(colour, shading: np.ndarray, pattern: np.ndarray | None) -> np.ndarray:
    """(h, w, 3) colour image: a base colour times shading and (optional) texture brightness."""
    if pattern is not None:
        shading = shading * pattern
    out = np.asarray(colour, np.float32) * shading[..., None]
    return np.minimum(out, 255.0, out=out)


def draw_capsule(layer: Layer, p0, p1, r: float, colour, code: int, unit: float,
                 texture: tuple[str, float, float] = ("plain", 1.0, 0.0)) -> None:
    """A rounded limb from p0 to p1 with radius r pixels, cylinder-shaded and textured (unit = px per body h)."""
    r = max(r, 0.7)
    x_min, x_max = min(p0[0], p1[0]) - r - 1, max(p0[0], p1[0]) + r + 1
    y_min, y_max = min(p0[1], p1[1]) - r - 1, max(p0[1], p1[1]) + r + 1
    win = layer.window(x_min, y_min, x_max, y_max)
    if win is None:
        return
    gx, gy = layer.grid(win)
    dx, dy = float(p1[0] - p0[0]), float(p1[1] - p0[1])
    length = math.hypot(dx, dy)
    if length < 1e-6:
        ux, uy = 1.0, 0.0
    else:
        ux, uy = dx / length, dy / length
    rx, ry = gx - np.float32(p0[0]), gy - np.float32(p0[1])
    along = rx * np.float32(ux) + ry * np.float32(uy)  # (h, w)
    across = ry * np.float32(ux) - rx * np.float32(uy)
    beyond = along - np.minimum(np.maximum(along, 0.0), np.float32(length))
    cov = np.float32(r + 0.5) - np.sqrt(beyond * beyond + across * across)
    np.minimum(np.maximum(cov, 0.0, out=cov), 1.0, out=cov)
    if not cov.any():
        return
    frac = np.minimum(np.abs(across) / np.float32(r), 1.0)
    shading = 1.0 - 0.35 * frac * frac
    pattern = None if texture[0] == "plain" else _texture(along / unit, across / unit, *texture)
    layer.paint(win, cov, _shade(colour, shading, pattern), code)


def draw_ellipse(layer: Layer, centre, a: float, b: float, axis, colour, code: int) -> None:
    """A filled ellipse: half-axis `b` along the unit vector `axis`, `a` across it; lightly shaded."""
    a, b = max(a, 0.7), max(b, 0.7)
    ext = max(a, b) + 1
    win = layer.window(centre[0] - ext, centre[1] - ext, centre[0] + ext, centre[1] + ext)
    if win is None:
        return
    gx, gy = layer.grid(win)
    rx, ry = gx - centre[0], gy - centre[1]
    along = rx * axis[0] + ry * axis[1]
    across = -rx * axis[1] + ry * axis[0]
    rho = np.sqrt((along / b) ** 2 + (across / a) ** 2)
    cov = np.clip(0.5 - (rho - 1.0) * min(a, b), 0.0, 1.0)
    if not np.any(cov > 0):
        return
    shading = 1.0 - 0.25 * np.minimum(rho, 1.0) ** 2
    layer.paint(win, cov, _shade(colour, shading, None), code)


def draw_polygon(layer: Layer, pts: np.ndarray, colour, code: int, unit: float = 1.0,
                 texture: tuple[str, float, float] = ("plain", 1.0, 0.0), axis=(0.0, 1.0), origin=(0.0, 0.0)) -> None:
    """A filled convex polygon (pts (n, 2) image coordinates), anti-aliased, textured along `axis` from `origin`
    (so the pattern moves with the object)."""
    pts = np.asarray(pts, np.float64)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    win = layer.window(hull[:, 0].min() - 1, hull[:, 1].min() - 1, hull[:, 0].max() + 1, hull[:, 1].max() + 1)
    if win is None:
        return
    x0, y0, x1, y1 = win
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    local = np.round((hull - [x0 + layer.x0, y0 + layer.y0]) * 16).astype(np.int32)
    cv2.fillConvexPoly(mask, local, 255, lineType=cv2.LINE_AA, shift=4)
    cov = mask.astype(np.float32) / 255.0
    if not np.any(cov > 0):
        return
    gx, gy = layer.grid(win)
    rx, ry = gx - origin[0], gy - origin[1]
    along = rx * axis[0] + ry * axis[1]
    across = -rx * axis[1] + ry * axis[0]
    pattern = _texture(along / unit, across / unit, *texture)
    layer.paint(win, cov, _shade(colour, np.ones_like(cov), pattern), code)


@dataclass
class PersonGeometry:
    """A person's body points at one instant in image pixels. `z` is depth within the body (larger = farther),
    `unit` the pixels per body height, `depth` the person's distance (for ordering people)."""

    pts: np.ndarray  # (NUM_POINTS, 2)
    z: np.ndarray  # (NUM_POINTS,)
    unit: float
    depth: float

    def bounds(self) -> tuple[float, float, float, float]:
        pad = 0.09 * self.unit + 2
        return (self.pts[:, 0].min() - pad, self.pts[:, 1].min() - pad,
                self.pts[:, 0].max() + pad, self.pts[:, 1].max() + pad)

    def head_ellipse(self, person: Person3D) -> tuple[np.ndarray, float, float, np.ndarray]:
        """Centre, half-width, half-height and unit axis (pointing up the head) of the head outline."""
        c = self.pts[HEAD_CENTRE]
        axis = self.pts[SLOT["head_top"]] - self.pts[SLOT["head_bottom"]]
        n = np.linalg.norm(axis)
        axis = axis / n if n > 1e-6 else np.array([0.0, -1.0])
        return c, person.shape.head_w * 0.55 * self.unit, person.shape.head_h * 0.52 * self.unit, axis

    def head_box(self, person: Person3D) -> tuple[float, float, float, float]:
        """Axis-aligned (x, y, w, h) box around the head outline (PoseTrack's bbox_head, used for PCKh)."""
        c, a, b, axis = self.head_ellipse(person)
        cos, sin = abs(axis[1]), abs(axis[0])  # angle of the head axis from vertical
        ex = math.sqrt((a * cos) ** 2 + (b * sin) ** 2)
        ey = math.sqrt((a * sin) ** 2 + (b * cos) ** 2)
        return (float(c[0] - ex), float(c[1] - ey), float(2 * ex), float(2 * ey))


def draw_person(layer: Layer, g: PersonGeometry, person: Person3D, base: int) -> None:
    """Draw all body parts far-to-near (painter's order by depth), ids = base + part code."""
    s, look, p, z, u = person.shape, person.look, g.pts, g.z, g.unit
    parts: list[tuple[float, int]] = []  # (depth, index into drawers)
    drawers = []

    def add(depth: float, fn) -> None:
        parts.append((depth, len(drawers)))
        drawers.append(fn)

    box = np.array([p[i] for i in TORSO_BOX])
    torso_axis = p[SHOULDER_MID] - p[PELVIS]
    n = np.linalg.norm(torso_axis)
    torso_axis = torso_axis / n if n > 1e-6 else np.array([0.0, -1.0])
    add(float(np.mean(z[list(TORSO_BOX)])),
        lambda: draw_polygon(layer, box, look.shirt, base + TORSO, u, look.textures["torso"], tuple(torso_axis),
                             tuple(p[PELVIS])))
    add(float(z[SLOT["head_bottom"]]) + 0.01,
        lambda: draw_capsule(layer, p[SHOULDER_MID], p[SLOT["head_bottom"]], s.r_neck * u, look.skin, base + NECK, u))

    def head() -> None:
        c, a, b, axis = g.head_ellipse(person)
        hair_c = p[HAIR]
        hair_front = z[HAIR] < z[HEAD_CENTRE]
        hair_b = b * (0.55 + 0.35 * look.hair_style)
        if not hair_front:
            draw_ellipse(layer, hair_c, a * 1.06, hair_b * 1.05, axis, look.hair, base + HEAD)
        draw_ellipse(layer, c, a, b, axis, look.skin, base + HEAD)
        for eye in (L_EYE, R_EYE):
            if z[eye] < z[HEAD_CENTRE] - 0.02:
                draw_capsule(layer, p[eye], p[eye], max(0.012 * u, 0.6), (30, 30, 30), base + HEAD, u)
        if hair_front:
            draw_ellipse(layer, hair_c, a * 1.02, hair_b, axis, look.hair, base + HEAD)

    add(float(z[HEAD_CENTRE]), head)
    nose = SLOT["nose"]
    nose_col = tuple(c * 0.8 for c in look.skin)
    add(float(z[nose]), lambda: draw_capsule(layer, p[nose], p[nose], 0.016 * u, nose_col, base + NOSE, u))

    for side, name, cols in ((0, "left", look.left), (1, "right", look.right)):
        ua, fa, hand, th, sh, foot = ((L_UPPER_ARM, L_FOREARM, L_HAND_PART, L_THIGH, L_SHIN, L_FOOT) if side == 0
                                      else (R_UPPER_ARM, R_FOREARM, R_HAND_PART, R_THIGH, R_SHIN, R_FOOT))
        shoulder, elbow, wrist = SLOT[f"{name}_shoulder"], SLOT[f"{name}_elbow"], SLOT[f"{name}_wrist"]
        hip, knee, ankle = SLOT[f"{name}_hip"], SLOT[f"{name}_knee"], SLOT[f"{name}_ankle"]
        hand_pt, toe = (L_HAND, L_TOE) if side == 0 else (R_HAND, R_TOE)
        segments = (
            (shoulder, elbow, s.r_upper_arm, cols["upper_arm"], base + ua, look.textures["upper_arm"]),
            (elbow, wrist, s.r_forearm, cols["forearm"], base + fa, look.textures["forearm"]),
            (hand_pt, hand_pt, s.r_hand, look.skin, base + hand, ("plain", 1.0, 0.0)),
            (hip, knee, s.r_thigh, cols["thigh"], base + th, look.textures["thigh"]),
            (knee, ankle, s.r_shin, cols["shin"], base + sh, look.textures["shin"]),
            (ankle, toe, s.r_foot, look.shoe, base + foot, ("plain", 1.0, 0.0)),
        )
        for a_i, b_i, radius, colour, code, tex in segments:
            depth = float(z[a_i] + z[b_i]) / 2
            add(depth, lambda a_i=a_i, b_i=b_i, radius=radius, colour=colour, code=code, tex=tex: draw_capsule(
                layer, p[a_i], p[b_i], radius * u, colour, code, u, tex))

    for _, k in sorted(parts, key=lambda dk: -dk[0]):
        drawers[k]()


def composite(frame: Layer, layer: Layer, ids: np.ndarray | None = None, id_alpha: np.ndarray | None = None) -> None:
    """Lay a person layer (premultiplied colour, coverage) over the frame. `ids` (layer-sized) are copied where
    `id_alpha` (default: the layer's coverage) is above 0.5: with motion blur, the ids of the exposure's centre
    instant are used while the colour is the average over the exposure."""
    x0, y0 = layer.x0 - frame.x0, layer.y0 - frame.y0
    sl = (slice(y0, y0 + layer.h), slice(x0, x0 + layer.w))
    a = layer.alpha[..., None]
    frame.col[sl] = frame.col[sl] * (1 - a) + layer.col
    if ids is not None:
        target = frame.ids[sl]
        own = ((layer.alpha if id_alpha is None else id_alpha) > 0.5) & (ids > 0)
        target[own] = ids[own]


# ----------------------------------------------------------------------------------------------------------------
# backgrounds and objects


def make_background(rng: np.random.Generator, width: int, height: int, horizon: float) -> np.ndarray:
    """A textured scene (height, width, 3) float32: sky or facades above `horizon`, textured ground below,
    random distractor shapes, large-scale shading and fine noise."""
    img = np.zeros((height, width, 3), np.float32)
    hz = int(np.clip(horizon, 1, height - 1))
    top = np.array(_rand_colour(rng, sat=(20, 120), val=(120, 240)), np.float32)
    top2 = np.array(_rand_colour(rng, sat=(20, 120), val=(80, 220)), np.float32)
    ramp = np.linspace(0, 1, hz, dtype=np.float32)[:, None, None]
    img[:hz] = top * (1 - ramp) + top2 * ramp
    ground = np.array(_rand_colour(rng, sat=(10, 110), val=(60, 190)), np.float32)
    img[hz:] = ground
    # facades with windows
    x = -rng.uniform(0, 40)
    while x < width and rng.random() < 0.8:
        bw = rng.uniform(0.08, 0.3) * width
        bh = rng.uniform(0.3, 1.0) * hz
        col = _rand_colour(rng, sat=(0, 140), val=(60, 220))
        x0, x1, y0 = int(x), int(x + bw), int(hz - bh)
        cv2.rectangle(img, (x0, y0), (x1, hz), col, -1)
        win_col = _rand_colour(rng, sat=(0, 120), val=(30, 250))
        step = rng.uniform(8, 22)
        for wy in np.arange(y0 + step / 2, hz - step / 2, step):
            for wx in np.arange(x0 + step / 2, x1 - step / 2, step):
                cv2.rectangle(img, (int(wx), int(wy)), (int(wx + step * 0.5), int(wy + step * 0.6)), win_col, -1)
        x += bw + rng.uniform(0, 60)
    # ground texture: tiles or stripes
    if rng.random() < 0.6:
        line = _rand_colour(rng, sat=(0, 80), val=(40, 220))
        step = rng.uniform(10, 40)
        for gy in np.arange(hz, height, step):
            cv2.line(img, (0, int(gy)), (width, int(gy)), line, 1, cv2.LINE_AA)
        slant = rng.uniform(-1.5, 1.5)
        for gx in np.arange(-width, 2 * width, step * 1.5):
            cv2.line(img, (int(gx), hz), (int(gx + slant * (height - hz)), height), line, 1, cv2.LINE_AA)
    # distractor shapes (some saturated, like posters, trees, bins)
    for _ in range(rng.integers(6, 18)):
        col = _rand_colour(rng, sat=(0, 255), val=(30, 250))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        if rng.random() < 0.5:
            axes = (int(rng.uniform(4, 40)), int(rng.uniform(4, 40)))
            cv2.ellipse(img, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, col, -1, cv2.LINE_AA)
        else:
            w, h = rng.uniform(4, 50), rng.uniform(4, 50)
            cv2.rectangle(img, (int(cx), int(cy)), (int(cx + w), int(cy + h)), col, -1)
    # large-scale shading and fine grain
    low = rng.normal(0, 1, (max(2, height // 24), max(2, width // 24))).astype(np.float32)
    low = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    img *= (1.0 + 0.12 * low)[..., None]
    grain = cv2.GaussianBlur(rng.normal(0, 8, (height, width)).astype(np.float32), (0, 0), 0.8)
    img += grain[..., None]
    return np.clip(img, 0, 255)


def _rand_colour(rng: np.random.Generator, sat=(0, 255), val=(0, 255)) -> tuple[float, float, float]:
    from stdpose.data.synthetic_body import _hsv

    return _hsv(rng.uniform(0, 180), rng.uniform(*sat), rng.uniform(*val))


@dataclass
class SceneObject:
    """A convex object in scene coordinates (outline (n, 2) at time 0) moving with velocity (vx, vy) px/frame."""

    outline: np.ndarray
    colour: tuple[float, float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    texture: tuple[str, float, float] = ("plain", 1.0, 0.0)
    stripe_unit: float = 20.0

    def at(self, t: float) -> np.ndarray:
        return self.outline + np.array(self.velocity) * t


def sample_object(rng: np.random.Generator, x_centre: float, ground_y: float, height: float,
                  moving: bool) -> SceneObject:
    """A pole, box, bush or vehicle standing on the ground line `ground_y` (scene px); `height` = frame height."""
    kind = rng.choice(["pole", "box", "bush", "sign", "vehicle"], p=[0.2, 0.3, 0.2, 0.1, 0.2])
    if moving:
        kind = "vehicle"
    if kind == "pole":
        w, h = rng.uniform(0.025, 0.06) * height, ground_y + 10
        outline = _rect(x_centre, ground_y, w, h)
    elif kind == "box":
        outline = _rect(x_centre, ground_y, rng.uniform(0.12, 0.4) * height, rng.uniform(0.15, 0.45) * height)
    elif kind == "bush":
        ax, ay = rng.uniform(0.1, 0.25) * height, rng.uniform(0.08, 0.2) * height
        ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        outline = np.stack([x_centre + ax * np.cos(ang), ground_y - ay * 0.6 + ay * np.sin(ang)], axis=1)
    elif kind == "sign":
        w, h = rng.uniform(0.15, 0.35) * height, rng.uniform(0.12, 0.25) * height
        top = ground_y - rng.uniform(0.45, 0.75) * height
        outline = _rect(x_centre, top + h, w, h)
    else:
        outline = _rect(x_centre, ground_y, rng.uniform(0.5, 0.9) * height, rng.uniform(0.25, 0.4) * height)
    velocity = (rng.choice([-1, 1]) * rng.uniform(1.5, 5.0) * height / 240, 0.0) if moving else (0.0, 0.0)
    tex = ("stripes", rng.uniform(0.5, 2.0), rng.uniform(0.05, 0.25)) if rng.random() < 0.5 else (
        "noise", rng.uniform(0.5, 2.0), rng.uniform(0.1, 0.3))
    colour = _rand_colour(rng, sat=(0, 255), val=(40, 230))
    return SceneObject(outline, colour, velocity, tex, stripe_unit=height / 10)


def _rect(x_centre: float, bottom: float, w: float, h: float) -> np.ndarray:
    return np.array([[x_centre - w / 2, bottom - h], [x_centre + w / 2, bottom - h],
                     [x_centre + w / 2, bottom], [x_centre - w / 2, bottom]])


def draw_object(layer: Layer, obj: SceneObject, t: float, camera: np.ndarray, code: int) -> None:
    """Draw an object under the 2x3 camera matrix (scene -> image)."""
    pts = obj.at(t) @ camera[:, :2].T + camera[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(camera[:, :2]))))
    draw_polygon(layer, pts, obj.colour, code, obj.stripe_unit * scale, obj.texture, axis=(1.0, 0.0),
                 origin=tuple(pts[0]))
