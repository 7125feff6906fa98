"""Seeds of a metric as browser lines: each seed downsampled, and their mean with a 95%
interval on one step grid.

The interval is the report's (analysis.stats.bootstrap_ci: percentile bootstrap over seeds,
2000 resamples, generator seeded 0), so the page and `neurorl report` draw the same band;
it is computed for every grid step at once (the resampled means are one matrix product),
because a live page asks for it every few seconds.
"""

from __future__ import annotations

import numpy as np

from neurorl_cli.analysis.stats import BOOTSTRAP_SAMPLES
from neurorl_cli.ui.downsample import MAX_POINTS, json_numbers, common_grid, lttb_indices, on_grid

LEVEL = 0.95


def bootstrap_rows(values: np.ndarray, level: float = LEVEL, samples: int = BOOTSTRAP_SAMPLES) -> tuple[np.ndarray, ...]:
    """Mean, low and high of the percentile bootstrap interval of each row's mean, NaNs left out;
    per row the same numbers as `bootstrap_ci(row)` (same generator, same draws)."""
    values = np.asarray(values, dtype=float)
    rows = values.shape[0]
    mean, low, high = np.full(rows, np.nan), np.full(rows, np.nan), np.full(rows, np.nan)
    present = ~np.isnan(values)
    tail = (1 - level) / 2 * 100
    # Rows with the same seeds present share one set of resamples (as bootstrap_ci would draw).
    patterns, which = np.unique(present, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        n = int(pattern.sum())
        if n == 0:
            continue
        chosen = np.flatnonzero(which.ravel() == p)
        block = values[np.ix_(chosen, np.flatnonzero(pattern))]
        draws = np.random.default_rng(0).integers(0, n, size=(samples, n))
        counts = np.zeros((samples, n))
        np.add.at(counts, (np.arange(samples)[:, None], draws), 1)
        resampled = block @ counts.T / n  # (rows, samples): the mean of each resample
        mean[chosen] = block.mean(axis=1)
        low[chosen], high[chosen] = np.percentile(resampled, [tail, 100 - tail], axis=1)
    return mean, low, high


def seed_curves(series: dict[str, tuple[np.ndarray, np.ndarray]], limit: int = MAX_POINTS) -> dict:
    """`series`: label -> (steps, values) of each seed, steps ascending. The seeds downsampled,
    and over the common grid: mean, 95% interval and how many seeds each step has."""
    seeds = [{"label": label, "points": len(steps), **_xy(steps, values, limit)}
             for label, (steps, values) in series.items()]
    grid = common_grid([steps for steps, _ in series.values()])
    if not len(grid):
        return {"seeds": seeds, "summary": None}
    stacked = np.column_stack([on_grid(steps, values, grid) for steps, values in series.values()])
    mean, low, high = bootstrap_rows(stacked)
    n = (~np.isnan(stacked)).sum(axis=1)
    keep = lttb_indices(grid, mean, limit)
    summary = {"x": json_numbers(grid[keep]), "mean": json_numbers(mean[keep]), "low": json_numbers(low[keep]),
               "high": json_numbers(high[keep]), "n": n[keep].tolist(), "grid_points": len(grid)}
    return {"seeds": seeds, "summary": summary}


def within(steps: np.ndarray, values: np.ndarray, x0: float | None, x1: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The part of a curve a zoomed chart shows, with one point beyond each edge so that its
    lines still reach the edges: downsampled alone, it keeps the detail the zoom asks for."""
    if x0 is None and x1 is None:
        return steps, values
    lo = 0 if x0 is None else max(int(np.searchsorted(steps, x0, side="left")) - 1, 0)
    hi = len(steps) if x1 is None else int(np.searchsorted(steps, x1, side="right")) + 1
    return steps[lo:hi], values[lo:hi]


def _xy(steps, values, limit: int) -> dict:
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    keep = lttb_indices(steps, values, limit) if len(steps) else np.arange(0)
    return {"x": json_numbers(steps[keep]), "y": json_numbers(values[keep])}
