"""Grids: a re-run trains only the missing cells; `runs matrix` shows task x model cells."""

from __future__ import annotations

import json

import pytest

from .conftest import cli

TINY = ["conditioning-fixed", "distributional-td", "--trials", "20", "--checkpoint-every", "10"]


@pytest.mark.slow
def test_grid_rerun_trains_only_missing_cells_and_matrix_counts_them(neurorl_home):
    first = cli("train", *TINY, "--set", "model.hyper.predictors=4,8", "--seeds", "0-1", "--jobs", "2", check=True)
    assert first.stdout.count(": completed") == 4
    again = cli("train", *TINY, "--set", "model.hyper.predictors=4,8,16", "--seeds", "0-1", "--jobs", "2", check=True)
    assert again.stdout.count("not trained again") == 4 and again.stdout.count(": completed") == 2
    runs = json.loads(cli("runs", "list", "--json", check=True).stdout)
    assert len(runs) == 6 and len({r["experiment"] for r in runs}) == 3

    (cell,) = json.loads(cli("runs", "matrix", "--json", check=True).stdout)
    assert (cell["task"], cell["model"], cell["seeds"], cell["completed"], cell["running"], cell["failed"]) == (
        "conditioning-fixed", "distributional-td", 6, 6, 0, 0)
    assert cell["best"] == {}
    cli("eval", "e2", "--all-checkpoints", "--trials", "50", check=True)
    (cell,) = json.loads(cli("runs", "matrix", "--json", check=True).stdout)
    best = cell["best"]["default"]
    assert best["select"] == "abs_td_error_mean" and best["higher_is_better"] is False and best["step"] in (10, 20)

    rows = json.loads(cli("runs", "matrix", "--experiments", "--json", check=True).stdout)
    assert [r["overrides"]["model.hyper.predictors"] for r in rows] == [4, 8, 16]
    assert [bool(r["best"]) for r in rows] == [False, True, False]
    table = cli("runs", "matrix", check=True).stdout
    assert "conditioning-fixed" in table and "6 / 0 / 0" in table
