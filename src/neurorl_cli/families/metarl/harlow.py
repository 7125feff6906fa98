"""The Harlow task (Harlow 1949; Wang et al. 2018) without DeepMind Lab, batched in torch.

Each episode draws two distinct objects from a pool; one of them is rewarded for the whole
episode. An episode has `trials` trials; the rewarded object is on the left in exactly half
of them, in shuffled order. A trial is:

    fixation (`fixation_steps`, a cue in the centre; `fixation_reward` on its last step)
    choice   (1 step: both objects shown; action 0 = left, 1 = right; +5 / -5 by default)
    interval (`iti_steps` of a blank screen)

The object pool is fixed by `pool_seed`, not by the run's seed, so every run and every
evaluation sees the same objects: ids [0, train_objects) are the training pool and the next
`test_objects` ids the held-out pool (`pool = "test"`), disjoint by construction.

Observations: `features` shows [fixation cue, left object's code, right object's code]
(codes are random Gaussian vectors of `feature_dim`); `pixels` shows two `image_size`
square images side by side (left | right), flattened row by row, with a cross in the centre
during fixation. The images are symmetric random sprites generated from the pool seed.
"""

from __future__ import annotations

from typing import Literal

import torch

from neurorl_cli.envs.batched import BatchedEnv

LEFT, RIGHT = 0, 1


def object_codes(n_objects: int, dim: int, pool_seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(pool_seed))
    return torch.randn(n_objects, dim, generator=g)


def object_images(n_objects: int, size: int, pool_seed: int) -> torch.Tensor:
    """(n_objects, size, size) sprites in {0, 1}: a random left half mirrored onto the right,
    so each object reads as a shape rather than as noise."""
    g = torch.Generator().manual_seed(int(pool_seed) + 1)
    half = (size + 1) // 2
    left = (torch.rand(n_objects, size, half, generator=g) < 0.5).float()
    return torch.cat([left, left.flip(-1)[..., size % 2:]], dim=-1)


def fixation_image(size: int) -> torch.Tensor:
    """A cross in the centre of the (size, 2 * size) screen."""
    screen = torch.zeros(size, 2 * size)
    mid_row, mid_col, arm = size // 2, size, max(1, size // 4)
    screen[mid_row, mid_col - arm: mid_col + arm] = 1.0
    screen[mid_row - arm: mid_row + arm, mid_col - 1: mid_col + 1] = 1.0
    return screen


