"""Retinal-rl analyses: white-noise receptive fields, t-SNE raster and state embedding, stored
recordings, and the Doom report section (on synthetic recordings and real conv stacks)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sqlmodel import Session, select
from torch import nn

from neurorl_cli import api
from neurorl_cli.analysis import html
from neurorl_cli.report import assemble as report
from neurorl_cli.families.doom import analysis as retinal
from neurorl_cli.nets.retinal import make_encoder
from neurorl_cli.registry.db import open_registry
from neurorl_cli.registry.models import Artifact, Checkpoint, Evaluation, Experiment, Metric, Run


@pytest.fixture(autouse=True)
def _torch_seed():
    torch.manual_seed(0)  # encoders start from random weights: the same ones every run


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _planted(kernel: np.ndarray, bias: float = 0.3) -> nn.Sequential:
    """One linear conv layer whose weights are `kernel` (filters, channels, k, k)."""
    conv = nn.Conv2d(kernel.shape[1], kernel.shape[0], kernel.shape[2], bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(kernel, dtype=torch.float32))
        conv.bias.fill_(bias)
    return nn.Sequential(conv, nn.Identity())  # "linear" activation, as the encoders spell it


def _inner(rf: retinal.ReceptiveField) -> np.ndarray:
    """The STA over the unit's receptive field itself (without the margin)."""
    r, c = rf.rf_origin[0] - rf.top, rf.rf_origin[1] - rf.left
    return rf.sta[:, :, r:r + rf.rf_size[0], c:c + rf.rf_size[1]]


