"""The two-step task (Daw et al. 2011, as in Wang et al. 2018), batched in torch.

Each trial is two steps. In the first-stage state S1 the agent picks action 0 or 1; action 0
leads to S2 and action 1 to S3 with probability `common_prob` (a common transition), to the
other state otherwise (rare). In the second-stage state any action ends the trial, rewarded
(1) with probability `reward_high` in the currently good state and `reward_low` in the other.
After each trial the good state swaps with probability `switch_prob`. An episode has `trials`
trials (200 steps by default). Observations are the state, one-hot (S1, S2, S3).

Model-free agents repeat a rewarded first-stage choice whatever the transition was;
model-based agents repeat it after a rewarded common or an unrewarded rare transition. The
stored trials (`choice`, `common`, `rewarded`) give those stay probabilities.
"""

from __future__ import annotations

import torch

from neurorl_cli.envs.batched import BatchedEnv

S1, S2, S3 = 0, 1, 2


class TwoStep(BatchedEnv):
    n_actions = 2
    stimulus_dim = 3
    # Bounds of the settings a task spec may give (batched.settings_schema).
    BOUNDS = {"trials": {"ge": 1}, "common_prob": {"ge": 0, "le": 1}, "reward_high": {"ge": 0, "le": 1},
              "reward_low": {"ge": 0, "le": 1}, "switch_prob": {"ge": 0, "le": 1}}

    def __init__(
        self,
        n: int,
        seed: int,
        device: str = "cpu",
        trials: int = 100,
        common_prob: float = 0.8,
        reward_high: float = 0.9,
        reward_low: float = 0.1,
        switch_prob: float = 0.025,
        meta_inputs: bool = True,
    ):
        for name, p in (("common_prob", common_prob), ("reward_high", reward_high), ("reward_low", reward_low), ("switch_prob", switch_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability, not {p}")
        if trials < 1:
            raise ValueError("trials must be at least 1")
        super().__init__(n, seed, device, meta_inputs)
        self.trials_per_episode = trials
        self.episode_steps = 2 * trials
        self.common_prob, self.switch_prob = common_prob, switch_prob
        self.reward_high, self.reward_low = reward_high, reward_low

    def _one_hot(self, state: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(state, 3).float()

    def _reset(self) -> torch.Tensor:
        self.good = torch.where(self.rand(self.n) < 0.5, S2, S3)
        self.state = torch.full((self.n,), S1, dtype=torch.long, device=self.device)
        return self._one_hot(self.state)

    def _step(self, action: torch.Tensor):
        no = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        if self.t % 2 == 0:  # first stage: the transition
            self.first_action = action
            self.common = self.rand(self.n) < self.common_prob
            destination = torch.where(self.common, action, 1 - action)  # 0 -> S2, 1 -> S3 when common
            self.state = destination + S2
            return self._one_hot(self.state), torch.zeros(self.n, device=self.device), {"trial_end": no}
        # second stage: the outcome, then the good state may swap
        in_good = self.state == self.good
        rewarded = self.rand(self.n) < torch.where(in_good, self.reward_high, self.reward_low)
        # The better first-stage action is the one that commonly leads to the good state.
        better = (self.good - S2).long()
        info = {
            "trial_end": ~no,
            "choice": self.first_action.float(),
            "common": self.common.float(),
            "rewarded": rewarded.float(),
            "state": self.state.float(),
            "good_state": self.good.float(),
            "correct": (self.first_action == better).float(),
            "position": torch.full((self.n,), self.t // 2 + 1, device=self.device),
        }
        swap = self.rand(self.n) < self.switch_prob
        self.good = torch.where(swap, S2 + S3 - self.good, self.good)
        self.state = torch.full_like(self.state, S1)
        return self._one_hot(self.state), rewarded.float(), info


def stay_probabilities(rows: list[dict]) -> dict[str, float]:
    """P(same first-stage choice as on the previous trial of the episode), by the previous
    trial's outcome (rewarded or not) x transition (common or rare), and the two indices of
    Daw et al. (2011): the reward main effect (model-free) and the reward x transition
    interaction (model-based)."""
    import numpy as np

    counts: dict[tuple[bool, bool], list[int]] = {}
    previous = None
    for row in rows:
        c = row["conditions"]
        if previous is not None and previous["conditions"]["episode"] == c["episode"]:
            key = (bool(previous["conditions"]["rewarded"]), bool(previous["conditions"]["common"]))
            counts.setdefault(key, []).append(int(row["choice"] == previous["choice"]))
        previous = row
    p = {}
    for rewarded in (True, False):
        for common in (True, False):
            stays = counts.get((rewarded, common), [])
            name = f"stay_{'rewarded' if rewarded else 'unrewarded'}_{'common' if common else 'rare'}"
            p[name] = float(np.mean(stays)) if stays else float("nan")
    p["reward_effect"] = (p["stay_rewarded_common"] + p["stay_rewarded_rare"] - p["stay_unrewarded_common"] - p["stay_unrewarded_rare"]) / 2
    p["model_based_index"] = (p["stay_rewarded_common"] + p["stay_unrewarded_rare"] - p["stay_rewarded_rare"] - p["stay_unrewarded_common"]) / 2
    return p
