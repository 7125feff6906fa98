"""What the core asks of a task family and of a training engine, and what they hand each other.

A family (families/<name>/) owns its task spec, its environments, its rollouts, its report
sections, its methods sentences and its watch; an engine (engines/<name>.py) owns its model
spec, its settings and its trainer. The core (catalog, evaluation, report, watch, the CLI)
reaches either only through these interfaces and the table in plugins.py, never by a name.

Pairs are decided by capability: a family says what a task offers (an `Offer`), an engine
says whether a model can train on that (`Engine.problem`).

This module sits below families and engines: it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

# ----------------------------------------------------------------------------- what a worker gets


@dataclass
class RunConfig:
    """Everything a worker needs, read from `<run_dir>/run.json` (never from the registry)."""

    run_id: int
    seed: int
    attempt: int
    config: dict  # the frozen experiment config (task, model, budget)
    run_dir: str
    device: str = "auto"
    resume_from: str | None = None  # checkpoint path of the previous attempt
    threads: int | None = None  # torch CPU threads; None leaves the library default
    group: list[int] | None = None  # run ids of a seed group trained in this one process

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def steps(self) -> int:
        return int(self.config["budget"]["steps"])

    @property
    def checkpoint_every(self) -> int:
        return int(self.config["budget"]["checkpoint_every"])


class Policy(Protocol):
    """A trained agent acting on a batch of environments; it keeps its own recurrent state."""

    def reset(self, n_envs: int) -> None:
        """Start `n_envs` environments afresh (recurrent state zeroed)."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """One action per environment for a batch of observations."""

    def episode_started(self, mask: np.ndarray) -> None:
        """Environments in `mask` began a new episode: their recurrent state starts afresh."""

    def activity(self) -> dict[str, np.ndarray]:
        """The latest internal activations by name (n_envs, units), for analyses; {} when none."""


class NotOffered(RuntimeError):
    """A family or an engine was asked for what it does not offer (its Offer, or the model's
    trainer, says so): pairing keeps the core from asking, so reaching this is a bug; except
    `train_group`, which the worker asks first and falls back from."""


def field_defaults(settings: type[BaseModel]) -> dict[str, Any]:
    """Each field's default, a factory's called (a bare `.default` is PydanticUndefined there)."""
    return {k: f.get_default(call_default_factory=True) for k, f in settings.model_fields.items()}


def env_seed(seed: int, index: int) -> int:
    """Each of a run's environments gets its own stream of trials, fixed by the run's seed."""
    return seed * 1_000 + index


# ----------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class Offer:
    """What a task gives a model to learn from, in terms any engine can check."""

    observations: str  # "vector", "image", or "none" (a schedule no agent acts in)
    actions: str  # "discrete", "box", "multidiscrete", "multibinary", or "none"
    observation_space: str  # as a user reads it in a message, e.g. "Box(-inf, inf, (3,), float32)"
    action_space: str
    observation_shape: tuple[int, ...] | None = None  # e.g. (height, width, 3) for images
    single_env: bool = False  # a gymnasium environment of one episode, for libraries (Family.single_env)
    batched: bool = False  # a batched torch environment of many episodes (Family.batched_env)
    features: frozenset[str] = frozenset()  # anything more an engine may need, e.g. "cue-reward-schedule"
    problem: str | None = None  # why this task cannot be trained at all (a missing scenario file, ...)


# ----------------------------------------------------------------------------- report and watch


@dataclass
class ReportContext:
    """What a family's report sections may read: the experiment's rows as tables, and its
    checkpoints' files and policies, with the figures it writes collected in `written`."""

    config: dict
    runs: list  # the runs shown (latest attempt of each seed)
    evaluations: Any  # pandas DataFrame: every stored evaluation of these runs (one protocol, or all)
    out: Path
    written: list[Path]
    best: Callable[[str], Any]  # protocol -> DataFrame of each seed's best evaluation
    trials: Callable[[str], Any]  # protocol -> DataFrame of the stored trials of each seed's best checkpoint
    checkpoint_file: Callable[[Any], tuple]  # a best-evaluation row -> (run, checkpoint, verified path); ValueError
    load_policy: Callable[[Path], Policy]  # a verified checkpoint file -> its policy, on cpu
    engine: Engine  # the experiment's engine, for what only it can do (e.g. a `record` of activity)
    register_file: Callable[[Path, str, str], None]  # keep a file made for later reports: (path, kind, what made it)

    def top(self, protocol: str):
        """The best of the seeds' best evaluations under a protocol (ties: the later checkpoint)."""
        best = self.best(protocol)
        higher = bool(best["higher_is_better"].iloc[0])
        return best.sort_values(["score", "step"], ascending=[not higher, False]).iloc[0]


