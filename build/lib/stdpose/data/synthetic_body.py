"""Articulated synthetic people for the procedural video generator: proportions, appearance, and motion as
continuous functions of time, giving 3D body points that `synthetic_render` projects and draws.

Why continuous time: motion blur averages a person over sub-frame instants, so every pose must be defined between
frames too. Body coordinates use body height = 1, x = the person's LEFT, y = DOWN, z = FORWARD.
Motion is deliberately fast and non-linear (limb periods of 4-16 frames, speed changes, turns) so that a pose 3
frames away from a label cannot be guessed by interpolating labels 7 frames apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stdpose.skeleton import SLOT

# Body points: the 17 PoseTrack18 slots first (ears included, never labeled), then drawing helpers.
PELVIS, SHOULDER_MID, HEAD_CENTRE, L_HAND, R_HAND, L_TOE, R_TOE, HAIR, L_EYE, R_EYE = range(17, 27)
TORSO_BOX = tuple(range(27, 35))  # 8 corners of the torso box (shoulder level then hip level)
NUM_POINTS = 35

MOTION_KINDS = ("walk", "run", "dance", "jacks", "wave", "punch")
LOCOMOTION = {"walk": 1.0, "run": 1.6, "dance": 0.25, "jacks": 0.0, "wave": 0.1, "punch": 0.15}

_DOWN = np.array([0.0, 1.0, 0.0])
_MIRROR_Z = np.diag([1.0, 1.0, -1.0])  # body (left, down, forward) -> camera (right, down, away) at yaw 0


def rot_x(a: float) -> np.ndarray:
    """Rotation about the body's left axis; positive angles swing a downward limb FORWARD."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    """Rotation about the vertical axis (turning)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    """Rotation about the forward axis; negative angles raise a downward limb towards the person's left."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class Shape:
    """Segment lengths and radii in body heights (randomised around adult proportions)."""

    head_h: float = 0.13
    head_w: float = 0.10
    neck: float = 0.035
    torso: float = 0.29
    shoulder_w: float = 0.22
    hip_w: float = 0.15
    torso_depth: float = 0.11
    upper_arm: float = 0.17
    forearm: float = 0.15
    hand: float = 0.055
    thigh: float = 0.245
    shin: float = 0.245
    foot: float = 0.07
    r_upper_arm: float = 0.032
    r_forearm: float = 0.026
    r_hand: float = 0.028
    r_thigh: float = 0.048
    r_shin: float = 0.036
    r_foot: float = 0.024
    r_neck: float = 0.03

    @staticmethod
    def sample(rng: np.random.Generator) -> Shape:
        s = Shape()
        for name in ("head_h", "neck", "torso", "upper_arm", "forearm", "thigh", "shin"):
            setattr(s, name, getattr(s, name) * rng.uniform(0.93, 1.07))
        girth = rng.uniform(0.85, 1.25)
        for name in ("shoulder_w", "hip_w", "torso_depth", "r_upper_arm", "r_forearm", "r_thigh", "r_shin"):
            setattr(s, name, getattr(s, name) * girth * rng.uniform(0.95, 1.05))
        s.head_w = s.head_h * rng.uniform(0.72, 0.82)
        return s


