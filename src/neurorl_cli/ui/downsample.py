"""Curves made small enough for a browser, and seeds put on one step grid.

A 16-seed run logs hundreds of thousands of points per metric; a chart needs a few hundred
per line to look the same. Largest-Triangle-Three-Buckets (Steinarsson 2013) keeps the points
that shape the line (peaks, drops) where plain striding would skip them, and always keeps the
first and last point, so a curve still starts and ends where the data does.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 600  # per line drawn: more than a chart's width in pixels gains nothing visible
MAX_GRID = 2000  # steps at which seeds are compared (their own steps when they share fewer)


def lttb_indices(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most `limit` points of (x, y) that keep its shape; first and last kept."""
    n = len(x)
    if limit < 3:
        raise ValueError("limit must be at least 3 (the first, the last and one between)")
    if n <= limit:
        return np.arange(n)
    x = np.asarray(x, dtype=float)
    y = np.nan_to_num(np.asarray(y, dtype=float))
    # The points between the ends fall into limit - 2 buckets of (nearly) equal size.
    edges = np.linspace(1, n - 1, limit - 1).astype(int)
    chosen = [0]
    for b in range(limit - 2):
        start, stop = edges[b], edges[b + 1]
        nxt_start, nxt_stop = edges[b + 1], (edges[b + 2] if b + 2 < len(edges) else n)
        # The next bucket's average point (the last bucket's "next" is the final point).
        ax, ay = x[chosen[-1]], y[chosen[-1]]
        cx, cy = x[nxt_start:nxt_stop].mean(), y[nxt_start:nxt_stop].mean()
        bx, by = x[start:stop], y[start:stop]
        area = np.abs((ax - cx) * (by - ay) - (ax - bx) * (cy - ay))
        chosen.append(start + int(np.argmax(area)))
    chosen.append(n - 1)
    return np.asarray(chosen)


def downsample(x, y, limit: int = MAX_POINTS) -> tuple[list, list]:
    """(x, y) as lists of at most `limit` points (LTTB)."""
    x, y = np.asarray(x), np.asarray(y, dtype=float)
    keep = lttb_indices(x, y, limit)
    return json_numbers(x[keep]), json_numbers(y[keep])


def common_grid(steps_per_seed: list[np.ndarray], limit: int = MAX_GRID) -> np.ndarray:
    """The steps at which seeds are compared: every step any seed logged when there are at most
    `limit` of them (seeds that log at the same steps are then compared exactly), else `limit`
    evenly spaced steps over the whole range."""
    nonempty = [np.asarray(s) for s in steps_per_seed if len(s)]
    if not nonempty:
        return np.array([], dtype=float)
    union = np.unique(np.concatenate(nonempty))
    if len(union) <= limit:
        return union.astype(float)
    return np.linspace(union[0], union[-1], limit)


def on_grid(steps: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A seed's values at the grid's steps, linearly between its own; NaN outside the steps it
    logged (a seed that has not got that far yet is left out there, not extrapolated)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    found = np.full(len(grid), np.nan)
    if not len(steps):
        return found
    inside = (grid >= steps[0]) & (grid <= steps[-1])
    found[inside] = np.interp(grid[inside], steps, values)
    return found


def json_numbers(values: np.ndarray) -> list:
    """JSON-ready numbers: NaN and infinities become null (JSON has no NaN)."""
    out = []
    for v in values.tolist():
        out.append(None if isinstance(v, float) and not np.isfinite(v) else v)
    return out
