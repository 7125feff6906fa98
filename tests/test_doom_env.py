"""The ViZDoom adapter (families/doom/env.py) with the real engine: scenarios, observations, actions,
frame skip, reward shaping, seeds, bad input; and a Doom task trained end to end by sb3."""

from __future__ import annotations

import json
import sqlite3

import cv2
import gymnasium as gym
import numpy as np
import pytest
import vizdoom as vzd

from neurorl_cli import catalog
from neurorl_cli.families.doom.analysis import TRUE_REWARD_KEY
from neurorl_cli.families.doom.env import DoomEnv, health_events, scenario_names, scenario_path
from neurorl_cli.errors import UserError

from .conftest import REPO, cli

APPLES = REPO / "scenarios" / "retinal_apple_gathering.cfg"
needs_apples = pytest.mark.skipif(not APPLES.is_file(), reason="scenarios/retinal_apple_gathering.cfg not built yet")


@pytest.fixture
def env_factory():
    made = []

    def make(*args, **kwargs):
        env = DoomEnv(*args, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def play(env, actions, seed=None):
    """Observations, rewards and infos of a fixed action sequence from a reset."""
    obs, info = env.reset(seed=seed)
    out = [(obs.copy(), None, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs.copy(), reward, info))
        if terminated or truncated:
            break
    return out


def test_scenario_names_resolve_or_are_listed():
    assert scenario_path("basic") == scenario_path("basic").parent / "basic.cfg"
    assert str(scenario_path("health_gathering")).startswith(vzd.scenarios_path)
    assert {"basic", "health_gathering"} <= set(scenario_names())
    assert "multi" not in scenario_names()  # engine settings, not a scenario: no map beside it
    with pytest.raises(UserError, match=r"unknown scenario 'retinal_nope'; known: .*basic.*health_gathering"):
        scenario_path("retinal_nope")


@needs_apples
def test_retinal_scenarios_come_from_our_folder():
    assert scenario_path("retinal_apple_gathering") == APPLES
    assert scenario_names()[0].startswith("retinal_")


def test_malformed_cfg_is_one_line(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("doom_scenario_path = basic.wad\nthis line is not a setting\n")
    with pytest.raises(UserError) as info:
        DoomEnv(str(bad))
    message = str(info.value)
    assert "malformed bad.cfg" in message and "Syntax error in line #2" in message and "\n" not in message
    missing = tmp_path / "missing_wad.cfg"
    missing.write_text("doom_scenario_path = not_here.wad\n")
    with pytest.raises(UserError, match="names a file that is not there.*not_here.wad"):
        DoomEnv(str(missing))


def test_observations_are_the_screen_resized(env_factory):
    env = env_factory("health_gathering", seed=0)
    obs, info = env.reset()
    assert env.observation_space == gym.spaces.Box(0, 255, (72, 128, 3), np.uint8)
    assert obs.shape == (72, 128, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert env.frame().shape == (120, 160, 3)
    obs, *_ = env.step((0, 1))
    assert np.array_equal(obs, cv2.resize(env.frame(), (128, 72), interpolation=cv2.INTER_AREA))
    assert env.action_space == gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Discrete(3)))
    assert info["health"] == env.game.get_game_variable(vzd.GameVariable.HEALTH)
    grey = env_factory("health_gathering", seed=0, greyscale_obs=True, actions="multidiscrete", width=64, height=48)
    obs, _ = grey.reset()
    assert obs.shape == (48, 64, 1) and grey.observation_space.shape == (48, 64, 1)
    assert grey.action_space == gym.spaces.MultiDiscrete([3, 3])


def test_turn_and_move_map_onto_the_scenarios_buttons(env_factory):
    hg = env_factory("health_gathering")
    # health_gathering offers TURN_LEFT, TURN_RIGHT, MOVE_FORWARD: backward completes the move axis.
    assert hg.buttons == ["TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD", "MOVE_BACKWARD"]
    assert [b.name for b in hg.game.get_available_buttons()] == hg.buttons
    assert hg._button_lists[2 * 3 + 1] == [0, 1, 1, 0]  # turn right + forward
    basic = env_factory("basic", frame_skip=1, seed=0)
    assert basic.buttons == ["MOVE_LEFT", "MOVE_RIGHT", "ATTACK"]
    basic.reset()
    ammo = basic.game.get_game_variable(vzd.GameVariable.AMMO2)
    rewards = [basic.step((0, 1))[1] for _ in range(20)]  # move axis 1 = ATTACK in basic
    assert basic.game.get_game_variable(vzd.GameVariable.AMMO2) < ammo and -6.0 in rewards  # a missed shot costs 5
    still = play(basic, [(0, 0)] * 3, seed=1)[-1][0]
    strafed = play(basic, [(1, 0)] * 3, seed=1)[-1][0]
    assert not np.array_equal(still, strafed)


def test_frame_skip_repeats_the_action_inside_vizdoom(env_factory):
    for skip in (1, 4):
        env = env_factory("basic", frame_skip=skip, seed=0)
        env.reset()
        before = env.game.get_episode_time()
        _, reward, *_ = env.step((0, 0))
        assert env.game.get_episode_time() - before == skip
        assert reward == -skip  # basic's -1 per tic, summed over the repeated tics


def test_reward_shaping_adds_one_per_health_rise(env_factory):
    env = env_factory("health_gathering", seed=3)
    rng = np.random.default_rng(0)
    obs, info = env.reset()
    health, rises, total_true, gathered = info["health"], 0, 0.0, 0.0
    while True:
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, 3, size=2))
        rose = info["health"] > health
        gathered += max(info["health"] - health, 0)
        assert reward == info["true_reward"] + (1.0 if rose else 0.0)
        rises += rose
        total_true += info["true_reward"]
        health = info["health"]
        if terminated or truncated:
            break
    assert rises >= 1, "this seed's random walk picks up a medkit"
    assert info["true_objective"] == pytest.approx(total_true)
    assert info["episode_extra_stats"]["health_gathered"] == pytest.approx(gathered)
    assert info["episode_extra_stats"]["items_picked"] == rises
    assert info["episode_extra_stats"]["true_reward"] == pytest.approx(total_true)
    unshaped = env_factory("health_gathering", seed=3, shape_reward=False)
    for _, reward, info in play(unshaped, [rng.integers(0, 3, size=2) for _ in range(200)])[1:]:
        assert reward == info["true_reward"]


