"""Cue-match: one of two cues shows, and the agent presses the button that matches it.

A trial lasts `fixation + 1 + delay` steps: `fixation` steps with only the fixation input on,
one step with cue A or cue B (each with probability 1/2), `delay` steps with the cue gone, and
the response step, on which the go input is on. With `delay = 0` the cue step is the response
step, so a policy without memory can solve it. The action taken on the response step is the
response (0 wait, 1 press A, 2 press B): the matching button earns 1, anything else 0. Actions on
the other steps have no effect. An episode is `trials_per_episode` trials, then it is truncated.

Inputs: [fixation, cue A, cue B, go], with Gaussian noise of `sigma` on the two cue inputs,
clipped to [0, 1].
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

WAIT, PRESS_A, PRESS_B = 0, 1, 2
CUES = ("A", "B")


class CueMatchEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, fixation: int = 1, delay: int = 0, sigma: float = 0.1, trials_per_episode: int = 20,
                 seed: int | None = None):
        self.fixation, self.delay, self.sigma = int(fixation), int(delay), float(sigma)
        self.trials_per_episode = int(trials_per_episode)
        self.trial_steps = self.fixation + 1 + self.delay
        self.observation_space = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        # Seeded at construction, so that an environment built with a seed gives its own trials
        # even when nobody calls reset(seed=...) (sb3's vec env is not reseeded).
        self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        if seed is not None:
            self.action_space.seed(seed)
            self.observation_space.seed(seed)
        self.t = 0
        self.trial = 0
        self.cue = 0

    def period(self, t: int | None = None) -> str:
        t = self.t if t is None else t
        if t == self.trial_steps - 1:
            return "response"
        if t < self.fixation:
            return "fixation"
        return "cue" if t == self.fixation else "delay"

    def _new_trial(self) -> None:
        self.t = 0
        self.cue = int(self.np_random.integers(2))

    def _observe(self) -> np.ndarray:
        obs = np.zeros(4, dtype=np.float32)
        if self.t == self.fixation:
            obs[1 + self.cue] = 1.0
        if self.sigma > 0:
            obs[1:3] += self.np_random.normal(0.0, self.sigma, 2).astype(np.float32)
        if self.period() == "response":
            obs[3] = 1.0
        else:
            obs[0] = 1.0
        return np.clip(obs, 0.0, 1.0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
            self.observation_space.seed(seed)
        self.trial = 0
        self._new_trial()
        return self._observe(), {"period": self.period(), "cue": CUES[self.cue]}

    def step(self, action):
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"action {action} is not one of 0 (wait), 1 (press A), 2 (press B)")
        truncated = False
        period = self.period()  # of the step acted on; info describes that step
        if period != "response":
            self.t += 1
            return self._observe(), 0.0, False, False, {"period": period, "cue": CUES[self.cue]}
        ground_truth = PRESS_A + self.cue
        correct = action == ground_truth
        info = {"new_trial": True, "performance": float(correct), "ground_truth": ground_truth, "choice": action,
                "cue": CUES[self.cue], "trial": self.trial, "period": "response"}
        self.trial += 1
        if self.trial >= self.trials_per_episode:
            truncated = True
        self._new_trial()
        return self._observe(), float(correct), False, truncated, info
