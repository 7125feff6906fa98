"""A family's own analyses (psychometric curves, accuracy by trial position, predictors' values,
gain generalisation, ...) as data for the browser, drawn from what is stored.

The family is asked through the same calls `neurorl report` makes (report.assemble.family_calls),
with the report's context, except that nothing replays a checkpoint: an analysis that needs to
play one (trial panels, trajectories, receptive fields, LSTM states) comes back as the family's
own notice, with the command that computes it, and the figures an earlier `neurorl report`
stored for the experiment are offered beside. Each block comes back as data (Section.items):
figures with the rows of their CSV, tables as rows, notices with their command. The figure
files go to a folder of the server's own, never beside the user's runs.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import threading
from pathlib import Path

import pandas as pd

from neurorl_cli import plugins
from neurorl_cli.api import Registry
from neurorl_cli.catalog import in_protocol_order
from neurorl_cli.registry import queries

MAX_ROWS = 5000  # rows of a figure's data sent to the browser (the full CSV stays linked)


class NotReplayed(ValueError):
    """What the page's context raises where the report would play a checkpoint. A ValueError,
    which every family already answers with a notice (as for a checkpoint file gone missing)."""


class Analyses:
    """The analyses of each experiment, computed when first asked and again only when its runs
    or evaluations changed (`version`)."""

    def __init__(self, registry: Registry, folder: Path):
        self.registry = registry
        self.folder = Path(folder)
        self._cache: dict[int, tuple[str, dict]] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def of(self, ref: str, version: str) -> dict:
        with self.registry.session() as session:
            exp = queries.target(session, ref).experiment
        with self._guard:
            lock = self._locks.setdefault(exp.id, threading.Lock())
        with lock:  # one computation per experiment at a time; the others wait for its result
            held = self._cache.get(exp.id)
            if held is None or held[0] != version:
                self._cache[exp.id] = (version, self._compute(ref))
            return self._cache[exp.id][1]

    def figure_file(self, experiment_id: int, name: str) -> Path | None:
        """A file this server drew for an experiment (the only files it serves from its folder)."""
        path = self.folder / f"e{experiment_id}" / name
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            return None
        return path

    def _compute(self, ref: str) -> dict:
        from neurorl_cli.report import assemble

        registry = self.registry
        with registry.session() as session:
            found = queries.target(session, ref)
            exp, runs = found.experiment, queries.latest_runs(found.runs)
            stored = queries.artifacts(session, exp.id, ("figure-png", "figure-csv"))
        config = exp.config
        family = plugins.family_of(config)
        evals = registry.evaluations([r.id for r in runs])
        evaluated = in_protocol_order(config["task"], set(evals["protocol"])) if len(evals) else []
        out = self.folder / f"e{exp.id}"
        written: list[Path] = []
        report = shlex.join(["neurorl", "report", queries.exp_ref(exp)])
        replayed: list[str] = []

        def not_replayed(*_args, **_kwargs):
            replayed.append("x")
            raise NotReplayed(f"this view plays no checkpoint; `{report}` computes it")

        def keep_nothing(path, kind, query) -> None:
            """The report records files it keeps for later reports; this view writes no registry row."""

        ctx = dataclasses.replace(assemble.report_context(registry, config, runs, evals, out, written),
                                  checkpoint_file=not_replayed, load_policy=not_replayed, register_file=keep_nothing)
        sections = []
        for call, sections_of in assemble.family_calls(family, ctx, evaluated):
            try:
                made = sections_of()
            except Exception as exc:  # noqa: BLE001  (one family's failing analysis must not take the page down)
                sections.append({"title": call, "items": [{"kind": "notice", "text": f"{family.name}.{call} failed: {exc}",
                                                            "command": report}], "from": call})
                continue
            sections.extend({"title": s.title, "items": [_item(i, exp.id) for i in s.items], "from": call} for s in made)
        drawn = {Path(p).stem for p in written}
        return {
            "experiment": queries.exp_ref(exp), "family": family.name, "sections": sections,
            "evaluated": evaluated,
            "command": report if replayed else None,
            "evaluate": None if evaluated else shlex.join(["neurorl", "eval", queries.exp_ref(exp), "--all-checkpoints"]),
            "stored": _stored_figures(stored, drawn),
        }


def _item(item: dict, experiment_id: int) -> dict:
    kind = item["kind"]
    if kind == "table":
        return {"kind": "table", **_rows(item["frame"])}
    if kind == "figure":
        image = Path(item["image"])
        # The figure's data is the CSV among its files (its `data` is the image, for the HTML page).
        csv = next((Path(f) for f in item["files"] if Path(f).suffix == ".csv"), None)
        return {
            "kind": "figure", "caption": item["caption"], "name": image.stem,
            "image": f"/figures/e{experiment_id}/{image.name}",
            "data": _rows(pd.read_csv(csv)) if csv is not None and csv.is_file() else None,
        }
    return {k: v for k, v in item.items()}  # text and notice are plain data already


def _rows(frame: pd.DataFrame) -> dict:
    """A table as columns and rows of JSON values (NaN as null), cut to MAX_ROWS."""
    cut = frame.head(MAX_ROWS)
    rows = [[_value(v) for v in row] for row in cut.itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in frame.columns], "rows": rows, "total_rows": len(frame)}


def _value(value):
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _stored_figures(artifacts: list, drawn: set[str]) -> list[dict]:
    """Figures an earlier `neurorl report` stored (newest of each name) that this view did not
    draw itself: the ones made by playing a checkpoint."""
    csvs = {Path(a.path).with_suffix(""): a for a in artifacts if a.kind == "figure-csv"}
    seen, out = set(), []
    for a in artifacts:
        stem = Path(a.path).stem
        if a.kind != "figure-png" or stem in drawn or stem in seen or not Path(a.path).is_file():
            continue
        seen.add(stem)
        csv = csvs.get(Path(a.path).with_suffix(""))
        out.append({"name": stem, "image": f"/stored/{a.id}", "data": f"/stored/{csv.id}" if csv else None,
                    "made_by": a.query, "created": a.created.isoformat()})
    return out