class Harlow(BatchedEnv):
    n_actions = 2
    # Bounds of the settings a task spec may give (batched.settings_schema); what involves
    # several settings (an even number of trials) the constructor checks.
    BOUNDS = {"train_objects": {"ge": 2}, "test_objects": {"ge": 2}, "pool_seed": {"ge": 0},
              "feature_dim": {"ge": 1}, "image_size": {"ge": 4}, "trials": {"ge": 2},
              "fixation_steps": {"ge": 0}, "iti_steps": {"ge": 0}}

    def __init__(
        self,
        n: int,
        seed: int,
        device: str = "cpu",
        pool: Literal["train", "test"] = "train",
        train_objects: int = 1000,
        test_objects: int = 200,
        pool_seed: int = 0,
        observation: Literal["features", "pixels"] = "features",
        feature_dim: int = 8,
        image_size: int = 8,
        trials: int = 6,
        fixation_steps: int = 1,
        iti_steps: int = 1,
        fixation_reward: float = 0.0,
        correct_reward: float = 5.0,
        incorrect_reward: float = -5.0,
        meta_inputs: bool = True,
    ):
        if pool not in ("train", "test"):
            raise ValueError(f"pool must be 'train' or 'test', not {pool!r}")
        if observation not in ("features", "pixels"):
            raise ValueError(f"observation must be 'features' or 'pixels', not {observation!r}")
        if min(train_objects, test_objects) < 2:
            raise ValueError("each pool needs at least 2 objects")
        if trials < 2 or trials % 2:
            raise ValueError("trials must be even (the rewarded object is on each side in half of them)")
        if fixation_steps < 0 or iti_steps < 0 or feature_dim < 1 or image_size < 4:
            raise ValueError("fixation_steps and iti_steps must be >= 0, feature_dim >= 1, image_size >= 4")
        super().__init__(n, seed, device, meta_inputs)
        self.pool, self.observation = pool, observation
        self.first_id = 0 if pool == "train" else train_objects
        self.pool_size = train_objects if pool == "train" else test_objects
        total = train_objects + test_objects
        if observation == "features":
            self.looks = object_codes(total, feature_dim, pool_seed).to(self.device)
            self.stimulus_dim = 1 + 2 * feature_dim
        else:
            self.looks = object_images(total, image_size, pool_seed).to(self.device)
            self.fixation = fixation_image(image_size).to(self.device)
            self.stimulus_dim = 2 * image_size * image_size
        self.trials_per_episode = trials
        self.fixation_steps, self.iti_steps = fixation_steps, iti_steps
        self.steps_per_trial = fixation_steps + 1 + iti_steps
        self.episode_steps = trials * self.steps_per_trial
        self.rewards = (float(fixation_reward), float(correct_reward), float(incorrect_reward))

    # -- episode and trial structure
    def _reset(self) -> torch.Tensor:
        first = torch.floor(self.rand(self.n) * self.pool_size).long()
        offset = 1 + torch.floor(self.rand(self.n) * (self.pool_size - 1)).long()
        self.rewarded = self.first_id + first  # the episode's rewarded object
        self.other = self.first_id + (first + offset) % self.pool_size  # never the same object
        # Exactly half the trials have the rewarded object on the left, in random order.
        rank = torch.argsort(torch.argsort(self.rand(self.n, self.trials_per_episode), dim=1), dim=1)
        self.rewarded_side = torch.where(rank < self.trials_per_episode // 2, LEFT, RIGHT)
        return self._stimulus(self._phase(0))

    def _phase(self, t: int) -> tuple[str, int]:
        trial, within = divmod(t, self.steps_per_trial)
        if within < self.fixation_steps:
            return "fixation", trial
        return ("choice" if within == self.fixation_steps else "interval"), trial

    def _stimulus(self, phase: tuple[str, int]) -> torch.Tensor:
        name, trial = phase
        obs = torch.zeros(self.n, self.stimulus_dim, device=self.device)
        if name == "fixation":
            if self.observation == "features":
                obs[:, 0] = 1.0
            else:
                obs[:] = self.fixation.flatten()
        elif name == "choice":
            on_left = self.rewarded_side[:, trial] == LEFT
            left = torch.where(on_left, self.rewarded, self.other)
            right = torch.where(on_left, self.other, self.rewarded)
            if self.observation == "features":
                obs[:, 1:] = torch.cat([self.looks[left], self.looks[right]], dim=1)
            else:
                obs[:] = torch.cat([self.looks[left], self.looks[right]], dim=2).flatten(1)
        return obs

    def _step(self, action: torch.Tensor):
        name, trial = self._phase(self.t)
        reward = torch.zeros(self.n, device=self.device)
        info: dict[str, torch.Tensor] = {"trial_end": torch.zeros(self.n, dtype=torch.bool, device=self.device)}
        if name == "fixation" and self.t % self.steps_per_trial == self.fixation_steps - 1:
            reward += self.rewards[0]
        elif name == "choice":
            target = self.rewarded_side[:, trial]
            correct = action == target
            reward = torch.where(correct, self.rewards[1], self.rewards[2])
            # The trial's outcome is decided here; any interval steps only follow it.
            info = {
                "trial_end": torch.ones(self.n, dtype=torch.bool, device=self.device),
                "correct": correct.float(),
                "choice": action.float(),
                "ground_truth": target.float(),
                "position": torch.full((self.n,), trial + 1, device=self.device),
                "rewarded_object": self.rewarded.float(),
                "other_object": self.other.float(),
            }
        next_phase = self._phase(self.t + 1) if self.t + 1 < self.episode_steps else ("interval", trial)
        return self._stimulus(next_phase), reward, info