def _blobs(k: int) -> np.ndarray:
    """A large blob up-left of centre and a small one right of it: no mirror image, rotation
    or transpose of it resembles it, so a kernel recovered that way would not match."""
    y, x = np.mgrid[-(k // 2):k // 2 + 1, -(k // 2):k // 2 + 1].astype(float)
    blob = lambda cy, cx, s: np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / s)  # noqa: E731
    return blob(-1.5, -0.5, 0.8) + 0.7 * blob(0.5, 1.5, 0.5)


KERNEL = np.stack([
    np.stack([_blobs(5), -0.5 * _blobs(5), 0.2 * _blobs(5)]),  # a colour-opponent filter
    np.random.default_rng(1).normal(size=(3, 5, 5)),  # and an unstructured one
])
WRONG = {
    "rotated": lambda k: k[:, ::-1, ::-1], "mirrored": lambda k: k[:, :, ::-1],
    "flipped": lambda k: k[:, ::-1, :], "transposed": lambda k: k.transpose(0, 2, 1),
}


def test_sta_recovers_a_planted_kernel_and_not_a_wrong_one():
    rf = retinal.receptive_field(_planted(KERNEL), (3, 36, 48), samples=3000, chunk=500, seed=0)
    assert rf.windowed and rf.rf_size == (5, 5)
    assert rf.sta.shape == (2, 3, 5 + 2 * retinal.RF_MARGIN, 5 + 2 * retinal.RF_MARGIN)
    recovered = _inner(rf)
    for f in range(2):
        assert _corr(recovered[f], KERNEL[f]) > 0.95
        # The check can fail: the kernel mirrored, rotated or transposed, the other filter's
        # kernel or a fresh random one do not match (a bug that flipped, swapped or lost the
        # kernel would be caught).
        for name, wrong in WRONG.items():
            assert abs(_corr(recovered[f], wrong(KERNEL[f]))) < 0.5, name
        assert abs(_corr(recovered[f], KERNEL[1 - f])) < 0.5
        assert abs(_corr(recovered[f], np.random.default_rng(7 + f).normal(size=KERNEL[f].shape))) < 0.5
    # Outside the receptive field the noise is unrelated to the activation: about 0.
    margin = rf.sta.copy()
    margin[:, :, retinal.RF_MARGIN:-retinal.RF_MARGIN, retinal.RF_MARGIN:-retinal.RF_MARGIN] = 0
    assert np.abs(margin).max() < 0.25 * np.abs(recovered).max()


def test_full_size_noise_gives_the_same_field_as_the_window():
    stack = _planted(KERNEL)
    window = retinal.receptive_field(stack, (3, 20, 24), samples=3000, chunk=500, seed=0)
    full = retinal.receptive_field(stack, (3, 20, 24), samples=3000, chunk=500, seed=1, windowed=False)
    assert window.windowed and not full.windowed
    assert (window.top, window.left, window.sta.shape) == (full.top, full.left, full.sta.shape)
    assert _corr(_inner(full), KERNEL) > 0.95 and _corr(_inner(window), _inner(full)) > 0.9


class _SubtractImageMean(nn.Module):
    """A preprocessing step that reads the whole image: the window alone would not be exact."""

    def forward(self, x):
        return x - x.mean(dim=(2, 3), keepdim=True)


def test_a_stack_that_reads_the_whole_image_gets_full_size_noise():
    stack = nn.Sequential(_SubtractImageMean(), *_planted(KERNEL))
    rf = retinal.receptive_field(stack, (3, 12, 14), samples=1500, chunk=500)
    assert not rf.windowed
    assert _corr(_inner(rf), KERNEL) > 0.9


def test_receptive_field_sizes_follow_kernels_and_strides():
    encoder = make_encoder("retinal-lindsey", (3, 72, 128), global_channels=4, retinal_bottleneck=2, vvs_depth=2)
    assert retinal.conv_layer_count(encoder) == 4
    sizes = [retinal.geometry(encoder.conv_stack(n))[0] for n in range(1, 5)]
    # kernel 7, the first layer strided by 2: 7, then 12 more input pixels per layer.
    assert sizes == [(7, 7), (19, 19), (31, 31), (43, 43)]
    # The reference's crop radius ignores the stride: from layer 3 on it cuts the field short.
    assert 2 * retinal.reference_radius(3, 7) + 1 < 31
    simple = make_encoder("retinal-simple", (3, 72, 128))
    assert retinal.geometry(simple.conv_stack(1)) == ((5, 5), (1, 1), (0, 0))


def test_every_layer_of_an_encoder_gets_a_figure(tmp_path):
    encoder = make_encoder("retinal-lindsey", (3, 36, 64), global_channels=3, retinal_bottleneck=2, vvs_depth=1, kernel_size=5)
    rfs = retinal.encoder_receptive_fields(encoder, encoder.obs_shape, samples=600, chunk=300)
    assert [rf.layer for rf in rfs] == [1, 2, 3]
    assert [rf.sta.shape[:2] for rf in rfs] == [(3, 3), (2, 3), (3, 3)]
    assert all(rf.windowed and np.isfinite(rf.sta).all() and np.abs(rf.sta).max() > 0 for rf in rfs)
    files = retinal.plot_receptive_fields(rfs[1], tmp_path)
    assert files.png.stat().st_size > 1000 and files.svg.exists()
    table = pd.read_csv(files.csv)
    assert len(table) == rfs[1].sta.size and set(table["filter"]) == {0, 1}
    assert table["row"].min() == rfs[1].top and np.allclose(table["sta"], rfs[1].sta.ravel())


def test_greyscale_fields_share_one_shape_weighted_by_luma():
    encoder = make_encoder("retinal-simple", (3, 30, 40), global_channels=2, greyscale=True, activation="linear")
    rf = retinal.receptive_field(encoder.conv_stack(1), (3, 30, 40), samples=4000, chunk=1000)
    inner = _inner(rf)
    weights = encoder.convs[0][0].weight.detach().numpy()  # (filters, 1, k, k)
    # Each channel sees the grey kernel scaled by that channel's luma weight.
    expected = weights * np.array([0.299, 0.587, 0.114])[None, :, None, None]
    assert _corr(inner, expected) > 0.95
    scale = [(inner[:, c] * weights[:, 0]).sum() / (weights**2).sum() for c in range(3)]
    assert np.allclose(scale, [0.299, 0.587, 0.114], atol=0.03)  # the luma weights, in RGB order


def test_zscore_centres_scales_and_zeroes_constant_units():
    x = np.c_[np.arange(10.0), np.full(10, 3.0), np.random.default_rng(0).normal(5, 2, 10)]
    z = retinal.zscore(x)
    assert np.allclose(z[:, [0, 2]].mean(0), 0) and np.allclose(z[:, [0, 2]].std(0), 1)
    assert (z[:, 1] == 0).all()


def test_pickups_leave_out_the_floor_drain_and_respawns():
    health = np.array([100, 100, 92, 112, 112, 82, 74, 0, 100, 100, 120, 95], dtype=float)
    gains, losses = retinal.pickups(health)
    # +20 at 3 and 10 are pickups; -30 (a blue apple) at 5 and -25 at 11 are losses; -8 (drain)
    # at 2 and 6, -74 (death) at 7 and +100 (respawn) at 8 are not.
    assert list(gains) == [3, 10] and list(losses) == [5, 11]
    # A new episode that starts with more health is no pickup.
    gains, losses = retinal.pickups(health, episode=np.array([0] * 10 + [1, 1]))
    assert list(gains) == [3] and list(losses) == [5, 11]


def _two_populations(steps: int = 300, units: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Units driven by one of two unrelated signals, interleaved, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    signals = np.c_[np.sin(t / 9.0), np.sign(np.sin(t / 23.0 + 1))]
    group = np.arange(units) % 2
    acts = signals[:, group] * rng.uniform(0.5, 2, units) + 0.3 * rng.normal(size=(steps, units)) + rng.normal(size=units)
    return acts, group


def test_tsne_order_puts_units_of_one_population_together():
    acts, group = _two_populations()
    order = retinal.unit_order(acts)
    assert sorted(order) == list(range(len(group)))
    assert np.count_nonzero(np.diff(group[order])) == 1  # one boundary between the two populations
    assert np.count_nonzero(np.diff(group)) == len(group) - 1  # (they were interleaved)
    assert list(retinal.unit_order(acts)) == list(order)  # random_state fixed


def test_raster_files_hold_the_sorted_units_and_the_pickups(tmp_path):
    acts, group = _two_populations(steps=200, units=12)
    health = np.full(200, 100.0)
    health[50:] += 20
    health[120:] -= 30
    files = retinal.plot_raster(acts, health, tmp_path, "raster_fc", "FC")
    table = pd.read_csv(files.csv)
    assert list(table.loc[table["pickup"] != 0, "t"]) == [50, 120]
    assert list(table.loc[table["pickup"] != 0, "pickup"]) == [1, -1]
    units = [int(c.removeprefix("unit")) for c in table.columns if c.startswith("unit")]
    assert sorted(units) == list(range(12)) and np.count_nonzero(np.diff(group[units])) == 1
    assert np.allclose(table[f"unit{units[0]}"], retinal.zscore(acts)[:, units[0]])
    assert files.png.stat().st_size > 1000


def test_state_tsne_separates_two_regimes_and_keeps_value_and_health(tmp_path):
    rng = np.random.default_rng(0)
    states = np.r_[rng.normal(0, 1, (150, 16)), rng.normal(6, 1, (150, 16))]
    value, health = np.r_[np.zeros(150), np.ones(150)], np.linspace(100, 40, 300)
    files = retinal.plot_state_tsne(states, value, health, tmp_path, "tsne_rnn", "GRU")
    table = pd.read_csv(files.csv)
    assert len(table) == 300 and np.allclose(table["health"], health)
    xy = table[["tsne_x", "tsne_y"]].to_numpy()
    a, b = xy[:150].mean(0), xy[150:].mean(0)
    nearer = np.linalg.norm(xy[:150] - a, axis=1) < np.linalg.norm(xy[:150] - b, axis=1)
    assert nearer.all()


def test_tsne_copes_with_very_few_points():
    assert retinal.tsne(np.ones((3, 5)), 1).shape == (3, 1)
    assert retinal.tsne(np.random.default_rng(0).normal(size=(6, 5)), 1).shape == (6, 1)  # perplexity capped


# -- recordings and the report section ------------------------------------------------------------


def _synthetic_recording(steps: int, hidden: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    # The floor drains 8 every 35 steps; an apple (+20) every 50 steps.
    health = np.clip(100 - 8 * (t // 35) + 20 * (t // 50), 0, 100).astype(float)
    return {
        "frames": rng.integers(0, 255, (steps, 36, 64, 3), dtype=np.uint8),
        "fc": rng.normal(size=(steps, hidden)).astype(np.float32),
        "rnn": np.tanh(rng.normal(size=(steps, hidden))).astype(np.float32),
        "value": rng.normal(size=steps).astype(np.float32),
        "actions": rng.integers(0, 3, (steps, 2)),
        "health": health,
        "episode": t // 100,
    }


@pytest.fixture
def doom_run(neurorl_home, tmp_path):
    """A registry with one Doom experiment, one run and one checkpoint row."""
    engine = open_registry()
    config = {"task": {"name": "doom-basic", "family": "doom", "scenario": "basic", "width": 128, "height": 72, "frame_skip": 4,
                       "protocols": {"default": {"episodes": 2, "select": "true_reward"},
                                     "frameskip-1": {"episodes": 2, "select": "true_reward", "seed": 7, "kwargs": {"frame_skip": 1}}}},
              "model": {"name": "retinal-simple", "engine": "sample-factory", "hyper": {}},
              "budget": {"steps": 100, "checkpoint_every": 50}, "overrides": {}}
    with Session(engine) as session:
        exp = Experiment(config_hash="ef" * 16, task="doom-basic", model="retinal-simple", config=config, name="doom")
        session.add(exp)
        session.flush()
        run = Run(experiment_id=exp.id, seed=0, run_hash="5" * 32, run_dir=str(tmp_path / "run"), status="completed")
        session.add(run)
        session.flush()
        ckpt = Checkpoint(run_id=run.id, step=50, path="checkpoints/step50.pth", sha256="ab" * 32)
        session.add(ckpt)
        session.commit()
        session.refresh(run)
        session.refresh(ckpt)
    return api.Registry(engine), config, run, ckpt


def _register(registry, run):
    """What the report gives a family to keep a file it made: an artifact row, once per path."""
    from neurorl_cli.registry import queries

    def register(path, kind, query):
        with registry.session() as session:
            queries.add_artifact(session, kind, path, query, experiment_id=run.experiment_id, run_id=run.id, once=True)
            session.commit()

    return register


def _recording_artifacts(registry) -> list[Artifact]:
    with registry.session() as session:
        return list(session.exec(select(Artifact).where(Artifact.kind == retinal.RECORDING_KIND)))


def test_a_recording_is_stored_once_and_reused(doom_run):
    registry, config, run, ckpt = doom_run
    calls = []

    def record():
        calls.append(1)
        return _synthetic_recording(30)

    first, reused = retinal.recorded_activity(_register(registry, run), run, ckpt, record, 30, 7)
    assert not reused and len(calls) == 1
    (artifact,) = _recording_artifacts(registry)
    assert artifact.run_id == run.id and artifact.path.endswith("recording-step50-abababababab-T30-fs1-seed7.npz")
    again, reused = retinal.recorded_activity(_register(registry, run), run, ckpt, record, 30, 7)
    assert reused and len(calls) == 1 and len(_recording_artifacts(registry)) == 1
    assert all(np.array_equal(first[k], again[k]) for k in retinal.RECORDING_KEYS)
    # Other settings are another recording; a damaged file is recorded again.
    retinal.recorded_activity(_register(registry, run), run, ckpt, record, 20, 7)
    assert len(calls) == 2 and len(_recording_artifacts(registry)) == 2
    with open(artifact.path, "wb") as fh:
        fh.write(b"not an npz")
    _, reused = retinal.recorded_activity(_register(registry, run), run, ckpt, record, 30, 7)
    assert not reused and len(calls) == 3 and len(_recording_artifacts(registry)) == 2


def test_a_recording_with_missing_or_uneven_arrays_is_refused(doom_run):
    registry, config, run, ckpt = doom_run
    broken = _synthetic_recording(10)
    del broken["rnn"]
    with pytest.raises(ValueError, match="lacks rnn"):
        retinal.recorded_activity(_register(registry, run), run, ckpt, lambda: broken, 10, 0)
    uneven = _synthetic_recording(10)
    uneven["value"] = uneven["value"][:5]
    with pytest.raises(ValueError, match="differ in length"):
        retinal.recorded_activity(_register(registry, run), run, ckpt, lambda: uneven, 10, 0)
    assert _recording_artifacts(registry) == []


def test_doom_section_from_a_recording_and_a_real_encoder(doom_run, tmp_path):
    registry, config, run, ckpt = doom_run
    encoder = make_encoder("retinal-lindsey", (3, 36, 64), global_channels=3, retinal_bottleneck=2, vvs_depth=0, kernel_size=5)
    policy = SimpleNamespace(actor_critic=SimpleNamespace(encoder=encoder))  # found through the usual attributes
    asked = []

    def record(cfg, checkpoint, steps, frame_skip, seed):
        asked.append((checkpoint, steps, frame_skip, seed))
        return _synthetic_recording(steps)

    out, written = tmp_path / "rep", []
    sections = retinal.doom_analysis_sections(_register(registry, run), config, run, ckpt, tmp_path / "ckpt.pth", out, written,
                                              steps=120, rf_samples=400, policy=policy, record=record)
    assert asked == [(tmp_path / "ckpt.pth", 120, 1, 7)]  # frame skip 1, the frameskip-1 protocol's seed
    names = {p.name for p in written}
    assert {"agent_view.gif", "rf_conv1.png", "rf_conv2.png", "raster_fc.png", "raster_rnn.csv", "tsne_rnn.svg"} <= names
    assert "rf_conv3.png" not in names  # vvs_depth 0: two conv layers
    page = html.page("t", sections)
    # kernel 5, stride 2 then 1: fields of 5 and 5 + 4*2 = 13 pixels.
    assert "receptive field (5x5 px" in page and "receptive field (13x13 px" in page and "stored for later reports" in page
    import imageio.v3 as iio

    assert iio.improps(out / "agent_view.gif").shape[0] == 120
    # A second report reuses the stored recording: nothing is simulated again.
    sections = retinal.doom_analysis_sections(_register(registry, run), config, run, ckpt, tmp_path / "ckpt.pth", out, [],
                                              steps=120, rf_samples=400, policy=policy, record=record)
    assert len(asked) == 1 and "stored recording" in html.page("t", sections)


def test_doom_section_without_an_encoder_says_so(doom_run, tmp_path):
    registry, config, run, ckpt = doom_run
    sections = retinal.doom_analysis_sections(_register(registry, run), config, run, ckpt, tmp_path / "ckpt.pth", tmp_path / "rep", [],
                                              steps=40, rf_samples=100, policy=object(),
                                              record=lambda *a, **k: _synthetic_recording(40))
    assert "exposes no retinal encoder" in html.page("t", sections)


def test_an_engine_that_records_nothing_still_gets_receptive_fields(doom_run, tmp_path):
    registry, config, run, ckpt = doom_run
    sb3 = {**config, "model": {"name": "retinal-recurrent-ppo", "engine": "sb3", "algo": "RecurrentPPO", "hyper": {}}}
    encoder = make_encoder("retinal-simple", (3, 36, 64), global_channels=2)
    written = []
    sections = retinal.doom_analysis_sections(_register(registry, run), sb3, run, ckpt, tmp_path / "ckpt.zip", tmp_path / "rep", written,
                                              rf_samples=200, policy=SimpleNamespace(model=encoder))
    page = html.page("t", sections)
    assert "The sb3 engine does not record activity" in page
    assert {p.name for p in written} == {"rf_conv1.png", "rf_conv1.svg", "rf_conv1.csv"}
    assert _recording_artifacts(registry) == []


def test_doom_report_plots_three_training_curves_and_the_evaluation_metrics(doom_run, tmp_path):
    registry, config, run, ckpt = doom_run
    with registry.session() as session:
        later = Checkpoint(run_id=run.id, step=100, path="checkpoints/step100.pth", sha256="cd" * 32)
        session.add(later)
        session.flush()
        for step in (50, 100):
            for key, value in ((retinal.TRUE_REWARD_KEY, step / 10), (retinal.SHAPED_REWARD_KEY, step / 5), (retinal.FPS_KEY, 900.0)):
                session.add(Metric(run_id=run.id, attempt=1, key=key, step=step, value=value))
        # "default" (named first by the task) prefers step 50, "frameskip-1" step 100.
        for checkpoint_id, protocol, score in ((ckpt.id, "default", 5.0), (later.id, "default", 1.0),
                                               (ckpt.id, "frameskip-1", 3.0), (later.id, "frameskip-1", 4.0)):
            session.add(Evaluation(checkpoint_id=checkpoint_id, protocol=protocol, protocol_hash=protocol, select="true_reward", score=score,
                                   trials=2, metrics={"true_reward": score, "health_gathered": 40.0, "items_picked": 2.0,
                                                      "episode_length": 300.0, "episodes": 2}))
        session.commit()
    made = report.experiment_report(registry, "doom", tmp_path / "rep")
    page = made.index.read_text()
    names = {p.name for p in made.files}
    assert {"training_curve.png", "training_train_episode_reward.png", "training_train_steps_per_s.png"} <= names
    assert "checkpoints_default.png" in names and "checkpoints_frameskip-1.png" in names
    assert "health_gathered" in page and "items_picked" in page
    # The analyses come once, after every protocol's scores, for the best checkpoint under the
    # protocol the task names first; its file is missing here, so the page says why there are none.
    assert page.count("No analyses: ") == 1 and "checkpoints/step50.pth is missing" in page
    assert page.index("Evaluation: protocol default") < page.index("Evaluation: protocol frameskip-1") < page.index("No analyses")
    only = report.experiment_report(registry, "doom", tmp_path / "rep2", protocol="frameskip-1").index.read_text()
    assert "checkpoints/step100.pth is missing" in only and "Evaluation: protocol default" not in only