def test_episode_ends_are_told_apart(env_factory):
    # basic times out after 300 tics (truncated); health_gathering's acid floor kills (terminated).
    env = env_factory("basic", seed=0)
    env.reset()
    ends = [env.step((0, 0)) for _ in range(75)]  # 75 steps x 4 tics
    assert [e[2:4] for e in ends[:-1]] == [(False, False)] * 74 and ends[-1][2:4] == (False, True)
    assert ends[-1][4]["true_objective"] == -300 and "true_objective" not in ends[-2][4]
    hg = env_factory("health_gathering", seed=0)
    hg.reset()
    for _ in range(600):
        _, _, terminated, truncated, info = hg.step((1, 0))  # turning in place: no medkits
        if terminated or truncated:
            break
    assert terminated and not truncated and hg.game.is_player_dead()


def test_seeds_fix_the_episode(env_factory):
    actions = [(2, 1)] * 30 + [(1, 1)] * 30
    a = [o for o, *_ in play(env_factory("health_gathering", seed=7), actions)]
    b = [o for o, *_ in play(env_factory("health_gathering", seed=7), actions)]
    c = [o for o, *_ in play(env_factory("health_gathering", seed=8), actions)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    used = env_factory("health_gathering", seed=1)
    play(used, actions)
    play(used, actions)
    again = [o for o, *_ in play(used, actions, seed=7)]  # a seeded reset, whatever came before
    assert all(np.array_equal(x, y) for x, y in zip(a, again))


def test_gymnasium_ids_make_doom_envs():
    assert {"neurorl/DoomBasic-v0", "neurorl/DoomHealthGathering-v0", "neurorl/DoomAppleGathering-v0"} <= set(gym.registry)
    env = gym.make("neurorl/DoomBasic-v0", frame_skip=2)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (72, 128, 3) and env.unwrapped.frame_skip == 2 and env.unwrapped.scenario == "basic"
        env.step(env.action_space.sample())
    finally:
        env.close()


def test_one_rule_tells_pickups_from_drain_death_and_respawn():
    before = np.array([92, 112, 112, 82, 74, 0, 100])
    after = np.array([112, 112, 82, 74, 0, 100, 75])
    gained, harmed = health_events(before, after)
    # +20 healed; -30 and -25 were harmful items; -8 (the floor's drain), a death and a respawn are neither
    assert gained.tolist() == [True, False, False, False, False, False, False]
    assert harmed.tolist() == [False, False, True, False, False, False, True]
    assert health_events(50.0, 55.0) == (True, False)  # numbers too, as the environment steps


@needs_apples
def test_apple_gathering_runs_and_counts_pickups(env_factory):
    env = env_factory("retinal_apple_gathering", seed=1)
    assert env.buttons == ["TURN_LEFT", "TURN_RIGHT", "MOVE_FORWARD", "MOVE_BACKWARD"]
    obs, info = env.reset()
    assert obs.shape == (72, 128, 3) and info["health"] > 0
    rng = np.random.default_rng(1)
    for _ in range(600):
        _, _, terminated, truncated, info = env.step(rng.integers(0, 3, size=2))
        if terminated or truncated:
            break
    assert terminated or truncated
    assert set(info["episode_extra_stats"]) >= {"health_gathered", "items_picked", "true_reward"}


def test_doom_tasks_and_models_are_in_the_catalog():
    assert {"doom-basic", "doom-health-gathering", "apple-gathering"} <= set(catalog.task_names())
    assert {"retinal-simple", "retinal-lindsey", "retinal-recurrent-ppo"} <= set(catalog.model_names())
    task = catalog.load_task("doom-basic")
    assert (task.scenario, task.frame_skip, task.width, task.height, task.shape_reward) == ("basic", 4, 128, 72, True)
    assert set(task.protocols) == {"default", "frameskip-1"} and task.protocols["frameskip-1"].kwargs == {"frame_skip": 1}
    (config,) = catalog.resolve(task, catalog.load_model("retinal-simple"), ["task.frame_skip=2", "model.hidden_size=32"])
    assert config["task"]["frame_skip"] == 2 and config["model"]["hyper"]["hidden_size"] == 32
    with pytest.raises(UserError, match="must be a multiple of worker_num_splits"):
        catalog.resolve(task, catalog.load_model("retinal-simple"), ["model.num_envs_per_worker=3"])
    with pytest.raises(UserError, match="with V-trace, recurrence .16. must equal rollout .32."):
        catalog.resolve(task, catalog.load_model("retinal-simple"), ["model.recurrence=16"])
    (config,) = catalog.resolve(task, catalog.load_model("retinal-simple"), ["model.recurrence=16", "model.with_vtrace=false"])
    assert config["model"]["hyper"]["recurrence"] == 16
    # An sb3 model without image observations does not fit a Doom task, with one clear line.
    ppo = catalog.load_model("ppo").model_copy(update={"families": ["doom"]})
    problem = catalog.pair_problem(catalog.resolve(task, ppo)[0])
    assert "ppo takes vector observations, but doom-basic gives images" in problem


def test_adding_the_encoder_field_keeps_stored_hashes():
    # `encoder` was added to sb3 models after configs were stored: absent from their identity.
    (config,) = catalog.resolve(catalog.load_task("perceptual-decision-making"), catalog.load_model("recurrent-ppo"))
    assert "encoder" not in config["model"]
    (config,) = catalog.resolve(catalog.load_task("doom-basic"), catalog.load_model("retinal-recurrent-ppo"))
    assert config["model"]["encoder"]["name"] == "retinal-simple"


def test_bad_doom_input_is_one_line(neurorl_home, tmp_path):
    spec = tmp_path / "my-doom.toml"
    spec.write_text('family = "doom"\nscenario = "retinal_nope"\n[budget]\nsteps = 64\ncheckpoint_every = 32\n')
    proc = cli("train", str(spec), "retinal-simple")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "unknown scenario 'retinal_nope'" in proc.stderr and "health_gathering" in proc.stderr
    proc = cli("train", "doom-basic", "recurrent-ppo")
    assert proc.returncode == 2 and "gives images" in proc.stderr


@pytest.mark.slow
def test_sb3_retinal_model_trains_and_evaluates_on_doom(neurorl_home):
    # A small encoder keeps the checkpoints small (retinal-simple's linear layer has 8.6M weights at 72x128).
    cli("train", "doom-basic", "retinal-recurrent-ppo", "--steps", "256", "--checkpoint-every", "128",
        "--set", "model.n_steps=32", "--set", "model.batch_size=64", "--set", "model.n_epochs=1",
        "--set", "model.global_channels=4", "--set", "model.retinal_stride=2", "--set", "model.lstm_hidden_size=16",
        check=True)
    con = sqlite3.connect(neurorl_home / "registry.db")
    steps = [s for (s,) in con.execute("SELECT step FROM checkpoint ORDER BY step")]
    keys = {k for (k,) in con.execute("SELECT DISTINCT key FROM metric")}
    con.close()
    assert steps == [128, 256]
    # The keys the sample-factory models log and the Doom report plots.
    assert {TRUE_REWARD_KEY, "train/health_gathered", "train/steps_per_s"} <= keys
    cli("eval", "e1", "--all-checkpoints", "--episodes", "2", check=True)
    con = sqlite3.connect(neurorl_home / "registry.db")
    rows = con.execute("SELECT protocol, trials, metrics FROM evaluation").fetchall()
    episodes = con.execute("SELECT reward, steps, conditions FROM trial").fetchall()
    con.close()
    assert sorted(p for p, *_ in rows) == ["default", "default", "frameskip-1", "frameskip-1"]
    for protocol, trials, metrics in rows:
        m = json.loads(metrics)
        assert trials == 2 and m["episodes"] == 2
        # basic: -1 per tic for at most 300 tics, -5 per missed shot (50 bullets), +101 for the kill.
        assert -550 <= m["true_reward"] <= 101
        # 300 tics are 75 steps at frame skip 4 and 300 under frameskip-1 (the analysis setting).
        assert 0 < m["episode_length"] <= (75 if protocol == "default" else 300)
    assert len(episodes) == 8 and all("health_gathered" in json.loads(c) for *_, c in episodes)
    best = cli("eval", "e1", "--best", "--json", check=True)
    assert {r["protocol"] for r in json.loads(best.stdout)} == {"default", "frameskip-1"}
