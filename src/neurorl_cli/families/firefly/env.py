"""Firefly navigation (Zhang et al., "Inductive biases of neural network modularity in spatial
navigation"), batched in torch.

One trial is one episode. The agent starts at the origin facing +y, sees a target for a
moment, and steers with a joystick (linear and angular velocity commands in [-1, 1]) to
where it believes the target is, then stops. The task is the reference's, in its units:
lengths are in "units" of LINEAR_SCALE = 400 cm, a step is DT = 0.1 s.

State x = (px, py, heading, v, w), starting at (0, 0, pi/2, 0, 0). A step with action a:

    px += v cos(heading) DT;  py += v sin(heading) DT;  heading += w DT   (previous velocities)
    v = g_v a_v + eta_v + p_v(t);  w = g_w a_w + eta_w + p_w(t)          (then overwritten)

with g = gain * (200 cm/s, 90 deg/s), process noise eta ~ N(0, (process_noise * g)^2) per
component and p(t) the perturbation pulse (zero unless `perturbation` is set). The agent
observes o = (v, w) + zeta, zeta ~ N(0, (observation_noise * g)^2), except at reset where the
velocities are observed exactly (they are zero), as the reference does.

Observation (n, 6): [o_v, o_w, previous a_v, previous a_w, target x, target y] (target in
units, relative to the start). The target is in the observations the agent acts on at steps
0 .. target_visible_steps (the reset observation and the ones the first `target_visible_steps`
steps return: 0, 100, 200, 300 ms for the default 3), then zeroed, which is where the
reference switches it off.

Stop rule: an action with every |a_i| < 0.1 is a stop, but it only counts once some earlier
action of the trial had a component with |a_i| > 0.1 (so sitting still at the start is not a
stop). A counted stop ends the trial and is rewarded at the position the agent is at when it
stops (before the stopping step's motion, as in the reference): REWARD_SCALE x 1 inside the
goal radius, else exp(-d^2 / (2 sigma^2)) with sigma = goal_radius / 1.5, at least 0.001
("mixed"). A trial that has not stopped after `max_steps` steps ends with reward 0.

Trials of a batch end at different steps. An ended trial is frozen until `reset()`: it is
not stepped, its reward is 0 and its `done` stays True (`active` says which are running).
The step that ends a trial leaves the trial where it was judged, so `info["position"]`,
`distance_cm` and `overshoot_cm` describe the stop (or the timeout) position.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

LINEAR_SCALE = 400.0  # cm per unit
DT = 0.1  # s per step
TERMINAL_ACTION = 0.1  # the start / stop threshold on |a|
MAX_LINEAR = 200.0 / LINEAR_SCALE  # units/s at gain 1
MAX_ANGULAR = math.radians(90.0)  # rad/s at gain 1

# Perturbation pulses: a Gaussian bump over 11 steps (duration 10, SD 2 steps) that starts at
# a uniform step in [0, 11); its peak is uniform in these ranges (linear in units/s, angular in rad/s).
PULSE_SHAPE = [math.exp(-0.5 * ((k - 5) / 2.0) ** 2) for k in range(11)]
PULSE_START = (0, 11)
PULSE_PEAKS = {
    "normal": ((-200 / LINEAR_SCALE, 200 / LINEAR_SCALE), (math.radians(-120), math.radians(120))),
    "large": ((-200 / LINEAR_SCALE, 800 / LINEAR_SCALE), (math.radians(-180), math.radians(180))),
}
REWARD_MODES = ("mixed", "gauss", "const")

# Which entries change sign under a reflection across the y axis.
OBS_MIRROR = (1, 3, 4)  # observed w, previous a_w, target x
ACTION_MIRROR = (1,)  # a_w


def arc_length(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Length of the circular arc from the origin (heading +y) to (x, y): the path of a constant
    turn. Straight ahead (x = 0) is the limit, the plain distance."""
    d = torch.sqrt(x**2 + y**2)
    safe_x = torch.where(x.abs() < 1e-9, torch.full_like(x, 1e-9), x)
    r = d**2 / (2 * safe_x)
    arc = 2 * r * torch.asin((d / (2 * r)).clamp(-1, 1))
    return torch.where(x.abs() < 1e-9, d, arc)