@dataclass
class WatchRequest:
    """`neurorl watch` as a family sees it: a run, its chosen checkpoint and what to show."""

    run: Any  # the registry's Run row
    config: dict
    protocol: str  # the protocol whose environment is shown
    seed: int | None  # the environment's seed; None: the protocol's
    trials: int | None  # how much to show; None: the family's default
    options: dict = field(default_factory=dict)  # family-specific options (e.g. trial_type)
    checkpoint: Any = None  # the Checkpoint row, when the family plays one (Family.plays_checkpoint)
    policy: Callable[[], Policy] | None = None  # loads the checkpoint's policy
    path: Path | None = None  # the verified checkpoint file
    engine: Any = None  # the run's Engine, for what only it can do

    @property
    def spec(self) -> dict:
        """The protocol's table in the task spec."""
        return self.config["task"].get("protocols", {}).get(self.protocol, {})

    @property
    def env_seed(self) -> int:
        """The environment's seed: the one asked for, else the protocol's."""
        return int(self.spec.get("seed", 0)) if self.seed is None else self.seed


@dataclass
class Recording:
    """What a watch shows: RGB frames at a fixed pace, and the options that reproduce it."""

    frames: list[np.ndarray]
    frame_ms: int
    default_name: str  # the GIF's file name when none is given
    words: list[str]  # the `neurorl watch` options that make the same recording again


# ----------------------------------------------------------------------------- the interfaces


@runtime_checkable
class Family(Protocol):
    """A task family: its task specs, environments, rollouts, analyses and how it is shown."""

    name: str  # the `family` value of its task specs
    task_spec: type[BaseModel]  # a pydantic model with `family: Literal[name]`; one member of the task union
    catalog: Path | None  # a folder of task TOML files the family ships, or None
    set_paths: tuple[str, ...]  # where `--set task.KEY` looks after the spec's top level, e.g. ("env.kwargs.",)
    libraries: dict[str, str]  # distributions whose versions the methods name -> how a paper names them
    training_key: str  # the metric its training curve plots
    more_training_keys: tuple[str, ...]  # further metrics plotted as training curves
    x_label: str | None  # the training curve's x axis; None: the budget's unit
    evaluation_unit: str  # what an evaluation row counts: "trial" or "episode"
    plays_checkpoint: bool  # whether `watch` runs a checkpoint (False: it shows stored run files)

    def named_task(self, name: str) -> BaseModel | None:
        """A task this family makes on the fly from a name (e.g. `neurogym:<Id>`), or None."""

    def generated_names(self) -> list[str]:
        """Every name `named_task` accepts, for `neurorl tasks --all`."""

    def setting_defaults(self, task: dict, prefix: str) -> dict[str, Any]:
        """Keys under `prefix` (one of `set_paths`) a spec may add with `--set`, with their defaults."""

    def environment(self, task: dict) -> dict:
        """What a task's trials come from: the part of the spec that names an evaluation's identity."""

    def source(self, task: BaseModel) -> str:
        """How `neurorl tasks` names the task's environment."""

    def offer(self, task: dict) -> Offer:
        """The task's observations, actions and environments, for pairing."""

    def single_env(self, task: dict, seed: int, **options) -> Any:
        """One gymnasium environment of the task (Offer.single_env)."""

    def batched_env(self, task: dict, n: int, seed: int, device: str = "cpu", extra_kwargs: dict | None = None) -> Any:
        """`n` episodes stepped together as tensors (Offer.batched)."""

    def rollout(self, policy: Policy, task: dict, protocol: dict) -> tuple[dict, list[dict]]:
        """The protocol's trials played by the policy: (metrics, one row per trial or episode)."""

    def gym_ids(self) -> dict[str, tuple[str, dict]]:
        """`neurorl/<Name>-v0` ids for gymnasium: name -> (entry point, kwargs). Registered for the
        built-in families; a plug-in registers its own through a `gymnasium.envs` entry point."""

    def protocol_sections(self, ctx: ReportContext, protocol: str) -> list:
        """Report sections (analysis.html.Section) for one evaluated protocol."""

    def best_sections(self, ctx: ReportContext, protocol: str) -> list:
        """Once, after the protocols: analyses of the best checkpoint under the selecting protocol."""

    def run_sections(self, ctx: ReportContext) -> list:
        """Sections drawn from the runs' stored files."""

    def methods(self, task: dict) -> str:
        """The methods paragraph's sentence on the task."""

    def watch(self, request: WatchRequest) -> Recording:
        """Frames of the run at work (raises errors.UserError for a bad option)."""


