"""ViZDoom scenarios as gymnasium environments, as retinal-rl sets them up.

One `DoomEnv` is one headless Doom game: a 160x120 RGB screen resized (area interpolation)
to width x height, frame skip as action repeat inside vizdoom, HEALTH read every step, and the
reference's reward shaping (+1 in each step in which HEALTH rose) with the engine's own reward
reported apart (`info["true_reward"]`, and at episode end `info["true_objective"]`).

Actions are turn x move, two Discrete(3) axes whose value 0 is "no button". A scenario's .cfg
names the buttons it offers; each axis takes the first pair of buttons the .cfg offers any of:

    turn:  TURN_LEFT / TURN_RIGHT,     else MOVE_LEFT / MOVE_RIGHT  (strafing, as in basic)
    move:  MOVE_FORWARD / MOVE_BACKWARD, else ATTACK / (nothing)    (basic: shoot or not)

and when a .cfg offers one button of a pair (health_gathering has no MOVE_BACKWARD) the pair is
completed, since the reference's action space always has both. A .cfg offering none of them gets
the reference's four buttons.
"""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import vizdoom as vzd

from neurorl_cli.families.doom.spec import environment as task_environment
from neurorl_cli.home import bundled_dir
from neurorl_cli.errors import UserError

B = vzd.Button
TURN_PAIRS = [(B.TURN_LEFT, B.TURN_RIGHT), (B.MOVE_LEFT, B.MOVE_RIGHT)]
MOVE_PAIRS = [(B.MOVE_FORWARD, B.MOVE_BACKWARD), (B.ATTACK, None)]
SCREEN = (160, 120)  # the rendered screen (width, height), as the reference renders it
# A fall in HEALTH larger than this in one step is a harmful item picked up; smaller falls are
# the floor's periodic damage ("hunger", about 8 HP in the reference's arenas).
HARM_THRESHOLD = 10


def health_events(before, after):
    """(gained, harmed) for health going from `before` to `after` in one step (numbers or arrays):
    a healing item picked up (any rise), a harmful one (a fall beyond HARM_THRESHOLD). The
    agent must be alive on both sides: a death or a respawn is neither. The one definition of a
    pickup, for the episode statistics and for the analyses of recorded health."""
    change = after - before
    alive = (before > 0) & (after > 0)
    return (change > 0) & alive, (change < -HARM_THRESHOLD) & alive


# ----------------------------------------------------------------------------- scenarios


def scenario_names() -> list[str]:
    """Every scenario name `scenario_path` knows: ours (retinal_*) and vizdoom's."""
    ours = sorted(p.stem for p in bundled_dir("scenarios").glob("retinal_*.cfg"))
    # vizdoom's folder also holds engine settings (doom.cfg, multi.cfg, ...): a scenario has its map beside it.
    theirs = sorted(p.stem for p in Path(vzd.scenarios_path).glob("*.cfg") if p.with_suffix(".wad").is_file())
    return ours + theirs


def scenario_path(name: str) -> Path:
    """The .cfg of a scenario: `retinal_<name>` from neurorl's scenarios, others from vizdoom's
    (`basic`, `health_gathering`, ...), or a path to a user's own .cfg file."""
    if name.endswith(".cfg") and Path(name).is_file():
        return Path(name).resolve()
    if name in scenario_names():
        folder = bundled_dir("scenarios") if name.startswith("retinal_") else Path(vzd.scenarios_path)
        return folder / f"{name}.cfg"
    raise UserError(f"unknown scenario '{name}'; known: {', '.join(scenario_names())} (or a path to a .cfg file)")


@contextmanager
def _stderr_lines(sink: list[str]):
    """Collect what the engine writes to the stderr file descriptor (its config warnings)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.extend(line for line in tmp.read().decode(errors="replace").splitlines() if line.strip())


def _doom_ini() -> str:
    """ZDoom's own settings file: kept out of the working directory (vizdoom writes it on exit)."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "neurorl"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "vizdoom.ini")


