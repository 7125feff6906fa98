"""Writing a figure: PNG + SVG + the data behind it as CSV, each file atomically."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neurorl_cli.atomic import write_text, write_with

SEED_COLORS = "tab10"
# neurogym sets rcParams["font.family"] = "arial" when imported, a font most systems lack
# (one warning per text drawn); our figures pin a family every system has.
STYLE = {"font.family": "DejaVu Sans", "svg.fonttype": "none"}


def styled(fn):
    """Run a figure function under our rc settings, whatever others changed globally."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


@dataclass
class FigureFiles:
    png: Path
    svg: Path
    csv: Path

    def all(self) -> list[Path]:
        return [self.png, self.svg, self.csv]


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (6.4, 4.0), **kwargs):
    """A figure on the Agg canvas, detached from pyplot (no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kwargs)
    return fig, axes


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    write_text(Path(path), frame.to_csv(index=False))
    return Path(path)


def save(fig, data: pd.DataFrame, out_dir: Path, stem: str, dpi: int = 120) -> FigureFiles:
    out_dir = Path(out_dir)
    files = FigureFiles(out_dir / f"{stem}.png", out_dir / f"{stem}.svg", out_dir / f"{stem}.csv")
    write_with(files.png, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi), suffix=".png")
    write_with(files.svg, lambda tmp: fig.savefig(tmp, format="svg"), suffix=".svg")
    write_csv(data, files.csv)
    return files


def lone_point(x) -> dict:
    """Plot settings for a series: a line through a single point draws nothing (a run that has
    logged once would leave a blank figure), so such a series is drawn as a marker."""
    return {"marker": "o", "ms": 5} if len(x) == 1 else {}


def seed_color(index: int):
    from matplotlib import colormaps

    return colormaps[SEED_COLORS](index % 10)
