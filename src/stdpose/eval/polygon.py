"""Point-in-ignore-region test with the semantics poseval gets from shapely/GEOS `Polygon.contains(Point)`.

poseval removes every ground-truth and predicted joint that lies inside an ignore region. It builds a
`shapely.geometry.Polygon` from the region's vertices and asks `contains`, which is true only for points strictly
inside: a point on the boundary (an edge or a vertex) is NOT removed. GEOS locates the point with a ray-crossing
count (`RayCrossingCounter`): an odd number of crossings of a ray to the right means inside, and points found on
an edge are boundary. This module re-implements that count, vectorised over points, so no geometry library is
needed. Orientation is computed in plain float64, which is exact for the integer pixel coordinates PoseTrack uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ring_is_usable(xs: Sequence[float], ys: Sequence[float]) -> bool:
    """True when shapely would accept the ring: at least 4 coordinates once closed (3 distinct-ish vertices).

    poseval crashes on smaller rings (shapely raises); stdpose treats them as containing nothing.
    """
    n = len(xs)
    if n == 0 or n != len(ys):
        return False
    closed = xs[0] == xs[-1] and ys[0] == ys[-1]
    return (n if closed else n + 1) >= 4


def points_strictly_inside(points: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """(N,) bool: which of `points` (N, 2) lie strictly inside the polygon with vertices (xs, ys).

    The ring is closed implicitly. Unusable rings (see `ring_is_usable`) contain nothing.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(points), dtype=bool)
    if len(points) == 0 or not ring_is_usable(xs, ys):
        return inside
    vx = np.asarray(xs, dtype=np.float64)
    vy = np.asarray(ys, dtype=np.float64)
    # segments p1 -> p2, including the closing one (a zero-length closing segment changes nothing)
    x1, y1 = vx[:, None], vy[:, None]  # (S, 1)
    x2, y2 = np.roll(vx, -1)[:, None], np.roll(vy, -1)[:, None]
    px, py = points[None, :, 0], points[None, :, 1]  # (1, N)

    relevant = ~((x1 < px) & (x2 < px))  # segments entirely left of the point never count
    at_vertex = relevant & (px == x2) & (py == y2)
    horizontal = relevant & ~at_vertex & (y1 == py) & (y2 == py)
    on_horizontal = horizontal & (px >= np.minimum(x1, x2)) & (px <= np.maximum(x1, x2))
    # upward edges include their start and exclude their end; downward edges the opposite
    straddles = relevant & ~at_vertex & ~horizontal & (((y1 > py) & (y2 <= py)) | ((y2 > py) & (y1 <= py)))
    cross = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)  # > 0: point left of p1->p2
    orient = np.sign(cross)
    on_edge = straddles & (orient == 0)
    orient = np.where(y2 < y1, -orient, orient)  # make every edge point upwards
    crossings = np.sum(straddles & (orient > 0), axis=0)  # (N,)
    on_boundary = np.any(at_vertex | on_horizontal | on_edge, axis=0)
    return (crossings % 2 == 1) & ~on_boundary


def points_in_regions(points: np.ndarray, regions: Sequence[tuple[Sequence[float], Sequence[float]]]) -> np.ndarray:
    """(N,) bool: which points lie strictly inside any of the ignore regions (each a (xs, ys) pair)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hit = np.zeros(len(points), dtype=bool)
    for xs, ys in regions:
        hit |= points_strictly_inside(points, xs, ys)
    return hit
