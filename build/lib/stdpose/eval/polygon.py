"""Point-in-ignore-region test, exactly poseval's: shapely/GEOS `Polygon.contains(Point)`.

poseval removes every ground-truth and predicted joint that lies inside an ignore region. It builds a
`shapely.geometry.Polygon` from the region's vertices and asks `contains`, which is true only for points strictly
inside: a point on the boundary (an edge or a vertex) is NOT removed. We call the same predicate (vectorised
`shapely.contains_xy`), so joints on or within rounding distance of an edge get poseval's answer; GEOS decides
orientation with exact arithmetic, which a float re-implementation does not match for non-integer vertices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely


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

    The ring is closed implicitly (as shapely closes it). Unusable rings (see `ring_is_usable`) contain nothing.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0 or not ring_is_usable(xs, ys):
        return np.zeros(len(points), dtype=bool)
    polygon = shapely.Polygon(np.column_stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)]))
    return np.asarray(shapely.contains_xy(polygon, points[:, 0], points[:, 1]), dtype=bool)


def points_in_regions(points: np.ndarray, regions: Sequence[tuple[Sequence[float], Sequence[float]]]) -> np.ndarray:
    """(N,) bool: which points lie strictly inside any of the ignore regions (each a (xs, ys) pair)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hit = np.zeros(len(points), dtype=bool)
    for xs, ys in regions:
        hit |= points_strictly_inside(points, xs, ys)
    return hit
