"""Cue-reward conditioning schedules (the drl_sim tasks) as tensors.

A task file's `[schedule]` table says when cues come and which rewards follow them; `build`
turns it into the time grid, complete-serial-compound (CSC) cue features, the trial types
and the rewards of `n_trials` trials, all drawn from one seeded generator.

Indexing follows drl_sim: an event at time `t` seconds lands on index `round(t / dt) - 1`,
and the grid has `round(duration / dt) + 1` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

PROBABILITY_SLACK = 1e-3  # probabilities written with three decimals still count as summing to 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FixedSize(_Strict):
    """Every delivered reward has the same size."""

    kind: Literal["fixed"]
    value: float


class NormalSize(_Strict):
    """Sizes drawn from Normal(mean, sd)."""

    kind: Literal["normal"]
    mean: float
    sd: float = Field(ge=0)


class DiscreteSize(_Strict):
    """One of `values`, drawn with `probabilities`."""

    kind: Literal["discrete"]
    values: list[float] = Field(min_length=1)
    probabilities: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _probabilities_match_values(self) -> DiscreteSize:
        if len(self.values) != len(self.probabilities):
            raise ValueError(f"{len(self.values)} values but {len(self.probabilities)} probabilities")
        _check_distribution(self.probabilities, "probabilities")
        return self


RewardSize = Annotated[Union[FixedSize, NormalSize, DiscreteSize], Field(discriminator="kind")]


class Reward(_Strict):
    """One reward of a trial type: when, how large, how likely at all, how much its time jitters."""

    time: float = Field(gt=0, description="seconds from trial start")
    size: RewardSize
    probability: float = Field(default=1.0, ge=0, le=1, description="chance the reward is delivered at all")
    jitter: float = Field(default=0.0, ge=0, description="uniform jitter of the reward's time (see jitter_scale)")
    # What the jitter's half-width scales with. "reward" is drl_sim's rule: int(0.1 * jitter *
    # the reward's own time index) steps, the offset drawn continuous-uniform and rounded. "trial"
    # (neurorl before it matched drl_sim): int(0.1 * jitter * the trial's steps), drawn as integers.
    # Left out (None) means "trial", so that stored configs compute what they did; a task spec
    # loaded now writes "reward" wherever a reward jitters (ConditioningTask), so new configs say so.
    jitter_scale: Literal["trial", "reward"] | None = None


class TrialType(_Strict):
    name: str | None = None
    probability: float = Field(ge=0, le=1)
    cue_time: float = Field(gt=0, description="seconds from trial start")
    rewards: list[Reward] = Field(default_factory=list)


class Schedule(_Strict):
    """The `[schedule]` table of a conditioning task."""

    dt: float = Field(gt=0, description="seconds per time step")
    duration: float = Field(gt=0, description="seconds; the grid is 0..duration in steps of dt")
    trial_types: list[TrialType] = Field(min_length=1)

    @property
    def steps(self) -> int:
        return round(self.duration / self.dt) + 1

    def index_of(self, seconds: float) -> int:
        return round(seconds / self.dt) - 1

    @model_validator(mode="after")
    def _events_fit_the_grid(self) -> Schedule:
        _check_distribution([t.probability for t in self.trial_types], "trial_types probabilities")
        for i, trial_type in enumerate(self.trial_types):
            times = [("cue_time", trial_type.cue_time)] + [(f"rewards[{j}].time", r.time) for j, r in enumerate(trial_type.rewards)]
            for where, seconds in times:
                if not 0 <= self.index_of(seconds) < self.steps:
                    raise ValueError(
                        f"trial_types[{i}].{where} = {seconds} s falls outside the grid "
                        f"(dt {self.dt} s, duration {self.duration} s; must be >= dt/2 and <= duration)"
                    )
        return self


def _check_distribution(probabilities: list[float], what: str) -> None:
    if any(p < 0 for p in probabilities):
        raise ValueError(f"{what} must not be negative")
    total = sum(probabilities)
    if abs(total - 1) > PROBABILITY_SLACK:
        raise ValueError(f"{what} sum to {total:g}, not 1")


@dataclass
class Trials:
    """A drawn session of trials. Shapes: T (steps,), x (types, steps, steps) with x[i, k, t] the
    value of feature k at time t, types (n_trials,) int64, r (n_trials, steps)."""

    T: torch.Tensor
    x: torch.Tensor
    types: torch.Tensor
    r: torch.Tensor
    cue_index: list[int]  # per type: first step at which its cue features are active

    @property
    def steps(self) -> int:
        return self.T.shape[0]

    @property
    def n_trials(self) -> int:
        return self.types.shape[0]

    def to(self, device: str) -> Trials:
        return Trials(self.T.to(device), self.x.to(device), self.types.to(device), self.r.to(device), self.cue_index)


def build(schedule: Schedule, n_trials: int, seed: int, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Trials:
    """Draw `n_trials` trials of `schedule`. Drawing happens on the CPU so that a seed gives the
    same trials on every device; the tensors are then moved to `device`."""
    generator = torch.Generator().manual_seed(int(seed))
    steps = schedule.steps
    T = torch.arange(steps, dtype=torch.float64) * schedule.dt
    cue_index = [schedule.index_of(t.cue_time) for t in schedule.trial_types]
    x = csc_features(cue_index, steps)
    types = draw_types(schedule, n_trials, generator)
    r = torch.zeros(n_trials, steps, dtype=torch.float64)
    for i, trial_type in enumerate(schedule.trial_types):
        of_type = types == i
        for reward in trial_type.rewards:
            # Draw for every trial, keep those of this type: the stream does not depend on the mix.
            size = draw_sizes(reward.size, n_trials, generator)
            delivered = torch.rand(n_trials, generator=generator, dtype=torch.float64) < reward.probability
            index = jittered_index(schedule.index_of(reward.time), reward.jitter, steps, n_trials, generator,
                                   reward.jitter_scale or "trial")
            keep = of_type & delivered
            rows = torch.nonzero(keep).squeeze(1)
            r.index_put_((rows, index[keep]), size[keep], accumulate=True)
    return Trials(T.to(device, dtype), x.to(device, dtype), types.to(device), r.to(device, dtype), cue_index)


def csc_features(cue_index: list[int], steps: int) -> torch.Tensor:
    """Tapped delay line: after its cue, a type has one feature per time step, on only at that step."""
    x = torch.zeros(len(cue_index), steps, steps, dtype=torch.float64)
    for i, s0 in enumerate(cue_index):
        x[i, s0:, s0:] = torch.eye(steps - s0, dtype=torch.float64)
    return x


def draw_types(schedule: Schedule, n_trials: int, generator: torch.Generator) -> torch.Tensor:
    weights = torch.tensor([t.probability for t in schedule.trial_types], dtype=torch.float64)
    if len(weights) == 1:
        return torch.zeros(n_trials, dtype=torch.int64)
    return torch.multinomial(weights, n_trials, replacement=True, generator=generator)


def draw_sizes(size: FixedSize | NormalSize | DiscreteSize, n: int, generator: torch.Generator) -> torch.Tensor:
    if isinstance(size, FixedSize):
        return torch.full((n,), size.value, dtype=torch.float64)
    if isinstance(size, NormalSize):
        return size.mean + size.sd * torch.randn(n, generator=generator, dtype=torch.float64)
    weights = torch.tensor(size.probabilities, dtype=torch.float64)
    values = torch.tensor(size.values, dtype=torch.float64)
    return values[torch.multinomial(weights, n, replacement=True, generator=generator)]


def jittered_index(index: int, jitter: float, steps: int, n: int, generator: torch.Generator,
                   scale: str = "trial") -> torch.Tensor:
    """The reward's time index on each of `n` trials, kept on the grid. `scale` "reward" is drl_sim's
    rule: half-width int(0.1 * jitter * index), the offset continuous-uniform then rounded; "trial"
    is the earlier rule: half-width int(0.1 * jitter * steps), integer-uniform."""
    half_width = int(0.1 * jitter * (index if scale == "reward" else steps))
    if half_width == 0:
        return torch.full((n,), index, dtype=torch.int64)
    if scale == "reward":
        offset = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * half_width
        shift = torch.round(offset).to(torch.int64)
    else:
        shift = torch.randint(-half_width, half_width + 1, (n,), generator=generator)
    return (index + shift).clamp(0, steps - 1)


def nominal_reward_index(schedule: Schedule) -> list[int | None]:
    """Per type, the step of its first reward without jitter (None for a type without rewards)."""
    out: list[int | None] = []
    for trial_type in schedule.trial_types:
        times = [r.time for r in trial_type.rewards]
        out.append(schedule.index_of(min(times)) if times else None)
    return out