class Firefly:
    obs_dim = 6
    action_dim = 2
    # Bounds of the settings a task spec may give (batched.settings_schema); r_min <= r_max the
    # constructor checks. A gain of 0 would freeze the agent, a negative one mirror its joystick.
    BOUNDS = {"gain": {"gt": 0}, "process_noise": {"ge": 0}, "observation_noise": {"ge": 0},
              "target_visible_steps": {"ge": 0}, "max_steps": {"ge": 1}, "reward_scale": {"gt": 0},
              "goal_radius": {"gt": 0}, "r_min": {"gt": 0}, "r_max": {"gt": 0},
              "max_angle": {"ge": 0, "le": 180}, "copies": {"ge": 1}}

    def __init__(
        self,
        n: int,
        seed: int,
        device: str | torch.device = "cpu",
        gain: float = 1.0,
        process_noise: float = 0.2,
        observation_noise: float = 0.1,
        target_visible_steps: int | None = 3,
        max_steps: int = 35,
        reward_scale: float = 10.0,
        reward_mode: str = "mixed",
        perturbation: str = "none",
        goal_radius: float = 65.0,
        r_min: float = 100.0,
        r_max: float = 400.0,
        max_angle: float = 35.0,
        copies: int = 1,
    ):
        if n < 1:
            raise ValueError("n must be at least 1")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {', '.join(REWARD_MODES)}, not {reward_mode!r}")
        if perturbation not in ("none", *PULSE_PEAKS):
            raise ValueError(f"perturbation must be none, normal or large, not {perturbation!r}")
        if max_steps < 1 or not 0 < r_min <= r_max or goal_radius <= 0 or not 0 <= max_angle <= 180:
            raise ValueError("need max_steps >= 1, 0 < r_min <= r_max, goal_radius > 0, 0 <= max_angle <= 180")
        if min(process_noise, observation_noise) < 0:
            raise ValueError("noise levels must be >= 0")
        if copies < 1 or n % copies:
            raise ValueError("n must be a multiple of copies")
        self.n = n
        # The batch can be `copies` blocks of the same n // copies trials sharing every random draw
        # (targets, pulses, noise): several agents then meet exactly the same trials, and an agent
        # in block k meets what it would meet alone in an env of n // copies with this seed.
        self.copies = copies
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        # gain may be one number or one per trial (a batch that mixes gain conditions)
        g = torch.as_tensor(gain, dtype=torch.float32, device=self.device).expand(n).clone()
        self.gain = g
        self.gains = torch.stack([g * MAX_LINEAR, g * MAX_ANGULAR], dim=1)  # (n, 2)
        self.process_noise, self.observation_noise = float(process_noise), float(observation_noise)
        self.process_std = self.process_noise * self.gains  # (n, 2)
        self.observation_std = self.observation_noise * self.gains
        self.target_visible_steps = target_visible_steps
        self.max_steps = int(max_steps)
        self.reward_scale, self.reward_mode = float(reward_scale), reward_mode
        self.perturbation = perturbation
        self.goal_radius = goal_radius / LINEAR_SCALE
        self.r_range = (r_min / LINEAR_SCALE, r_max / LINEAR_SCALE)
        self.max_angle = math.radians(max_angle)
        self.pulse_shape = torch.tensor(PULSE_SHAPE, device=self.device)
        self.reset()

    # -- randomness from the env's own generator, so a seed fixes every trial
    def _shared(self, draw, n: int, *rest: int) -> torch.Tensor:
        base = draw((n // self.copies, *rest))
        return base.repeat(self.copies, *([1] * len(rest)))

    def _rand(self, n: int, *rest: int) -> torch.Tensor:
        return self._shared(lambda shape: torch.rand(shape, generator=self.generator, device=self.device), n, *rest)

    def _randn(self, n: int, *rest: int) -> torch.Tensor:
        return self._shared(lambda shape: torch.randn(shape, generator=self.generator, device=self.device), n, *rest)

    def sample_targets(self, n: int | None = None) -> torch.Tensor:
        """(n, 2) targets in units: r^2 uniform (uniform over the annulus' area), angle uniform."""
        n = self.n if n is None else n
        lo, hi = self.r_range
        r = torch.sqrt(lo**2 + (hi**2 - lo**2) * self._rand(n))
        angle = (2 * self._rand(n) - 1) * self.max_angle  # + is to the right
        phi = math.pi / 2 - angle
        return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=1)

    def sample_perturbations(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(peaks (n, 2), start steps (n,)) of this env's perturbation set."""
        n = self.n if n is None else n
        if self.perturbation == "none":
            return torch.zeros(n, 2, device=self.device), torch.zeros(n, dtype=torch.long, device=self.device)
        (v_lo, v_hi), (w_lo, w_hi) = PULSE_PEAKS[self.perturbation]
        peaks = torch.stack([v_lo + (v_hi - v_lo) * self._rand(n), w_lo + (w_hi - w_lo) * self._rand(n)], dim=1)
        start = self._shared(lambda shape: torch.randint(*PULSE_START, shape, generator=self.generator, device=self.device), n)
        return peaks, start

    # -- episode
    def reset(self, target: torch.Tensor | None = None, perturbation: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Start n new trials; `target` (n, 2, units) and `perturbation` (peaks, starts) fix them
        (validation sets), otherwise they are drawn. Returns the first observation (n, 6)."""
        n, dev = self.n, self.device
        self.target = self.sample_targets() if target is None else torch.as_tensor(target, dtype=torch.float32, device=dev).reshape(n, 2).clone()
        if perturbation is None:
            self.pulse_peak, self.pulse_start = self.sample_perturbations()
        else:
            peak, start = perturbation
            self.pulse_peak = torch.as_tensor(peak, dtype=torch.float32, device=dev).reshape(n, 2).clone()
            self.pulse_start = torch.as_tensor(start, dtype=torch.long, device=dev).reshape(n).clone()
        self.state = torch.zeros(n, 5, device=dev)
        self.state[:, 2] = math.pi / 2
        self.t = 0
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.active = torch.ones(n, dtype=torch.bool, device=dev)
        self.crossed = torch.zeros(n, dtype=torch.bool, device=dev)  # an earlier action passed the threshold
        self.stopped = torch.zeros(n, dtype=torch.bool, device=dev)
        self.rewarded = torch.zeros(n, dtype=torch.bool, device=dev)
        self.prev_action = torch.zeros(n, 2, device=dev)
        self.pulse = torch.zeros(n, 2, device=dev)
        # the reference observes the starting velocities without noise
        self.obs = torch.cat([self.state[:, 3:], self.prev_action, self.target], dim=1)
        return self.obs.clone()

    def target_visible(self) -> bool:
        """Whether the observation the agent acts on next (after `self.t` steps) shows the target."""
        return self.target_visible_steps is None or self.t <= self.target_visible_steps

    def pulse_at(self, t: int) -> torch.Tensor:
        """(n, 2) perturbation velocities added at step t (0-based)."""
        k = t - self.pulse_start
        inside = (k >= 0) & (k < len(PULSE_SHAPE))
        shape = torch.where(inside, self.pulse_shape[k.clamp(0, len(PULSE_SHAPE) - 1)], torch.zeros((), device=self.device))
        return shape[:, None] * self.pulse_peak

    def dynamics(self, x: torch.Tensor, action: torch.Tensor, noise: torch.Tensor, pulse: torch.Tensor) -> torch.Tensor:
        """One step of the equations above for states x (n, 5)."""
        px, py, heading, v, w = x.unbind(1)
        px = px + v * torch.cos(heading) * DT
        py = py + v * torch.sin(heading) * DT
        heading = heading + w * DT
        vel = self.gains * action + noise + pulse
        return torch.stack([px, py, heading, vel[:, 0], vel[:, 1]], dim=1)

    def reward_at(self, position: torch.Tensor) -> torch.Tensor:
        """Reward for stopping at `position` (n, 2, units)."""
        d = torch.linalg.norm(position - self.target, dim=1)
        inside = d < self.goal_radius
        if self.reward_mode == "const":
            r = inside.float()
        elif self.reward_mode == "gauss":
            r = torch.exp(-0.5 * (d / (self.goal_radius / 2)) ** 2)
        else:  # mixed
            sigma = self.goal_radius / 1.5
            r = torch.where(inside, torch.ones_like(d), torch.exp(-0.5 * (d / sigma) ** 2)).clamp(min=0.001)
        return r * self.reward_scale

    def step(self, action: torch.Tensor, raw_action: torch.Tensor | None = None):
        """Apply `action` (n, 2) in [-1, 1]. `raw_action` is the policy's action before exploration
        noise; the reference tests the start threshold on it (defaults to `action`).
        Returns (obs (n, 6), reward (n,), done (n,) bool, info)."""
        dev = self.device
        action = torch.as_tensor(action, dtype=torch.float32, device=dev).reshape(self.n, 2).clamp(-1, 1)
        raw = action if raw_action is None else torch.as_tensor(raw_action, dtype=torch.float32, device=dev).reshape(self.n, 2)
        running = self.active.clone()
        x = self.state

        is_stop = (action.abs() < TERMINAL_ACTION).all(dim=1)
        stop = running & is_stop & self.crossed  # the threshold must have been passed at an earlier step
        timeout = running & ~stop & (self.steps + 1 >= self.max_steps)
        end = stop | timeout

        reward = torch.where(stop, self.reward_at(x[:, :2]), torch.zeros(self.n, device=dev))
        inside = torch.linalg.norm(x[:, :2] - self.target, dim=1) < self.goal_radius
        self.stopped |= stop
        self.rewarded |= stop & inside

        # Noise is drawn for the whole batch every step, so the stream does not depend on which trials ended.
        self.pulse = self.pulse_at(self.t) if self.perturbation != "none" else torch.zeros(self.n, 2, device=dev)
        next_x = self.dynamics(x, action, self._randn(self.n, 2) * self.process_std, self.pulse)
        move = running & ~end
        self.state = torch.where(move[:, None], next_x, x)

        self.crossed |= running & (raw.abs() > TERMINAL_ACTION).any(dim=1)
        self.steps = self.steps + running.long()
        self.t += 1
        self.active = running & ~end

        observed = next_x[:, 3:] + self._randn(self.n, 2) * self.observation_std
        target_obs = self.target if self.target_visible() else torch.zeros_like(self.target)
        new_obs = torch.cat([observed, action, target_obs], dim=1)
        # The ending step still returns the next observation (the reference's next state); frozen trials keep theirs.
        self.obs = torch.where(running[:, None], new_obs, self.obs)
        self.prev_action = torch.where(running[:, None], action, self.prev_action)
        return self.obs.clone(), reward, ~self.active, self._info(end)

    def _info(self, end: torch.Tensor) -> dict[str, torch.Tensor]:
        pos = self.state[:, :2]
        d = torch.linalg.norm(pos - self.target, dim=1)
        beyond = arc_length(pos[:, 0], pos[:, 1]) >= arc_length(self.target[:, 0], self.target[:, 1])
        return {
            "trial_end": end,  # this step ended the trial
            "stopped": self.stopped.clone(),
            "rewarded": self.rewarded.clone(),
            "distance_cm": d * LINEAR_SCALE,
            "overshoot_cm": torch.where(beyond, d, -d) * LINEAR_SCALE,
            "position": pos.clone(),
            "target": self.target.clone(),
            "heading": self.state[:, 2].clone(),
            "steps": self.steps.clone(),
            "perturbation": self.pulse.clone(),  # the pulse added to the velocities this step
        }

    # -- reflection across the y axis (the trainer stores mirrored trajectories)
    @staticmethod
    def mirror(obs: torch.Tensor) -> torch.Tensor:
        """Observations (..., 6) of the mirrored world: w, previous a_w and target x negated."""
        return Firefly.mirror_obs(obs)

    @staticmethod
    def mirror_obs(obs: torch.Tensor) -> torch.Tensor:
        out = obs.clone()
        out[..., list(OBS_MIRROR)] = -out[..., list(OBS_MIRROR)]
        return out

    @staticmethod
    def mirror_action(action: torch.Tensor) -> torch.Tensor:
        out = action.clone()
        out[..., list(ACTION_MIRROR)] = -out[..., list(ACTION_MIRROR)]
        return out

    @staticmethod
    def mirror_state(state: torch.Tensor) -> torch.Tensor:
        """States (..., 5): x -> -x, heading -> pi - heading, w -> -w."""
        out = state.clone()
        out[..., 0] = -out[..., 0]
        out[..., 2] = math.pi - out[..., 2]
        out[..., 4] = -out[..., 4]
        return out

    @staticmethod
    def mirror_target(target: torch.Tensor) -> torch.Tensor:
        out = target.clone()
        out[..., 0] = -out[..., 0]
        return out


# -- gymnasium view ------------------------------------------------------------------------


class FireflyEnv(gym.Env):
    """One firefly trial as a gymnasium episode. A counted stop terminates it; the step limit
    truncates it (reward 0). The last step's info carries the trial's outcome as numbers."""

    metadata = {"render_modes": []}

    def __init__(self, seed: int | None = None, **kwargs: Any):
        self.env = Firefly(n=1, seed=0 if seed is None else int(seed), **kwargs)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (Firefly.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (Firefly.action_dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:  # a new stream of trials from this seed
            self.env.generator.manual_seed(int(seed))
        return self.env.reset()[0].cpu().numpy().astype(np.float32), {}

    def step(self, action):
        obs, reward, done, info = self.env.step(torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(1, 2))
        out: dict[str, Any] = {}
        if bool(info["trial_end"][0]):
            out = {k: (v[0].tolist() if v.dim() > 1 else v[0].item()) for k, v in info.items() if k != "trial_end"}
            out["new_trial"] = True
        stopped = bool(info["stopped"][0])
        return obs[0].cpu().numpy().astype(np.float32), float(reward[0]), stopped, bool(done[0]) and not stopped, out