@dataclass
class Appearance:
    """Colours (BGR, 0-255) and texture choices. The LEFT limbs always have warm hues (red-yellow) and the RIGHT
    limbs cool hues (cyan-blue); the torso avoids both bands. This fixed convention makes left/right well-posed
    for a small model, like clothing asymmetries and body orientation do for humans in real videos."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shirt: tuple[float, float, float]
    shoe: tuple[float, float, float]
    left: dict[str, tuple[float, float, float]]  # part -> colour: upper_arm, forearm, thigh, shin
    right: dict[str, tuple[float, float, float]]
    textures: dict[str, tuple[str, float, float]]  # part -> (kind, period in body heights, amplitude)
    hair_style: float = 0.5  # how far the hair reaches down the back of the head

    @staticmethod
    def sample(rng: np.random.Generator) -> Appearance:
        skins = [(200, 220, 245), (150, 180, 225), (110, 140, 190), (70, 95, 140), (45, 65, 100)]
        skin = _jitter(rng, skins[rng.integers(len(skins))], 12)
        hairs = [(20, 20, 25), (30, 50, 80), (60, 110, 170), (120, 170, 210), (190, 190, 190), (40, 40, 120)]
        hair = _jitter(rng, hairs[rng.integers(len(hairs))], 10)
        # torso: greens / purples / greys, never the limb hue bands
        if rng.random() < 0.3:
            shirt = _hsv(rng.uniform(0, 180), rng.uniform(0, 40), rng.uniform(60, 230))
        else:
            hue = rng.uniform(40, 85) if rng.random() < 0.5 else rng.uniform(135, 165)
            shirt = _hsv(hue, rng.uniform(90, 230), rng.uniform(70, 230))
        shoe = _hsv(rng.uniform(0, 180), rng.uniform(0, 80), rng.uniform(20, 70))
        left, right = {}, {}
        for side, band in ((left, (0.0, 22.0)), (right, (95.0, 122.0))):
            hue = rng.uniform(*band)
            sat = rng.uniform(150, 255)
            val = rng.uniform(150, 245)
            leg_hue = float(np.clip(hue + rng.uniform(-6, 6), *band))
            leg_val = rng.uniform(95, 180)
            side["upper_arm"] = _hsv(hue, sat, val * 0.72)
            side["forearm"] = _hsv(hue, sat * 0.85, val)
            side["thigh"] = _hsv(leg_hue, rng.uniform(130, 255), leg_val * 0.8)
            side["shin"] = _hsv(leg_hue, rng.uniform(130, 255), min(255.0, leg_val * 1.15))
        kinds = ("plain", "stripes", "checks", "noise")
        textures = {}
        for part in ("torso", "upper_arm", "forearm", "thigh", "shin"):
            kind = kinds[rng.integers(len(kinds))]
            textures[part] = (kind, rng.uniform(0.025, 0.07), rng.uniform(0.1, 0.3))
        return Appearance(skin, hair, shirt, shoe, left, right, textures, hair_style=rng.uniform(0.2, 0.9))


def _jitter(rng: np.random.Generator, bgr, amount: float) -> tuple[float, float, float]:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in bgr)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    """OpenCV-scale HSV (h in [0, 180), s, v in [0, 255]) to a BGR float triple."""
    import cv2

    px = np.array([[[h % 180.0, np.clip(s, 0, 255), np.clip(v, 0, 255)]]], dtype=np.float32)
    px[..., 0] *= 2.0  # float HSV in OpenCV uses degrees
    px[..., 1:] /= 255.0
    bgr = cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0] * 255.0
    return tuple(float(c) for c in bgr)


@dataclass
class Angles:
    """Joint angles (radians) of one instant. Pairs are (left, right)."""

    sh_swing: tuple[float, float] = (0.0, 0.0)
    sh_abd: tuple[float, float] = (0.15, 0.15)
    elbow: tuple[float, float] = (0.2, 0.2)
    hip_swing: tuple[float, float] = (0.0, 0.0)
    hip_abd: tuple[float, float] = (0.04, 0.04)
    knee: tuple[float, float] = (0.05, 0.05)
    lean: float = 0.0
    sway: float = 0.0
    twist: float = 0.0
    tilt: float = 0.0
    hop: float = 0.0  # body heights above the ground


@dataclass
class Motion:
    """A motion family with its random parameters. `angles(t)` is smooth in t; the step rate changes over time
    (`warped`), which is what makes the pose between two labels 7 frames apart hard to interpolate."""

    kind: str
    period: float  # frames per cycle at the base rate
    phase0: float
    warp_a: float
    warp_w: float
    warp_c: float
    amp: dict[str, float] = field(default_factory=dict)
    osc: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (n, 3): amplitude, period, phase
    wave_side: int = 0

    @staticmethod
    def sample(rng: np.random.Generator, kind: str | None = None, calm: bool = False) -> Motion:
        kind = kind or MOTION_KINDS[rng.choice(len(MOTION_KINDS), p=[0.34, 0.14, 0.2, 0.1, 0.11, 0.11])]
        lo, hi = {"walk": (7, 16), "run": (5, 10), "dance": (6, 16), "jacks": (6, 12), "wave": (4, 9),
                  "punch": (5, 10)}[kind]  # fmt: skip
        d = math.radians
        amp = {
            "hip": d(rng.uniform(18, 38)),
            "knee": d(rng.uniform(25, 60)),
            "arm": d(rng.uniform(18, 50)),
            "elbow0": d(rng.uniform(5, 35)),
            "elbow": d(rng.uniform(15, 50)),
            "abd": d(rng.uniform(5, 20)),
            "lean": d(rng.uniform(0, 10)),
            "raise": d(rng.uniform(100, 165)),
        }
        if kind == "run":
            amp.update(hip=d(rng.uniform(35, 55)), knee=d(rng.uniform(60, 100)), arm=d(rng.uniform(35, 60)),
                       elbow0=d(rng.uniform(70, 100)), lean=d(rng.uniform(6, 16)))
        if calm:  # background crowd figures move gently
            amp = {k: v * 0.4 for k, v in amp.items()}
        # dance: per angle two oscillators (amplitude, period, phase)
        scale = 0.4 if calm else 1.0
        osc = np.stack([rng.uniform(0.3, 1.0, 16) * scale, rng.uniform(4, 16, 16), rng.uniform(0, 2 * math.pi, 16)],
                       axis=1)
        return Motion(
            kind=kind,
            period=rng.uniform(lo, hi) * (2.0 if calm else 1.0),
            phase0=rng.uniform(0, 2 * math.pi),
            warp_a=rng.uniform(0.0, 0.45),
            warp_w=2 * math.pi / rng.uniform(15, 50),
            warp_c=rng.uniform(0, 2 * math.pi),
            amp=amp,
            osc=osc,
            wave_side=int(rng.integers(2)),
        )

    def warped(self, t: float) -> float:
        """Time with a varying rate 1 + a sin(w t + c): the person speeds up and slows down."""
        return t - self.warp_a / self.warp_w * (math.cos(self.warp_w * t + self.warp_c) - math.cos(self.warp_c))

    def rate(self, t: float) -> float:
        return 1.0 + self.warp_a * math.sin(self.warp_w * t + self.warp_c)

    def _o(self, k: int, tau: float) -> float:
        a, p, c = self.osc[k]
        return a * math.sin(2 * math.pi * tau / p + c)

    def angles(self, t: float) -> Angles:
        tau = self.warped(t)
        ph = self.phase0 + 2 * math.pi * tau / self.period
        m, o = self.amp, self._o
        d = math.radians
        if self.kind in ("walk", "run"):
            pl, pr = ph, ph + math.pi
            knee = [d(5) + m["knee"] * (0.5 + 0.5 * math.sin(p + 1.3)) ** 2 for p in (pl, pr)]
            elb = [m["elbow0"] + m["elbow"] * (0.5 + 0.5 * math.sin(p + 0.5)) for p in (pl, pr)]
            hop = 0.035 * max(0.0, math.sin(2 * ph)) if self.kind == "run" else 0.0
            return Angles(
                sh_swing=(-m["arm"] * math.sin(pl), -m["arm"] * math.sin(pr)),
                sh_abd=(m["abd"], m["abd"]),
                elbow=(elb[0], elb[1]),
                hip_swing=(m["hip"] * math.sin(pl), m["hip"] * math.sin(pr)),
                knee=(knee[0], knee[1]),
                lean=m["lean"],
                sway=d(3) * math.sin(ph),
                twist=d(10) * math.sin(ph),
                hop=hop,
            )
        if self.kind == "dance":
            squat = max(0.0, 0.5 + 0.5 * o(8, tau)) * d(45)
            return Angles(
                sh_swing=(d(60) * o(0, tau) + d(20), d(60) * o(1, tau) + d(20)),
                sh_abd=(d(75) + d(70) * o(2, tau), d(75) + d(70) * o(3, tau)),
                elbow=(d(55) + d(55) * o(4, tau), d(55) + d(55) * o(5, tau)),
                hip_swing=(d(25) * o(6, tau) + squat * 0.7, d(25) * o(7, tau) + squat * 0.7),
                hip_abd=(d(6) + d(12) * abs(o(9, tau)), d(6) + d(12) * abs(o(10, tau))),
                knee=(squat + d(20) * abs(o(11, tau)), squat + d(20) * abs(o(12, tau))),
                lean=d(8) * o(13, tau),
                sway=d(12) * o(14, tau),
                twist=d(20) * o(15, tau),
                tilt=d(10) * o(13, tau),
            )
        if self.kind == "jacks":
            c = 0.5 - 0.5 * math.cos(ph)  # 0 closed .. 1 open
            return Angles(
                sh_swing=(d(5), d(5)),
                sh_abd=(d(10) + m["raise"] * c, d(10) + m["raise"] * c),
                elbow=(d(10) + d(20) * c, d(10) + d(20) * c),
                hip_abd=(d(3) + d(20) * c, d(3) + d(20) * c),
                knee=(d(10) * (1 - c), d(10) * (1 - c)),
                hop=0.05 * max(0.0, math.sin(2 * ph)),
            )
        if self.kind == "wave":
            up = self.wave_side
            raised = (m["raise"] + d(15) * o(0, tau), d(70) + d(45) * math.sin(ph))
            hang = (m["abd"] + d(10) * o(1, tau), m["elbow0"] + d(10) * o(2, tau))
            abd = (raised[0], hang[0]) if up == 0 else (hang[0], raised[0])
            elb = (raised[1], hang[1]) if up == 0 else (hang[1], raised[1])
            return Angles(
                sh_swing=(d(15) * o(3, tau), d(15) * o(4, tau)),
                sh_abd=abd,
                elbow=elb,
                hip_swing=(d(8) * o(5, tau), d(8) * o(6, tau)),
                knee=(d(8) + d(8) * abs(o(7, tau)), d(8) + d(8) * abs(o(8, tau))),
                sway=d(6) * math.sin(ph),
            )
        # punch: alternating forward punches with a stepping stance
        pl, pr = ph, ph + math.pi
        ext = [0.5 + 0.5 * math.sin(p) for p in (pl, pr)]  # 1 = arm extended
        return Angles(
            sh_swing=(d(30) + d(55) * ext[0], d(30) + d(55) * ext[1]),
            sh_abd=(d(12), d(12)),
            elbow=(d(130) * (1 - ext[0]) + d(5), d(130) * (1 - ext[1]) + d(5)),
            hip_swing=(d(20), d(-10)),
            knee=(d(25) + d(10) * o(0, tau), d(15) + d(10) * o(1, tau)),
            lean=d(8),
            twist=d(25) * math.sin(pl),
        )


def body_points(shape: Shape, a: Angles) -> np.ndarray:
    """(NUM_POINTS, 3) body-frame points (pelvis at the origin) for one set of joint angles."""
    s = shape
    p = np.zeros((NUM_POINTS, 3))
    up_rot = rot_z(a.sway) @ rot_x(-a.lean) @ rot_y(a.twist)
    p[PELVIS] = 0.0
    p[SLOT["left_hip"]] = (s.hip_w / 2, 0.0, 0.0)
    p[SLOT["right_hip"]] = (-s.hip_w / 2, 0.0, 0.0)
    mid = up_rot @ np.array([0.0, -s.torso, 0.0])
    p[SHOULDER_MID] = mid
    p[SLOT["left_shoulder"]] = mid + up_rot @ np.array([s.shoulder_w / 2, 0.0, 0.0])
    p[SLOT["right_shoulder"]] = mid + up_rot @ np.array([-s.shoulder_w / 2, 0.0, 0.0])
    neck = mid + up_rot @ np.array([0.0, -s.neck, 0.0])
    p[SLOT["head_bottom"]] = neck
    head_rot = up_rot @ rot_x(-a.tilt)
    hc = neck + head_rot @ np.array([0.0, -s.head_h / 2, 0.0])
    p[HEAD_CENTRE] = hc
    p[SLOT["head_top"]] = neck + head_rot @ np.array([0.0, -s.head_h * 0.96, 0.0])
    p[SLOT["nose"]] = hc + head_rot @ np.array([0.0, s.head_h * 0.1, s.head_w * 0.55])
    p[SLOT["left_ear"]] = hc + head_rot @ np.array([s.head_w * 0.5, 0.0, 0.0])
    p[SLOT["right_ear"]] = hc + head_rot @ np.array([-s.head_w * 0.5, 0.0, 0.0])
    p[L_EYE] = hc + head_rot @ np.array([s.head_w * 0.2, -s.head_h * 0.05, s.head_w * 0.45])
    p[R_EYE] = hc + head_rot @ np.array([-s.head_w * 0.2, -s.head_h * 0.05, s.head_w * 0.45])
    p[HAIR] = hc + head_rot @ np.array([0.0, -s.head_h * 0.18, -s.head_w * 0.22])
    # torso box: shoulder level then hip level, front and back
    k = 0
    for level, half in ((mid, s.shoulder_w / 2 + 0.015), (np.zeros(3), s.hip_w / 2 + 0.035)):
        rot = up_rot if level is mid else np.eye(3)
        for sx in (1.0, -1.0):
            for sz in (1.0, -1.0):
                p[TORSO_BOX[k]] = level + rot @ np.array([sx * half, 0.0, sz * s.torso_depth / 2])
                k += 1
    # arms and legs; side 0 = left (outward is +x), side 1 = right
    for side, sign in ((0, 1.0), (1, -1.0)):
        name = "left" if side == 0 else "right"
        sh = p[SLOT[f"{name}_shoulder"]]
        outward = rot_z(-sign * a.sh_abd[side])
        d_upper = up_rot @ outward @ rot_x(a.sh_swing[side]) @ _DOWN
        d_fore = up_rot @ outward @ rot_x(a.sh_swing[side] + a.elbow[side]) @ _DOWN
        el = sh + s.upper_arm * d_upper
        wr = el + s.forearm * d_fore
        p[SLOT[f"{name}_elbow"]] = el
        p[SLOT[f"{name}_wrist"]] = wr
        p[L_HAND if side == 0 else R_HAND] = wr + s.hand * 0.6 * d_fore
        hip = p[SLOT[f"{name}_hip"]]
        leg_out = rot_z(-sign * a.hip_abd[side])
        d_thigh = leg_out @ rot_x(a.hip_swing[side]) @ _DOWN
        shin_angle = a.hip_swing[side] - a.knee[side]
        d_shin = leg_out @ rot_x(shin_angle) @ _DOWN
        d_foot = leg_out @ rot_x(shin_angle + math.radians(85)) @ _DOWN
        kn = hip + s.thigh * d_thigh
        an = kn + s.shin * d_shin
        p[SLOT[f"{name}_knee"]] = kn
        p[SLOT[f"{name}_ankle"]] = an
        p[L_TOE if side == 0 else R_TOE] = an + s.foot * d_foot
    return p


@dataclass
class Person3D:
    """One synthetic person: shape, appearance, motion and a root trajectory over the video.

    The trajectory is sampled on a fine time grid (`grid`, 1/8 frame) because walking speed follows the turning
    direction and the step rate, which has no closed form. x is in world units (body heights) across the view,
    depth is the distance to the camera in the same units; the renderer turns these into pixels.
    """

    shape: Shape
    look: Appearance
    motion: Motion
    yaw0: float
    yaw_amp: float
    yaw_period: float
    yaw_c: float
    turns: list[tuple[float, float, float]]  # (time, duration, angle) of sudden turns
    speed: float  # body heights per frame at rate 1
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    xs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    depths: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def yaw(self, t: float) -> float:
        y = self.yaw0 + self.yaw_amp * math.sin(2 * math.pi * t / self.yaw_period + self.yaw_c)
        for t0, dur, ang in self.turns:
            u = min(1.0, max(0.0, (t - t0) / dur))
            y += ang * u * u * (3 - 2 * u)  # smoothstep
        return y

    def integrate(self, x0: float, depth0: float, t_end: float, depth_range: tuple[float, float],
                  depth_gain: float) -> None:
        """Walk the root along the facing direction from t = -1 to t_end + 1 (grid step 1/8 frame)."""
        step = 0.125
        self.grid = np.arange(-1.0, t_end + 1.0 + step, step)
        xs, ds = np.empty(len(self.grid)), np.empty(len(self.grid))
        x, dep = x0, depth0
        loco = LOCOMOTION[self.motion.kind]
        for i, t in enumerate(self.grid):
            xs[i], ds[i] = x, dep
            yaw = self.yaw(t)
            v = self.speed * loco * self.motion.rate(t) * step
            x += -math.sin(yaw) * v
            dep = min(max(dep - math.cos(yaw) * v * depth_gain, depth_range[0]), depth_range[1])
        # re-anchor so the root is at (x0, depth0) at t = 0
        i0 = int(round(1.0 / step))
        self.xs, self.depths = xs - xs[i0] + x0, np.clip(ds - ds[i0] + depth0, *depth_range)

    def root(self, t: float) -> tuple[float, float]:
        return float(np.interp(t, self.grid, self.xs)), float(np.interp(t, self.grid, self.depths))

    def world_points(self, t: float) -> np.ndarray:
        """(NUM_POINTS, 3) points at time t, turned by the yaw, in camera axes (x right, y down, z away), with the
        lowest foot point on the ground (y = 0) unless hopping. Units: body heights, relative to the root."""
        a = self.motion.angles(t)
        body = body_points(self.shape, a)
        world = body @ (rot_y(self.yaw(t)) @ _MIRROR_Z).T
        feet = world[[SLOT["left_ankle"], SLOT["right_ankle"], L_TOE, R_TOE], 1]
        sole = max(self.shape.r_foot, self.shape.r_shin * 0.8)
        world[:, 1] -= feet.max() + sole + a.hop
        return world


def sample_person(rng: np.random.Generator, kind: str | None = None, calm: bool = False) -> Person3D:
    """A random person (shape, look, motion, turning behaviour); the caller places and integrates it."""
    motion = Motion.sample(rng, kind, calm=calm)
    if motion.kind in ("walk", "run"):
        # mostly side-on or three-quarter views while walking across the image
        yaw0 = (math.pi / 2 if rng.random() < 0.5 else -math.pi / 2) + rng.uniform(-0.8, 0.8)
        yaw_amp = rng.uniform(0.0, 0.35)
    else:
        yaw0 = rng.uniform(-math.pi, math.pi)
        yaw_amp = rng.uniform(0.2, 1.4)
    turns = []
    if not calm and rng.random() < 0.35:
        turns.append((rng.uniform(0, 40), rng.uniform(3, 9), rng.choice([-1, 1]) * rng.uniform(1.5, 3.3)))
    return Person3D(
        shape=Shape.sample(rng),
        look=Appearance.sample(rng),
        motion=motion,
        yaw0=yaw0,
        yaw_amp=yaw_amp,
        yaw_period=rng.uniform(12, 40),
        yaw_c=rng.uniform(0, 2 * math.pi),
        turns=turns,
        speed=rng.uniform(0.008, 0.025),
    )
