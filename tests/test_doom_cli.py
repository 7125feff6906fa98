"""Doom through the CLI with real sample-factory and ViZDoom on CPU and tiny budgets: APPO trains
in two rollout workers, is stopped (Ctrl-C) and resumed, its checkpoints are evaluated by our own
loop under both protocols, recorded for analyses, and watched as a GIF."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import cli, stored_path

pytestmark = pytest.mark.slow

# Two workers with two environments each, and small batches: the plumbing, not the learning.
TINY = ["--set", "model.num_workers=2", "--set", "model.num_envs_per_worker=2", "--set", "model.batch_size=256"]
BASIC = ["train", "doom-basic", "retinal-simple", "--steps", "4000", "--checkpoint-every", "1000", *TINY]


def _query(home: Path, sql: str, *args) -> list[tuple]:
    con = sqlite3.connect(home / "registry.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _checkpoint_events(home: Path) -> list[dict]:
    events = []
    for log in (home / "runs").glob("*/events.jsonl"):
        events += [json.loads(line) for line in log.read_text().splitlines() if '"checkpoint"' in line]
    return events


@pytest.fixture(scope="module")
def basic(tmp_path_factory) -> Path:
    """doom-basic x retinal-simple, stopped by Ctrl-C after its first checkpoint, then resumed."""
    home = tmp_path_factory.mktemp("doom") / "home"
    env = {**os.environ, "NEURORL_HOME": str(home), "XDG_CACHE_HOME": str(home.parent / "cache"), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "neurorl_cli", *BASIC], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not _checkpoint_events(home) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the worker gets SIGTERM and stops with a final checkpoint
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    cli("train", "--resume", "r1", home=home, check=True)
    return home


def test_stop_resume_checkpoints_and_metrics(basic):
    (status, attempt), = _query(basic, "SELECT status, attempt FROM run")
    assert (status, attempt) == ("completed", 2)
    rows = _query(basic, "SELECT attempt, step, path FROM checkpoint ORDER BY step")
    run_dir = stored_path(basic, _query(basic, "SELECT run_dir FROM run")[0][0])
    first = [step for a, step, _ in rows if a == 1]
    second = [step for a, step, _ in rows if a == 2]
    # The stop saved a final checkpoint before the budget; the resumed attempt goes on from it.
    assert first and second and max(first) < 4000 <= max(second) and min(second) > max(first)
    # One checkpoint per multiple of 1000 crossed (a batch is 256 steps), none deleted.
    assert len(rows) >= 4 and all((run_dir / path).is_file() for _, _, path in rows)
    assert not list((run_dir / "sample_factory" / "sf" / "checkpoint_p0").glob("checkpoint_*.pth"))
    # sample-factory resumed its own counters (and weights, optimizer) from the last checkpoint.
    saved = {step: torch.load(run_dir / path, weights_only=True) for _, step, path in rows}
    assert saved[max(first)]["env_steps"] == max(first)
    assert saved[min(second)]["train_step"] > saved[max(first)]["train_step"]
    # Its metrics reached the registry in both attempts.
    keys = {(a, k) for a, k in _query(basic, "SELECT DISTINCT attempt, key FROM metric")}
    for key in ("train/steps_per_s", "train/true_reward", "train/episode_reward", "train/episode_length",
                "loss/policy_loss", "loss/value_loss", "train/health_gathered"):
        assert (1, key) in keys and (2, key) in keys, key


def test_eval_all_checkpoints_under_both_protocols(basic):
    cli("eval", "e1", "--all-checkpoints", "--trials", "1", home=basic, check=True)
    n_checkpoints = len(_query(basic, "SELECT id FROM checkpoint"))
    evals = _query(basic, "SELECT protocol, metrics FROM evaluation")
    assert sorted({p for p, _ in evals}) == ["default", "frameskip-1"] and len(evals) == 2 * n_checkpoints
    for protocol, metrics in evals:
        m = json.loads(metrics)
        assert m["episodes"] == 1 and m["episode_length"] > 0
        # basic ends at the kill or after 300 tics: 75 steps at frame skip 4, 300 at frame skip 1
        assert m["episode_length"] <= (300 if protocol == "frameskip-1" else 75)
        assert {"true_reward", "shaped_reward", "health_gathered", "items_picked"} <= set(m)
    assert len(_query(basic, "SELECT id FROM trial")) == 2 * n_checkpoints  # one row per episode
    again = cli("eval", "e1", "--all-checkpoints", "--trials", "1", home=basic, check=True)
    assert "evaluated under" in again.stderr  # nothing left to do


def test_evaluation_is_reproducible_and_record_has_the_analysis_arrays(basic):
    from neurorl_cli import rollouts
    from neurorl_cli.engines.sample_factory.trainer import SampleFactoryBackend

    config = json.loads(_query(basic, "SELECT config FROM experiment")[0][0])
    run_dir, path = _query(basic, "SELECT r.run_dir, c.path FROM run r JOIN checkpoint c ON c.run_id = r.id "
                                  "ORDER BY c.step DESC LIMIT 1")[0]
    checkpoint = stored_path(basic, run_dir) / path
    backend = SampleFactoryBackend()
    protocol = {**config["task"]["protocols"]["default"], "episodes": 2}
    a, rows = rollouts.evaluate(config, checkpoint, protocol)
    b, _ = rollouts.evaluate(config, checkpoint, protocol)
    assert a == b and len(rows) == 2 and [r["index"] for r in rows] == [0, 1]

    rec = backend.record(config, checkpoint, steps=40, frame_skip=1, seed=3)
    assert rec["frames"].shape == (40, 72, 128, 3) and rec["frames"].dtype == np.uint8
    assert rec["fc"].shape == (40, 64) and rec["rnn"].shape == (40, 64) and rec["value"].shape == (40,)
    assert rec["actions"].shape == (40, 2) and set(np.unique(rec["actions"])) <= {0, 1, 2}
    assert rec["health"].shape == (40,) and np.isfinite(rec["health"]).all()
    assert np.ptp(rec["rnn"], axis=0).max() > 0  # the GRU state moves from step to step

    # The GRU state is carried: the same frames from a fresh state give other activity.
    policy = backend.load_policy(config, checkpoint)
    policy.reset(1)
    carried = [policy.act(frame[None]) for frame in rec["frames"][:5]]
    assert np.array_equal(policy.activity()["rnn"][0], rec["rnn"][4])
    policy.reset(1)
    policy.act(rec["frames"][4][None])
    assert not np.allclose(policy.activity()["rnn"][0], rec["rnn"][4])
    assert len(carried) == 5


def test_watch_gif_shows_the_agents_view_with_a_panel(basic):
    import imageio.v3 as iio

    gif = basic / "watch.gif"
    cli("watch", "r1", "--checkpoint", "latest", "--gif", str(gif), home=basic, check=True)
    frames = iio.imread(gif, index=None)
    assert frames.shape[1:] == (150, 160, 3)  # the 160x120 screen and a 30-pixel panel
    assert 1 <= frames.shape[0] <= 75  # one basic episode at frame skip 4
    assert frames[:, 120:].std() > 0  # the panel carries text
    (query,), = _query(basic, "SELECT query FROM artifact WHERE kind = 'gif'")
    assert "--gif" in query


@pytest.mark.skipif(not Path(__file__).parents[1].joinpath("scenarios", "retinal_apple_gathering.wad").is_file(),
                    reason="the apple-gathering scenario is not built")
def test_apple_gathering_trains_and_evaluates(neurorl_home):
    # 2400 steps over 4 environments: each plays a whole 525-step episode, so episodes end in training.
    cli("train", "apple-gathering", "retinal-simple", "--steps", "2400", "--checkpoint-every", "1200", *TINY, check=True)
    steps = [s for (s,) in _query(neurorl_home, "SELECT step FROM checkpoint ORDER BY step")]
    assert len(steps) >= 2 and steps[-1] >= 2400
    keys = {k for (k,) in _query(neurorl_home, "SELECT DISTINCT key FROM metric")}
    assert {"train/true_reward", "train/health_gathered", "train/items_picked"} <= keys
    cli("eval", "e1", "--all-checkpoints", "--protocol", "default", "--trials", "1", check=True)
    evals = [json.loads(m) for (m,) in _query(neurorl_home, "SELECT metrics FROM evaluation")]
    assert len(evals) == len(steps)
    for m in evals:
        assert 0 < m["episode_length"] <= 525  # 2100 tics at frame skip 4, or death before
        assert m["health_gathered"] >= 0 and m["items_picked"] >= 0


def test_report_has_the_retinal_analyses_and_reuses_the_recording(basic):
    cli("eval", "e1", "--all-checkpoints", "--trials", "1", home=basic, check=True)  # done already when run in order
    out = basic / "report"
    cli("report", "e1", "--out", str(out), home=basic, check=True)
    page = (out / "index.html").read_text()
    for heading in ("view (best checkpoint)", "Receptive fields", "Activity rasters", "Hidden states", "Methods"):
        assert heading in page, heading
    for name in ("agent_view.gif", "raster_fc.png", "raster_rnn.png", "tsne_rnn.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "rf_conv1.png").stat().st_size > 0  # retinal-simple has one conv layer (numbered from 1)
    assert "new recording" in page
    (path,), = _query(basic, "SELECT path FROM artifact WHERE kind = 'doom-recording'")
    with np.load(stored_path(basic, path)) as arrays:
        assert arrays["frames"].shape[1:] == (72, 128, 3) and len(arrays["rnn"]) == len(arrays["frames"])
    cli("report", "e1", "--out", str(out), home=basic, check=True)  # again: the stored activity is used
    assert "stored recording" in (out / "index.html").read_text()
