"""Figures, report and watch of distributional-TD runs on conditioning schedules: a real run of the
backend (through the worker, as `neurorl train` starts it), then the figures checked against its arrays."""

from __future__ import annotations

import re
import tomllib

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from neurorl_cli.families.conditioning import analysis as conditioning
from neurorl_cli.interfaces import RunConfig
from neurorl_cli.engines.native.distributional_td import SIMULATION
from neurorl_cli.runlog import EVENTS, write_run_file
from neurorl_cli.worker import run_worker

from .conftest import REPO, cli

# Two trial types on a coarse grid; every parameter distributed, gamma in two groups.
SCHEDULE = {
    "dt": 0.5,
    "duration": 4.0,
    "trial_types": [
        {"name": "sure", "probability": 0.6, "cue_time": 1.0, "rewards": [{"time": 2.5, "size": {"kind": "fixed", "value": 3.0}}]},
        {"name": "maybe", "probability": 0.4, "cue_time": 1.5,
         "rewards": [{"time": 3.0, "size": {"kind": "normal", "mean": 2.0, "sd": 0.5}, "probability": 0.5}]},
    ],
}
HYPER = {"predictors": 6, "alpha": {"low": 0.2, "high": 0.8}, "gamma": [0.5, 0.9], "lambda": {"low": 0.1, "high": 0.9}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    task = tomllib.loads((REPO / "tasks/conditioning-fixed.toml").read_text())
    task.update(name="tiny-conditioning", schedule=SCHEDULE)
    model = tomllib.loads((REPO / "models/distributional-td.toml").read_text())
    model["hyper"] = HYPER
    config = {"task": task, "model": model, "budget": {"trials": 60, "checkpoint_every": 30}}
    run_dir = tmp_path_factory.mktemp("conditioning") / "run"
    write_run_file(run_dir, RunConfig(run_id=1, seed=3, attempt=1, config=config, run_dir=str(run_dir), device="cpu", threads=1).to_json())
    assert run_worker(run_dir) == 0, (run_dir / EVENTS).read_text()
    return conditioning.load_simulation(run_dir)


def _written(files) -> pd.DataFrame:
    for path in files.all():
        assert path.is_file() and path.stat().st_size > 0, path
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in files.svg.read_bytes()[:2000]
    return pd.read_csv(files.csv)


def test_load_simulation_of_an_unfinished_run_says_so(tmp_path):
    assert conditioning.SIMULATION == SIMULATION
    with pytest.raises(FileNotFoundError):
        conditioning.load_simulation(tmp_path)


def test_parameter_groups_match_within_the_tolerance():
    assert conditioning.param_groups(np.array([0.6, 0.3, 0.305, 0.8, 0.6])) == [0.3, 0.6, 0.8]
    assert conditioning.param_groups(np.array([0.2, 0.2])) == [0.2]


@pytest.mark.parametrize("colour_by, panel_by", [("tau", "gamma"), ("lambda", None), ("gamma", "lambda")])
def test_value_at_time_csv_is_the_value_at_the_cue(sim, tmp_path, colour_by, panel_by):
    for trial_type in (0, 1):
        cue = conditioning.cue_time(sim, trial_type)
        assert conditioning.time_index(sim, cue) == sim["cue_index"][trial_type]
        data = _written(conditioning.value_at_time(sim, trial_type, cue, colour_by, panel_by, tmp_path, f"v{trial_type}"))
        rows = np.flatnonzero(sim["types"] == trial_type)
        table = data.pivot(index="trial", columns="predictor", values="value")
        assert list(table.index) == list(rows)
        np.testing.assert_allclose(table.to_numpy().T, sim["V"][:, rows, sim["cue_index"][trial_type]], rtol=1e-6)
        per_predictor = data.groupby("predictor").first()
        np.testing.assert_allclose(per_predictor["tau"], sim["tau"], rtol=1e-9)
        if panel_by == "gamma":
            assert sorted(per_predictor["panel"].unique()) == pytest.approx(sorted(set(sim["gamma"])))
        elif panel_by is None:
            assert per_predictor["panel"].isna().all()
        else:  # a continuous spread of 6 values: one panel per predictor
            assert per_predictor["panel"].nunique() == len(conditioning.param_groups(sim[panel_by]))


def test_value_at_time_refuses_what_it_cannot_draw(sim, tmp_path):
    with pytest.raises(ValueError, match="outside the trial"):
        conditioning.value_at_time(sim, 0, 99.0, "tau", None, tmp_path)
    with pytest.raises(ValueError, match="types 0-1"):
        conditioning.value_at_time(sim, 2, 1.0, "tau", None, tmp_path)
    with pytest.raises(ValueError, match="coloured or grouped by"):
        conditioning.value_at_time(sim, 0, 1.0, "alpha_plus", None, tmp_path)


def test_td_heatmaps_csv_is_the_td_error(sim, tmp_path):
    picks = conditioning.predictors_by_tau(sim, 3)
    assert picks[0] == int(np.argmin(sim["tau"])) and picks[-1] == int(np.argmax(sim["tau"])) and len(set(picks)) == 3
    data = _written(conditioning.td_heatmaps(sim, 1, picks, tmp_path, "hm"))
    rows = np.flatnonzero(sim["types"] == 1)
    for p in picks:
        image = data[data["predictor"] == p].pivot(index="trial", columns="step", values="delta")
        np.testing.assert_allclose(image.to_numpy(), sim["deltas"][p, rows], rtol=1e-6, atol=1e-9)
    assert data["time_s"].max() == pytest.approx(sim["T"][-2])


def test_value_animation_is_a_gif_with_a_frame_per_trial(sim, tmp_path):
    rows = np.flatnonzero(sim["types"] == 0)
    gif = conditioning.value_animation(sim, 0, tmp_path / "a.gif", max_frames=6, title="tiny")
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 6 and frames.ndim == 4
    assert not np.array_equal(frames[0], frames[-1])  # values change over trials
    chosen = conditioning.animation_trials(sim, 0, max_frames=6)
    assert chosen[0] == rows[0] and chosen[-1] == rows[-1]
    assert len(conditioning.animation_trials(sim, 0, max_frames=1000)) == len(rows)


def test_cli_train_report_watch(tmp_path):
    """`neurorl train` a conditioning task, then report (experiment and task) and watch."""
    home = tmp_path / "home"
    cli("train", "conditioning-fixed", "distributional-td", "--trials", "20", "--checkpoint-every", "10", home=home, check=True)
    out = tmp_path / "report"
    cli("report", "e1", "--out", str(out), home=home, check=True)
    page = (out / "index.html").read_text()
    assert "perf/cue_value_mean during training" in page and "data:image/gif;base64," in page
    assert "20 predictors" in page and "No checkpoint has been evaluated yet" in page
    for stem in ("training_curve", "value_at_cue_type0", "td_heatmaps_type0"):
        assert all((out / f"{stem}.{ext}").is_file() for ext in ("png", "svg", "csv"))
    assert len(iio.imread(out / "value_animation.gif", index=None)) == 20
    training = pd.read_csv(out / "training_curve.csv")
    assert list(training["step"]) == [10, 20]

    cli("report", "--task", "conditioning-fixed", "--out", str(tmp_path / "task"), home=home, check=True)
    assert "perf/cue_value_mean" in (tmp_path / "task" / "index.html").read_text()

    gif = tmp_path / "watch.gif"
    cli("watch", "r1", "--gif", str(gif), "--trials", "5", home=home, check=True)
    assert len(iio.imread(gif, index=None)) == 5
    bad = cli("watch", "r1", "--gif", str(gif), "--trial-type", "4", home=home)
    assert bad.returncode == 2 and "types 0-0" in bad.stderr + bad.stdout

    (run_dir,) = (home / "runs").iterdir()
    (run_dir / SIMULATION).unlink()
    missing = cli("watch", "r1", "--gif", str(gif), home=home)
    assert missing.returncode == 2 and "no simulation yet" in missing.stderr + missing.stdout
    cli("report", "e1", "--out", str(out), home=home, check=True)
    assert re.search(r"Run 1 has no simulation yet", (out / "index.html").read_text())


def test_predictors_are_coloured_by_their_effective_asymmetry(sim, tmp_path):
    """Rates act per step (alpha ** dt), so the asymmetry that sets a predictor's expectile is
    tau_eff = alpha+^dt / (alpha+^dt + alpha-^dt), closer to 0.5 than the drawn tau when dt < 1 s."""
    dt = float(sim["dt"])
    plus, minus = sim["alpha_plus"] ** dt, sim["alpha_minus"] ** dt
    np.testing.assert_allclose(sim["tau_eff"], plus / (plus + minus))
    assert np.ptp(sim["tau_eff"]) < np.ptp(sim["tau"]) and np.all(np.abs(sim["tau_eff"] - 0.5) <= np.abs(sim["tau"] - 0.5))
    # the same order, so "lowest / middle / highest tau" picks the same predictors either way
    assert list(np.argsort(sim["tau_eff"])) == list(np.argsort(sim["tau"]))
    data = _written(conditioning.value_at_time(sim, 0, conditioning.cue_time(sim, 0), out_dir=tmp_path, stem="eff"))
    assert "tau_eff" in data.columns
