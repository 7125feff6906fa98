"""Analyses: statistics, psychometric tables, figure files, HTML escaping, the DataFrame API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlmodel import Session, select

from neurorl_cli import api
from neurorl_cli.analysis import checkpoints, html, training
from neurorl_cli.report import methods
from neurorl_cli.families.neurogym import psychometric
from neurorl_cli.report import assemble as report
from neurorl_cli.analysis.stats import bootstrap_ci
from neurorl_cli.registry.db import open_registry
from neurorl_cli.registry.models import Artifact, Checkpoint, Evaluation, Experiment, Metric, Run, Trial

CONFIG = {
    "task": {
        "name": "perceptual-decision-making", "kind": "decision",
        "env": {"id": "PerceptualDecisionMaking-v0", "kwargs": {"dt": 100}, "wrappers": [{"name": "PassReward", "kwargs": {}}], "trials_per_episode": 100},
        "protocols": {"default": {"trials": 4, "select": "fraction_correct"}},
    },
    "model": {"name": "recurrent-ppo", "algo": "RecurrentPPO", "engine": "sb3", "policy": "MlpLstmPolicy", "hyper": {"gamma": 0.99}, "policy_kwargs": {"lstm_hidden_size": 64}, "n_envs": 1},
    "budget": {"steps": 300, "checkpoint_every": 100},
    "overrides": {},
}


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_agreement():
    spread = bootstrap_ci([0.1, 0.5, 0.9, 0.3, 0.7])
    tight = bootstrap_ci([0.49, 0.5, 0.51, 0.5, 0.5])
    assert spread[1] < spread[0] < spread[2]
    assert spread[0] == pytest.approx(0.5)
    assert (tight[2] - tight[1]) < (spread[2] - spread[1])
    assert bootstrap_ci([0.4, np.nan]) == (0.4, 0.4, 0.4)  # one seed: no spread
    assert all(np.isnan(bootstrap_ci([])))
    assert bootstrap_ci([0.1, 0.9]) == bootstrap_ci([0.1, 0.9])  # fixed resampling seed


def _synthetic_trials(n_per_cell: int = 50, seed: int = 0) -> pd.DataFrame:
    """An observer whose P(choose 2) is a logistic function of the signed coherence."""
    rng = np.random.default_rng(seed)
    rows = []
    for coh in (0.0, 6.4, 25.6, 51.2):
        for gt in (1, 2):
            signed = coh if gt == 2 else -coh
            p2 = 1 / (1 + np.exp(-signed / 8))
            for _ in range(n_per_cell):
                choice = 2 if rng.random() < p2 else 1
                rows.append({"seed": 0, "coh": coh, "ground_truth": gt, "choice": choice, "correct": float(choice == gt), "reaction_time": 500.0 - coh})
    rows.append({"seed": 0, "coh": 51.2, "ground_truth": 2, "choice": 0, "correct": 0.0, "reaction_time": None})  # no response
    return pd.DataFrame(rows)


def test_psychometric_is_signed_by_ground_truth_and_rises():
    table = psychometric.psychometric(_synthetic_trials())
    assert list(table["signed_coh"]) == [-51.2, -25.6, -6.4, 0.0, 6.4, 25.6, 51.2]  # no -0.0 column of its own
    assert table["p_choose_2"].iloc[0] < 0.1 and table["p_choose_2"].iloc[-1] > 0.9
    assert table["p_choose_2"].is_monotonic_increasing
    top = table[table["signed_coh"] == 51.2].iloc[0]
    assert (top["n"], top["responded"]) == (51, 50)  # the unanswered trial is counted, not scored
    assert table.loc[table["signed_coh"] == 0.0, "n"].item() == 100  # both ground truths at zero


def test_reaction_times_per_coherence_and_outcome():
    table = psychometric.reaction_times(_synthetic_trials())
    correct = table[table["outcome"] == "correct"].set_index("coh")["mean_rt"]
    assert correct[51.2] == pytest.approx(500 - 51.2)
    assert correct[0.0] == pytest.approx(500.0)


def test_latest_attempt_wins_per_step():
    metrics = pd.DataFrame([
        {"run_id": 1, "seed": 0, "attempt": 1, "key": "k", "step": 10, "value": 0.1},
        {"run_id": 1, "seed": 0, "attempt": 2, "key": "k", "step": 10, "value": 0.9},
        {"run_id": 1, "seed": 0, "attempt": 1, "key": "k", "step": 5, "value": 0.3},
    ])
    latest = training.latest_attempt(metrics)
    assert dict(zip(latest["step"], latest["value"])) == {5: 0.3, 10: 0.9}


def _assert_figure(files, rows: int | None = None):
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in files.svg.read_bytes()[:2000]
    data = pd.read_csv(files.csv)
    if rows is not None:
        assert len(data) == rows
    return data


def test_figures_write_png_svg_and_csv(tmp_path):
    steps = np.arange(1, 6) * 100
    metrics = pd.concat([
        pd.DataFrame({"run_id": s + 1, "seed": s, "attempt": 1, "key": training.TRAINING_KEY, "step": steps, "value": np.linspace(0.5, 0.9, 5) + 0.01 * s})
        for s in range(3)
    ])
    data = _assert_figure(training.training_curve(metrics, tmp_path), rows=5)
    assert {"mean", "ci_low", "ci_high", "seed_0", "seed_2"} <= set(data.columns)
    assert (data["ci_low"] <= data["mean"]).all() and (data["mean"] <= data["ci_high"]).all()
    _assert_figure(training.comparison_curve(metrics.assign(label="a"), tmp_path), rows=5)
    evals = pd.DataFrame({"seed": [0, 0, 1, 1], "step": [100, 200, 100, 200], "protocol": "p/1", "select": "fraction_correct", "score": [0.5, 0.7, 0.6, 0.8]})
    files = checkpoints.checkpoint_curve(evals, tmp_path, "p/1")
    assert files.png.name == "checkpoints_p_1.png"
    assert list(_assert_figure(files, rows=2)["mean"]) == pytest.approx([0.55, 0.75])
    _assert_figure(psychometric.psychometric_curve(_synthetic_trials(), tmp_path))
    _assert_figure(psychometric.reaction_time_curve(_synthetic_trials(), tmp_path))


def test_html_escapes_names_and_tables(tmp_path):
    evil = '<script>alert("x")</script>'
    files = training.training_curve(
        pd.DataFrame({"run_id": 1, "seed": 0, "attempt": 1, "key": training.TRAINING_KEY, "step": [1, 2], "value": [0.1, 0.2]}), tmp_path
    )
    section = html.Section(evil).text(evil).notice(evil, f"neurorl eval {evil}").figure(files.png, evil, files.all())
    section.table(pd.DataFrame({evil: [evil]}))
    page = html.page(evil, [section], footer=evil)
    assert "<script>" not in page
    assert page.count("&lt;script&gt;") >= 7
    assert "data:image/png;base64," in page


def test_methods_paragraph_names_the_setup():
    text = methods.methods_paragraph(CONFIG, [0, 1, 2], [{"torch": "2.13.0", "numpy": "1.26.4"}, {"torch": "2.13.1"}])
    for expected in ("PerceptualDecisionMaking-v0", "PassReward", "RecurrentPPO", "gamma = 0.99", "lstm_hidden_size = 64", "300 agent steps", "3 seeds (0-2)", "PyTorch 2.13.0 / 2.13.1"):
        assert expected in text


@pytest.fixture
def registry(neurorl_home):
    """Two seeds, two checkpoints each, one evaluated with two trials; run 1 resumed once."""
    engine = open_registry()
    with Session(engine) as session:
        exp = Experiment(config_hash="ab" * 16, task="perceptual-decision-making", model="recurrent-ppo", config=CONFIG, name="pdm")
        session.add(exp)
        session.flush()
        for seed in (0, 1):
            run = Run(experiment_id=exp.id, seed=seed, run_hash=f"{seed}" * 32, run_dir=f"/nowhere/{seed}", status="completed", attempt=2 if seed == 0 else 1)
            session.add(run)
            session.flush()
            for attempt in (1, 2) if seed == 0 else (1,):
                session.add(Metric(run_id=run.id, attempt=attempt, key=training.TRAINING_KEY, step=100, value=0.1 * attempt + seed))
            for step, score in ((100, 0.5 + seed / 10), (200, 0.7 + seed / 10)):
                ckpt = Checkpoint(run_id=run.id, step=step, path=f"checkpoints/{step}.zip", sha256="0" * 64)
                session.add(ckpt)
                session.flush()
                ev = Evaluation(checkpoint_id=ckpt.id, protocol="default", protocol_hash="h", select="fraction_correct", score=score, trials=2, metrics={"fraction_correct": score, "mean_reward": score})
                session.add(ev)
                session.flush()
                for index in range(2):
                    session.add(Trial(evaluation_id=ev.id, index=index, env=0, ground_truth=1 + index, choice=1, correct=float(index == 0), reward=1.0 - index, reaction_time=500.0, steps=9, conditions={"coh": 12.8, "ground_truth": index}))
        session.commit()
    return api.Registry(engine)


def test_api_frames(registry):
    runs = registry.runs("pdm")
    assert list(runs["seed"]) == [0, 1] and set(runs["experiment"]) == {"pdm"}
    metrics = registry.metrics("pdm", key=training.TRAINING_KEY, prefer="experiment")
    assert len(metrics) == 3 and len(training.latest_attempt(metrics)) == 2
    evals = registry.evaluations("pdm")
    assert len(evals) == 4 and "mean_reward" in evals.columns
    best = registry.best_evaluations("pdm")
    assert list(best["step"]) == [200, 200]
    trials = registry.trials("pdm", protocol="default")
    assert len(trials) == 8
    assert {"coh", "cond_ground_truth", "checkpoint_step", "seed", "run_id"} <= set(trials.columns)
    assert list(trials["ground_truth"][:2]) == [1.0, 2.0]  # the measured column, not the condition
    assert set(registry.trials("pdm", best=True)["checkpoint_step"]) == {200}
    assert registry.trials("pdm", protocol="other").empty


def test_report_without_checkpoint_files_still_writes_a_page(registry, tmp_path):
    made = report.experiment_report(registry, "pdm", tmp_path / "rep")
    page = made.index.read_text()
    assert "checkpoint file /nowhere/" in page  # panels say why they are missing
    assert (tmp_path / "rep" / "psychometric_default.png").exists()
    report.record_artifacts(registry, made, "neurorl report pdm")
    with registry.session() as session:
        kinds = {a.kind for a in session.exec(select(Artifact))}
    assert {"report-html", "figure-png", "figure-svg", "figure-csv"} <= kinds


def test_report_before_any_evaluation_hints_at_eval(neurorl_home, tmp_path):
    engine = open_registry()
    with Session(engine) as session:
        exp = Experiment(config_hash="cd" * 16, task="perceptual-decision-making", model="recurrent-ppo", config=CONFIG, name="fresh")
        session.add(exp)
        session.flush()
        session.add(Run(experiment_id=exp.id, seed=0, run_hash="9" * 32, run_dir="/nowhere"))
        session.commit()
    made = report.experiment_report(api.Registry(engine), "fresh", tmp_path / "rep")
    page = made.index.read_text()
    assert "neurorl eval fresh --all-checkpoints" in page
    assert "No perf/trial_performance has been logged" in page


@pytest.mark.parametrize("task, model, expected", [
    ("apple-gathering", "retinal-simple", ("retinal_apple_gathering", "128x72", "frame skip 4", "encoder retinal-simple",
                                           "+1 whenever health rose", "20 episodes", "frame_skip = 1",
                                           "batch_size = 2048")),  # APPO's defaults are named, though the model file omits them
    ("doom-basic", "retinal-recurrent-ppo", ("encoder retinal-simple (activation = elu, global_channels = 16",
                                             "RecurrentPPO from sb3-contrib")),
    ("firefly", "td3-modular", ("firefly navigation", "observation_noise = 0.1", "actor = Actor3", "500 trials",
                                "gain = 1.5")),
])
def test_methods_paragraph_describes_doom_and_firefly(task, model, expected):
    from neurorl_cli.catalog import load_model, load_task, resolve

    config, = resolve(load_task(task), load_model(model))
    evaluated = [{"protocol": name, "trials": p.get("episodes", p.get("trials")), "select": p["select"]}
                 for name, p in config["task"]["protocols"].items()]
    text = methods.methods_paragraph(config, [0], [{}], evaluated)
    for phrase in expected:
        assert phrase in text, phrase
    assert "None" not in text and "?" not in text