def controls(offered: list) -> tuple[tuple, tuple]:
    """The (turn pair, move pair) of buttons for a scenario that offers `offered` (see the module doc)."""
    def pick(pairs):
        for pair in pairs:
            if any(b in offered for b in pair if b is not None):
                return pair
        return pairs[0]

    return pick(TURN_PAIRS), pick(MOVE_PAIRS)


# ----------------------------------------------------------------------------- environment


class DoomEnv(gym.Env):
    """One ViZDoom game; observations (height, width, 3) uint8 RGB, actions turn x move."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 35}

    def __init__(
        self,
        scenario: str,
        frame_skip: int = 4,
        width: int = 128,
        height: int = 72,
        actions: str = "tuple",
        shape_reward: bool = True,
        greyscale_obs: bool = False,
        seed: int | None = None,
        window: bool = False,
        render_mode: str | None = None,
    ):
        if actions not in ("tuple", "multidiscrete"):
            raise UserError(f"actions must be 'tuple' (sample-factory) or 'multidiscrete' (sb3), got {actions!r}")
        if frame_skip < 1 or width < 1 or height < 1:
            raise UserError(f"frame_skip, width and height must be positive (got {frame_skip}, {width}, {height})")
        self.scenario, self.frame_skip, self.size = scenario, int(frame_skip), (int(width), int(height))
        self.shape_reward, self.greyscale_obs, self.render_mode = bool(shape_reward), bool(greyscale_obs), render_mode
        self._seed = seed
        self.cfg = scenario_path(scenario)
        self.game = self._make_game(window)
        turn, move = controls(self.game.get_available_buttons())
        buttons = [b for b in (*turn, *move) if b is not None]
        self.game.set_available_buttons(buttons)
        self.buttons = [b.name for b in buttons]
        self.axes = ([None, *turn], [None, *move])  # button of each axis value (None: no button)
        # The button vector of each of the 9 (turn, move) actions, built once.
        self._button_lists = [
            [float(b is not None and b in (self.axes[0][t], self.axes[1][m])) for b in buttons]
            for t in range(3) for m in range(3)
        ]
        self._init_game()
        channels = 1 if self.greyscale_obs else 3
        self.observation_space = gym.spaces.Box(0, 255, (height, width, channels), dtype=np.uint8)
        self.action_space = (gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Discrete(3))) if actions == "tuple"
                             else gym.spaces.MultiDiscrete([3, 3]))
        self.timeout = self.game.get_episode_timeout()
        self._screen = np.zeros((SCREEN[1], SCREEN[0], 3), dtype=np.uint8)
        self._obs = np.zeros(self.observation_space.shape, dtype=np.uint8)
        self._started = False

    def _make_game(self, window: bool) -> vzd.DoomGame:
        game = vzd.DoomGame()
        game.set_doom_config_path(_doom_ini())
        warnings: list[str] = []
        with _stderr_lines(warnings):
            ok = game.load_config(str(self.cfg))
        if not ok:
            first = next((w.removeprefix("WARNING! ") for w in warnings), "vizdoom could not read it")
            raise UserError(f"scenario {self.scenario}: malformed {self.cfg.name}: {first}")
        game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_mode(vzd.Mode.PLAYER)
        if window and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UserError("no display for a Doom window here: record a GIF instead (watch --gif)")
        game.set_window_visible(window)
        if self._seed is not None:
            game.set_seed(int(self._seed) % 2**32)
        return game

    def _init_game(self) -> None:
        try:
            self.game.init()
        except vzd.FileDoesNotExistException as exc:
            raise UserError(f"scenario {self.scenario}: {self.cfg.name} names a file that is not there ({exc})") from exc
        except vzd.ViZDoomErrorException as exc:
            raise UserError(f"scenario {self.scenario}: vizdoom cannot start it ({exc})") from exc

    # --------------------------------------------------------------- gymnasium API

    def _observe(self) -> np.ndarray:
        state = self.game.get_state()
        if state is None:  # the episode is over: the last observation stands
            return self._obs
        self._screen = state.screen_buffer
        obs = cv2.resize(self._screen, self.size, interpolation=cv2.INTER_AREA)
        if self.greyscale_obs:
            obs = cv2.cvtColor(obs, cv2.COLOR_RGB2GRAY)[:, :, None]
        self._obs = obs
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # vizdoom draws an episode from the seed set before new_episode(): a seeded reset gives
        # the same episode whatever came before, and the constructor's seed seeds the first one.
        if seed is None and not self._started:
            seed = self._seed
        if seed is not None:
            self.game.set_seed(int(seed) % 2**32)
        self.game.new_episode()
        self._started = True
        self.health = self.game.get_game_variable(vzd.GameVariable.HEALTH)
        self.stats = {"true_reward": 0.0, "health_gathered": 0.0, "items_picked": 0, "shaped_reward": 0.0}
        self.steps = 0
        return self._observe(), {"health": self.health}

    def step(self, action):
        a = self._button_lists[int(action[0]) * 3 + int(action[1])]
        true_reward = self.game.make_action(a, self.frame_skip)
        health = self.game.get_game_variable(vzd.GameVariable.HEALTH)
        before, self.health = self.health, health
        change = health - before
        reward = true_reward + (1.0 if self.shape_reward and change > 0 else 0.0)
        stats = self.stats
        stats["true_reward"] += true_reward
        stats["shaped_reward"] += reward
        gained, harmed = health_events(before, health)
        if gained:
            stats["health_gathered"] += change
        stats["items_picked"] += int(gained or harmed)
        self.steps += 1
        obs = self._observe()
        info = {"true_reward": true_reward, "health": health}
        terminated = truncated = False
        if self.game.is_episode_finished():
            truncated = 0 < self.timeout <= self.game.get_episode_time() and not self.game.is_player_dead()
            terminated = not truncated
            info["true_objective"] = stats["true_reward"]
            info["episode_extra_stats"] = {
                "health_gathered": stats["health_gathered"], "items_picked": stats["items_picked"],
                "true_reward": stats["true_reward"],
            }
        return obs, reward, terminated, truncated, info

    def frame(self) -> np.ndarray:
        """The last full screen (120, 160, 3) RGB, for GIFs."""
        return self._screen

    def render(self):
        return self._screen if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if getattr(self, "game", None) is not None:
            self.game.close()
            self.game = None


def task_env(task: dict, seed: int | None = None, actions: str = "tuple", overrides: dict | None = None,
             **extra: Any) -> DoomEnv:
    """The DoomEnv of a resolved Doom task (a config's `task` table), with evaluation overrides."""
    settings = {**task_environment(task), **(overrides or {})}
    return DoomEnv(**settings, actions=actions, seed=seed, **extra)


# ----------------------------------------------------------------------------- evaluation


def evaluate(policy, task: dict, protocol: dict, actions: str = "tuple", n_envs: int = 4,
             on_step=None) -> tuple[dict, list[dict]]:
    """A protocol's episodes with a batched policy: (metrics, one row per episode).

    Episode e is drawn from seed `protocol.seed + e`, so every checkpoint meets the same episodes;
    `n_envs` games step in lockstep and the policy's recurrent state starts afresh only where an
    episode begins. `on_step(env_index, obs, action, reward, info)` sees every step.
    """
    import torch

    episodes = int(protocol["episodes"])
    deterministic = protocol.get("actions", "greedy") == "greedy"
    torch.manual_seed(int(protocol["seed"]))  # sampled actions are drawn from torch's generator
    n_envs = max(1, min(n_envs, episodes))
    envs = [task_env(task, actions=actions, overrides=protocol.get("kwargs") or None) for _ in range(n_envs)]
    next_episode = 0
    current = []
    obs = []
    for env in envs:
        ob, _ = env.reset(seed=int(protocol["seed"]) + next_episode)
        current.append(next_episode)
        next_episode += 1
        obs.append(ob)
    obs = np.stack(obs)
    active = np.ones(n_envs, dtype=bool)
    rows: list[dict] = []
    policy.reset(n_envs)
    try:
        while active.any():
            actions = np.asarray(policy.act(obs, deterministic=deterministic))
            started = np.zeros(n_envs, dtype=bool)
            for i, env in enumerate(envs):
                if not active[i]:
                    continue
                ob, reward, terminated, truncated, info = env.step(actions[i])
                if on_step is not None:
                    on_step(i, obs[i], actions[i], reward, info)
                if terminated or truncated:
                    s = env.stats
                    rows.append({
                        "env": i, "ground_truth": None, "choice": None, "correct": None,
                        "reward": float(s["true_reward"]), "reaction_time": None, "steps": env.steps,
                        "conditions": {
                            "episode": current[i], "seed": int(protocol["seed"]) + current[i],
                            "health_gathered": float(s["health_gathered"]), "items_picked": int(s["items_picked"]),
                            "shaped_reward": float(s["shaped_reward"]), "died": bool(terminated and env.game.is_player_dead()),
                        },
                    })
                    if next_episode < episodes:
                        ob, _ = env.reset(seed=int(protocol["seed"]) + next_episode)
                        current[i] = next_episode
                        next_episode += 1
                        started[i] = True
                    else:
                        active[i] = False
                obs[i] = ob
            if started.any():
                policy.episode_started(started)
    finally:
        for env in envs:
            env.close()
    rows.sort(key=lambda r: r["conditions"]["episode"])
    for index, row in enumerate(rows):
        row["index"] = index
    return episode_metrics(rows), rows


def play(policy, task: dict, seed: int, overrides: dict | None = None, deterministic: bool = True,
         actions: str = "tuple") -> Iterator[dict]:
    """One environment played step by step, episodes following one another, until the caller stops.

    Any batched Policy will do (sb3's too). The first episode is drawn from `seed`. Yields per
    step: obs (what the agent saw), action, reward, info (after the step), the policy's activity
    for this step, the full screen after the step (`screen`), the episode number and the step in
    it (`t`), and the scenario's buttons; the recurrent state starts afresh with every episode."""
    import torch

    if not deterministic:
        torch.manual_seed(seed)  # sampled actions come from torch's generator
    env = task_env(task, actions=actions, overrides=overrides)
    try:
        obs, _ = env.reset(seed=seed)
        policy.reset(1)
        episode, t = 0, 0
        while True:
            action = np.asarray(policy.act(obs[None], deterministic=deterministic))[0]
            activity = policy.activity()
            next_obs, reward, terminated, truncated, info = env.step(action)
            yield {"obs": obs, "action": action, "reward": float(reward), "info": info, "activity": activity,
                   "screen": env.frame(), "episode": episode, "t": t, "done": bool(terminated or truncated),
                   "buttons": env.buttons}
            t += 1
            if terminated or truncated:
                next_obs, _ = env.reset()
                policy.episode_started(np.ones(1, dtype=bool))
                episode, t = episode + 1, 0
            obs = next_obs
    finally:
        env.close()


def episode_metrics(rows: list[dict]) -> dict[str, float]:
    """Means over evaluated episodes (true_reward is the engine's unshaped episode reward)."""
    def mean(values):
        return float(np.mean(values)) if values else math.nan

    return {
        "true_reward": mean([r["reward"] for r in rows]),
        "true_reward_std": float(np.std([r["reward"] for r in rows])) if rows else math.nan,
        "shaped_reward": mean([r["conditions"]["shaped_reward"] for r in rows]),
        "health_gathered": mean([r["conditions"]["health_gathered"] for r in rows]),
        "items_picked": mean([r["conditions"]["items_picked"] for r in rows]),
        "episode_length": mean([r["steps"] for r in rows]),
        "deaths": mean([float(r["conditions"]["died"]) for r in rows]),
        "episodes": len(rows),
        "trials": len(rows),  # the registry's count of evaluated rows
    }
