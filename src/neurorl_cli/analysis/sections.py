"""What every family's report sections are made of: figures added with their files, and the
scores of every evaluated checkpoint with each seed's best."""

from __future__ import annotations

from pathlib import Path

from neurorl_cli.analysis import checkpoints, html
from neurorl_cli.analysis.figures import FigureFiles

PANEL_SEED = 0  # the environment seed of panels when a protocol names none


def add_figure(section: html.Section, files: FigureFiles, caption: str, written: list[Path]) -> None:
    """The figure on the page, its PNG, SVG and CSV linked beside it and listed in `written`."""
    section.figure(files.png, caption, links=files.all(), data=files.csv)
    written.extend(files.all())


def score_sections(ctx, protocol: str) -> list[html.Section]:
    """The score of every evaluated checkpoint under a protocol, and each seed's best."""
    section = html.Section(f"Evaluation: protocol {protocol}")
    add_figure(section, checkpoints.checkpoint_curve(ctx.evaluations, ctx.out, protocol),
               f"Score of every evaluated checkpoint under {protocol}, per seed and mean.", ctx.written)
    return [section.text("Best checkpoint of each seed:").table(checkpoints.best_table(ctx.best(protocol)))]
