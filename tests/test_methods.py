"""The report's methods paragraph (pasted into papers) and its training figures with little data."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from neurorl_cli import provenance
from neurorl_cli.analysis import training
from neurorl_cli.report import methods
from neurorl_cli.catalog import load_model, load_task, resolve

from .conftest import REPO, cli

# What a stored run's `versions` holds: the launcher's side and the worker's, every package included.
VERSIONS = {**provenance.launch_side(REPO), **provenance.worker_side("cpu")}
BASE = {"neurorl", "PyTorch"}


@pytest.mark.parametrize("task, model, libraries", [
    ("perceptual-decision-making", "recurrent-ppo", {"sb3-contrib", "Stable-Baselines3", "NeuroGym"}),
    ("go-no-go", "meta-a2c-lstm", {"NeuroGym"}),
    ("conditioning-variable", "distributional-td", set()),
    ("harlow", "meta-a2c-lstm", set()),
    ("two-step", "recurrent-ppo", {"sb3-contrib", "Stable-Baselines3"}),
    ("firefly", "td3-modular", set()),
    ("doom-basic", "retinal-simple", {"Sample Factory", "ViZDoom"}),
    ("apple-gathering", "retinal-recurrent-ppo", {"sb3-contrib", "Stable-Baselines3", "ViZDoom"}),
])
def test_paragraph_is_prose_with_the_evaluated_counts_and_the_libraries_that_matter(task, model, libraries):
    config, = resolve(load_task(task), load_model(model), ["model.learning_rate=0.002"] if "ppo" in model else None)
    family = config["task"]["family"]
    protocols = list(config["task"]["protocols"])
    # Counts unlike every catalog default; meta-RL tasks evaluate whole episodes.
    trials, episodes = {"meta-rl": (42, 7), "doom": (3, 3)}.get(family, (37, None))
    rows = [{"protocol": p, "trials": trials, "episodes": episodes, "select": "score", "checkpoint_id": c}
            for p in protocols for c in (1, 2)]

    text = methods.methods_paragraph(config, [0, 1, 2], [VERSIONS, VERSIONS], rows)

    for junk in ("None", "n/a", "{", "}", "\"", "[]", "?"):
        assert junk not in text, (junk, text)
    assert not re.search(r"'\w+':", text), text  # no Python dict
    evaluation = text[text.index(" were evaluated"):text.index("Software:")]
    assert ("on 3 episodes each" if family == "doom" else f"on {trials} trials") in evaluation
    for spec in config["task"]["protocols"].values():
        default = spec.get("episodes", spec.get("trials"))
        assert f" {default} " not in evaluation, evaluation
    software = text.split("Software: ", 1)[1].rstrip(".")
    named = {re.sub(r" \S+$", "", item) for item in software.split(", ")}
    assert named == BASE | libraries
    assert "numpy" not in text


def test_paragraph_says_when_checkpoints_were_evaluated_on_different_counts():
    config, = resolve(load_task("harlow"), load_model("meta-a2c-lstm"))
    rows = [{"protocol": "held-out", "trials": 54, "episodes": 9, "select": "accuracy_later", "checkpoint_id": 1},
            {"protocol": "held-out", "trials": 54, "episodes": 9, "select": "accuracy_later", "checkpoint_id": 2},
            {"protocol": "held-out", "trials": 1200, "episodes": 200, "select": "accuracy_later", "checkpoint_id": 3},
            {"protocol": "train-pool", "trials": 1200, "episodes": 200, "select": "accuracy_later", "checkpoint_id": 3}]
    text = methods.methods_paragraph(config, [0], [{"neurorl": "0.1.0"}], rows)
    assert "3 checkpoints were evaluated" in text
    assert "held-out (pool = test) on 54 trials (9 episodes) for 2 checkpoints and 1,200 trials (200 episodes) for 1 checkpoint" in text
    assert "train-pool on 1,200 trials (200 episodes), the best checkpoint by the highest accuracy_later" in text
    assert text.endswith("Software: neurorl 0.1.0.")  # a queued run knows only neurorl's version


def test_paragraph_before_any_evaluation_and_runs_that_differ():
    config, = resolve(load_task("perceptual-decision-making"), load_model("ppo"))
    text = methods.methods_paragraph(config, [0, 1], [{"packages": {"torch": "2.13.0"}}, {"packages": {"torch": "2.13.1", "numpy": "2.0"}}])
    assert "No checkpoint had been evaluated." in text
    assert "PyTorch 2.13.0 / 2.13.1 (the runs differed)" in text and "numpy" not in text


def test_report_of_a_real_run_names_the_trials_it_was_evaluated_on(tmp_path):
    cli("train", "conditioning-variable", "distributional-td", "--trials", "20", "--checkpoint-every", "20",
        "--set", "model.predictors=4", "--name", "tiny-methods", check=True)
    cli("eval", "tiny-methods", "--all-checkpoints", "--trials", "7", check=True)
    cli("report", "tiny-methods", "--out", str(tmp_path / "rep"), check=True)
    page = (tmp_path / "rep" / "index.html").read_text()
    paragraph = page.split("Methods</h2>", 1)[1].split("</p>", 1)[0]
    assert "1 checkpoint was evaluated on 7 trials under the protocol default" in paragraph
    assert " 100 trials" not in paragraph  # the protocol's default count
    assert re.search(r"Software: neurorl \S+, PyTorch \S+\.$", paragraph), paragraph


def _axes_centre_is_drawn(png: Path, svg: Path) -> bool:
    """Whether the PNG has ink at the centre of the axes, where autoscaling puts a lone point."""
    from matplotlib import image

    # The SVG (in points) names the axes' clip box; the PNG is the same layout at its own dpi.
    text = svg.read_text()
    width = float(re.search(r'<svg [^>]*width="([\d.]+)pt"', text).group(1))
    x, y, w, h = map(float, re.search(r'<clipPath id="\w+">\s*<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', text).groups())
    pixels = image.imread(png)[..., :3]
    scale = pixels.shape[1] / width
    cx, cy = round((x + w / 2) * scale), round((y + h / 2) * scale)
    return bool((pixels[cy - 3:cy + 4, cx - 3:cx + 4] < 0.5).any())


@pytest.mark.parametrize("draw", [training.training_curve, training.comparison_curve])
def test_training_figure_of_one_logged_point_shows_it(draw, tmp_path):
    metrics = pd.DataFrame({"run_id": [1], "seed": [0], "attempt": [1], "key": [training.TRAINING_KEY],
                            "step": [512], "value": [0.6], "label": ["ppo (tiny)"]})
    files = draw(metrics, tmp_path)
    data = pd.read_csv(files.csv)
    assert len(data) == 1 and data["mean"].iloc[0] == pytest.approx(0.6)
    # matplotlib writes a circle marker into the SVG's definitions as Bezier curves
    assert re.search(r'<path id="m[0-9a-f]+" d="M 0 -?[\d.]+\s+C ', files.svg.read_text())
    assert _axes_centre_is_drawn(files.png, files.svg)