@runtime_checkable
class Engine(Protocol):
    """A training engine: its model spec and settings, what it can train, and its trainer."""

    name: str  # the `engine` value of its model specs
    model_spec: type[BaseModel]  # a pydantic model with `engine: Literal[name]`; one member of the model union
    set_paths: tuple[str, ...]  # where `--set model.KEY` looks after the spec's top level, e.g. ("hyper.",)

    def settings(self, model: dict) -> type[BaseModel]:
        """The schema of the model's `hyper` table: every setting typed and bounded."""

    def setting_defaults(self, model: dict, prefix: str) -> dict[str, Any]:
        """Keys under `prefix` a spec may add with `--set`, with the library's defaults."""

    def problem(self, model: dict, task: dict, offer: Offer) -> str | None:
        """Why this model cannot train on the task (offering `offer`), or None when it can."""

    def trains_on(self, model: BaseModel) -> str:
        """What the model needs of a task, as `neurorl models` lists it."""

    def methods(self, model: dict) -> str:
        """The methods paragraph's sentence on the model: algorithm, library, network, settings."""

    def label(self, model: BaseModel) -> str:
        """The algorithm as `neurorl models` lists it."""

    def libraries(self, model: dict) -> dict[str, str]:
        """Distributions whose versions the methods name -> how a paper names them."""

    def train(self, run: RunConfig, log) -> None:
        """Train one run, writing metrics and checkpoints through its RunLog."""

    def group_size(self, config: dict, device: str, asked: int | None) -> int:
        """How many seeds of `config` one worker process trains together on `device`: its
        default when `asked` is None, `asked` when it can group seeds at all, else 1."""

    def train_group(self, runs: list[RunConfig], logs: list) -> None:
        """Train several seeds of one experiment (one config) in one call, each through its own
        RunLog as if alone; a seed that ends before the others calls its log's `finish`, and the
        worker finishes the rest. EngineBase trains them one after another."""

    def load_policy(self, config: dict, checkpoint: Path, device: str) -> Policy:
        """A checkpoint as a Policy."""

    def evaluate(self, family: Family, config: dict, checkpoint: Path, protocol: dict, device: str) -> tuple[dict, list[dict]]:
        """One checkpoint under one protocol: (metrics, rows)."""


class FamilyBase:
    """Defaults for a family: scores and best checkpoints in the report, nothing made on the fly,
    no library settings, no gymnasium ids. A family overrides what it has."""

    catalog: ClassVar[Path | None] = None
    set_paths: ClassVar[tuple[str, ...]] = ()
    libraries: ClassVar[dict[str, str]] = {}
    more_training_keys: ClassVar[tuple[str, ...]] = ()
    x_label: ClassVar[str | None] = None
    evaluation_unit: ClassVar[str] = "trial"
    plays_checkpoint: ClassVar[bool] = True

    def named_task(self, name: str) -> BaseModel | None:
        return None

    def generated_names(self) -> list[str]:
        return []

    def setting_defaults(self, task: dict, prefix: str) -> dict[str, Any]:
        return {}

    def environment(self, task: dict) -> dict:
        return {key: task[key] for key in ("env", "schedule") if key in task}

    def gym_ids(self) -> dict[str, tuple[str, dict]]:
        return {}

    def single_env(self, task: dict, seed: int, **options) -> Any:
        raise NotOffered(f"tasks of the {self.name} family have no single gymnasium environment")

    def batched_env(self, task: dict, n: int, seed: int, device: str = "cpu", extra_kwargs: dict | None = None) -> Any:
        raise NotOffered(f"tasks of the {self.name} family have no batched environment")

    def protocol_sections(self, ctx: ReportContext, protocol: str) -> list:
        from neurorl_cli.analysis.sections import score_sections

        return score_sections(ctx, protocol)

    def best_sections(self, ctx: ReportContext, protocol: str) -> list:
        return []

    def run_sections(self, ctx: ReportContext) -> list:
        return []


class EngineBase:
    """Defaults for an engine: seeds of a group trained one after the other, evaluation by the
    family's rollout of the loaded policy, no further `--set` paths."""

    set_paths: ClassVar[tuple[str, ...]] = ("hyper.",)

    def setting_defaults(self, model: dict, prefix: str) -> dict[str, Any]:
        if prefix == "hyper.":
            return field_defaults(self.settings(model))
        return {}

    def label(self, model: BaseModel) -> str:
        return getattr(model, "algo", self.name)

    def methods(self, model: dict) -> str:
        from neurorl_cli.analysis.prose import model_sentence

        return model_sentence(model, model.get("algo", self.name))

    def libraries(self, model: dict) -> dict[str, str]:
        return {}

    def group_size(self, config: dict, device: str, asked: int | None) -> int:
        return 1

    def train_group(self, runs: list[RunConfig], logs: list) -> None:
        raise NotOffered(f"{self.name} trains one seed at a time")

    def evaluate(self, family: Family, config: dict, checkpoint: Path, protocol: dict, device: str = "cpu"):
        return family.rollout(self.load_policy(config, checkpoint, device), config["task"], protocol)
