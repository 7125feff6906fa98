"""The catalog: TOML task and model specs -> validated specs -> one frozen, hashed config.

Specs come from three places, later ones shadowing earlier ones: the catalogs shipped with
the package (`tasks/`, `models/` at the top of the repository), the user's own folders
(`$NEURORL_HOME/tasks`, `$NEURORL_HOME/models`), and a spec file named on the command line.
`neurogym:<Id>` makes a task spec on the fly for any registered NeuroGym task.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import inspect
import itertools
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from neurorl_cli.errors import UserError
from neurorl_cli.home import Home

PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """A folder shipped with neurorl: inside the installed package, or the source checkout's top."""
    inside = PACKAGE_DIR / "bundled" / name
    return inside if inside.is_dir() else PACKAGE_DIR.parents[1] / name


# ----------------------------------------------------------------------------- specs


class _Spec(BaseModel):
    # nan and inf pass every bound (nan compares false; inf is greater than any `gt`), so no
    # setting of a spec may be either.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Settings neurorl hands to a library (NeuroGym, stable-baselines3): the numeric ones it knows
# are typed and bounded; any other key passes on for the library to judge when it is built
# (training.check_settings). A bounded field left out takes the library's default.
_LIBRARY = ConfigDict(extra="allow", allow_inf_nan=False)
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class NeuroGymKwargs(BaseModel):
    """`env.kwargs` of a NeuroGym task: the settings many NeuroGym tasks share."""

    model_config = _LIBRARY
    dt: float = Field(None, gt=0)  # ms per step
    sigma: float = Field(None, ge=0)  # input noise
    dim_ring: int = Field(None, ge=1)  # stimulus ring size
    cohs: list[NonNegative] | None = None  # stimulus coherences
    prod_margin: float = Field(None, ge=0)
    rewards: dict[str, float] | None = None  # reward per outcome (abort, correct, fail, ...); any sign
    # period -> ms, or a distribution (["uniform", [300, 700]]) NeuroGym checks when it is built
    timing: dict[str, NonNegative | list[Any]] | None = None


class WrapperSpec(_Spec):
    name: str  # a NeuroGym wrapper class, e.g. PassReward
    kwargs: dict[str, Any] = Field(default_factory=dict)


class EnvSpec(_Spec):
    id: str | None = None  # a registered gymnasium/NeuroGym id
    entry_point: str | None = None  # or a user's own `module:Class`
    kwargs: dict[str, Any] = Field(default_factory=dict)
    wrappers: list[WrapperSpec] = Field(default_factory=list)
    # NeuroGym tasks never end an episode themselves. Each episode end costs sb3-contrib's
    # RecurrentPPO a slow step-by-step pass over the rollouts that contain it, but in our runs
    # (perceptual-decision-making, 100k steps) 100-trial episodes learned in 5 of 5 seeds and
    # 1000-trial episodes in 3 of 5.
    trials_per_episode: int = Field(100, gt=0)

    @field_validator("wrappers", mode="before")
    @classmethod
    def _names_or_tables(cls, value):
        return [{"name": w} if isinstance(w, str) else w for w in value]

    @field_validator("kwargs")
    @classmethod
    def _bounded(cls, kwargs: dict):
        NeuroGymKwargs.model_validate(kwargs)
        return kwargs  # as written: the library's defaults stay out of the config and its hash


class Budget(_Spec):
    steps: int | None = Field(None, gt=0)  # agent (environment) steps
    trials: int | None = Field(None, gt=0)  # for tasks whose budget counts trials
    checkpoint_every: int = Field(gt=0)  # in the budget's unit
    units: list[Literal["steps", "trials"]] = Field(default_factory=lambda: ["steps"])

    @model_validator(mode="after")
    def _default_in_its_unit(self):
        if getattr(self, self.units[0]) is None:
            raise ValueError(f"the default budget is in {self.units[0]}: set budget.{self.units[0]}")
        return self


class Protocol(_Spec):
    trials: int = Field(500, gt=0)
    select: str = "fraction_correct"  # the metric that picks the best checkpoint
    mode: Literal["max", "min"] = "max"  # whether the best checkpoint has the highest or lowest
    seed: int = Field(100_000, ge=0)  # evaluation trials come from their own seed, apart from training seeds
    kwargs: dict[str, Any] = Field(default_factory=dict)  # env kwargs that differ from training
    # greedy: the most probable action; sampled: drawn from the policy, for analyses of choice
    # variability such as two-step stay probabilities.
    actions: Literal["greedy", "sampled"] = "greedy"


class _Task(_Spec):
    name: str
    description: str = ""
    budget: Budget
    protocols: dict[str, Protocol] = Field(default_factory=lambda: {"default": Protocol()})
    # Settings a model should start from on this task, by model name (applied before --set),
    # e.g. the reference's smaller learning rate for meta-a2c-lstm on two-step.
    model_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)


class NeuroGymTask(_Task):
    family: Literal["neurogym"] = "neurogym"
    kind: Literal["decision", "trials"] = "trials"  # decision tasks get psychometric panels
    env: EnvSpec

    @field_validator("env")
    @classmethod
    def _one_source(cls, env: EnvSpec):
        if (env.id is None) == (env.entry_point is None):
            raise ValueError("give exactly one of env.id (a registered id) or env.entry_point (module:Class)")
        return env


class ConditioningTask(_Task):
    """Cue-reward schedules simulated as tensors (no agent acting): see envs/conditioning.py."""

    family: Literal["conditioning"]
    kind: Literal["conditioning"] = "conditioning"
    schedule: dict[str, Any]

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, schedule: dict):
        from neurorl_cli.envs.conditioning import Schedule

        Schedule.model_validate(schedule)
        return schedule


class MetaRLTask(_Task):
    """Harlow and two-step: batched torch environments of our own (envs/batched.py)."""

    family: Literal["meta-rl"]
    kind: Literal["harlow", "two-step"]
    env: dict[str, Any] = Field(default_factory=dict)  # the environment's settings

    @model_validator(mode="after")
    def _valid_env(self):
        from neurorl_cli.envs import batched

        batched.check(self.kind, self.env)
        _check_protocols(self, batched.settings_schema(batched.env_class(self.kind)))
        return self


class FireflyTask(_Task):
    """Firefly navigation (the modularity study): a batched torch environment, envs/firefly.py."""

    family: Literal["firefly"]
    kind: Literal["firefly"] = "firefly"
    env: dict[str, Any] = Field(default_factory=dict)  # the environment's settings

    @model_validator(mode="after")
    def _valid_env(self):
        from neurorl_cli.envs.batched import settings_schema
        from neurorl_cli.envs.firefly import Firefly

        settings_schema(Firefly).model_validate(self.env)
        Firefly(n=1, seed=0, **self.env)
        _check_protocols(self, settings_schema(Firefly))
        return self


def _check_protocols(task: MetaRLTask | FireflyTask, schema: type[BaseModel]) -> None:
    """An evaluation protocol's kwargs change the environment's settings: they keep its bounds."""
    for name, protocol in task.protocols.items():
        try:
            schema.model_validate({**task.env, **protocol.kwargs})
        except ValidationError as exc:
            field, message = _first_error(exc, {})
            raise ValueError(f"protocols.{name}.kwargs.{field}: {message}") from None


class DoomProtocol(_Spec):
    """An evaluation of a ViZDoom task: whole episodes, counted in episodes rather than trials."""

    episodes: int = Field(10, gt=0)
    select: str = "true_reward"  # the metric that picks the best checkpoint (the unshaped episode reward)
    mode: Literal["max", "min"] = "max"
    seed: int = Field(100_000, ge=0)  # evaluation episodes come from their own seed, apart from training seeds
    kwargs: dict[str, Any] = Field(default_factory=dict)  # task settings that differ from training
    actions: Literal["greedy", "sampled"] = "greedy"

    @field_validator("kwargs")
    @classmethod
    def _settings_an_evaluation_may_change(cls, kwargs: dict):
        # The network's input is fixed by width/height, so an evaluation may change only these.
        allowed = {"scenario", "frame_skip", "shape_reward"}
        extra = sorted(set(kwargs) - allowed)
        if extra:
            raise ValueError(f"{', '.join(extra)}: an evaluation may change only {', '.join(sorted(allowed))}")
        return kwargs


class DoomTask(_Task):
    """A ViZDoom scenario (envs/doom.py): neurorl's `retinal_<name>` or one bundled with vizdoom."""

    family: Literal["doom"]
    kind: Literal["doom"] = "doom"
    scenario: str  # retinal_<name> (scenarios/) or a vizdoom scenario (basic, health_gathering, ...)
    frame_skip: int = Field(4, gt=0)  # action repeat, in tics
    width: int = Field(128, gt=0)  # observation size after resizing the 160x120 screen
    height: int = Field(72, gt=0)
    shape_reward: bool = True  # +1 whenever HEALTH rises; the engine's reward is reported apart
    protocols: dict[str, DoomProtocol] = Field(default_factory=lambda: {"default": DoomProtocol()})

    @field_validator("budget")
    @classmethod
    def _steps_only(cls, budget: Budget):
        if budget.units != ["steps"]:
            raise ValueError("a Doom task's budget counts agent steps: units = [\"steps\"]")
        return budget


TaskSpec = Annotated[
    NeuroGymTask | ConditioningTask | MetaRLTask | FireflyTask | DoomTask, Field(discriminator="family")
]
_TASK = TypeAdapter(TaskSpec)


class _OnPolicyHyper(BaseModel):
    """`hyper` of an sb3 on-policy algorithm: the numeric settings PPO, RecurrentPPO and A2C share."""

    model_config = _LIBRARY
    learning_rate: float = Field(None, gt=0)
    n_steps: int = Field(None, gt=0)  # steps per environment per rollout
    gamma: float = Field(None, ge=0, le=1)
    gae_lambda: float = Field(None, ge=0, le=1)
    ent_coef: float = Field(None, ge=0)
    vf_coef: float = Field(None, ge=0)
    max_grad_norm: float = Field(None, gt=0)  # 0 would scale every gradient to nothing
    normalize_advantage: bool = None
    use_sde: bool = None
    sde_sample_freq: int = Field(None, ge=-1)  # -1: a new noise matrix only at each rollout's start
    stats_window_size: int = Field(None, gt=0)


class PPOHyper(_OnPolicyHyper):
    """`hyper` of sb3's PPO and sb3-contrib's RecurrentPPO."""

    batch_size: int = Field(None, gt=0)
    n_epochs: int = Field(None, gt=0)
    clip_range: float = Field(None, gt=0)
    clip_range_vf: float | None = Field(None, gt=0)  # None: the value is not clipped
    target_kl: float | None = Field(None, gt=0)  # None: no early stop on KL

    @model_validator(mode="after")
    def _advantages_normalizable(self):
        # sb3's PPO asserts this when built; sb3-contrib's RecurrentPPO fails only while learning.
        if self.batch_size == 1 and self.normalize_advantage is not False:
            raise ValueError("batch_size 1 leaves no minibatch to normalize advantages over: "
                             "use 2 or more, or set model.normalize_advantage=false")
        return self


class A2CHyper(_OnPolicyHyper):
    """`hyper` of sb3's A2C."""

    rms_prop_eps: float = Field(None, gt=0)
    use_rms_prop: bool = None


SB3_HYPER: dict[str, type[BaseModel]] = {"RecurrentPPO": PPOHyper, "PPO": PPOHyper, "A2C": A2CHyper}


class SB3PolicyKwargs(BaseModel):
    """`policy_kwargs` of an sb3 policy: the sizes and numbers of its networks."""

    model_config = _LIBRARY
    net_arch: list[PositiveInt] | dict[str, list[PositiveInt]] = None  # hidden layers; or per head {pi, vf}
    lstm_hidden_size: int = Field(None, gt=0)  # RecurrentPPO
    n_lstm_layers: int = Field(None, gt=0)
    shared_lstm: bool = None
    enable_critic_lstm: bool = None
    log_std_init: float = None  # continuous actions: any finite value
    ortho_init: bool = None


class EncoderSettings(BaseModel):
    """A retinal encoder's settings (nets/retinal.py); None: the encoder's own default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    global_channels: int | None = Field(None, gt=0)
    retinal_bottleneck: int | None = Field(None, gt=0)  # retinal-lindsey only
    vvs_depth: int | None = Field(None, ge=0)  # retinal-lindsey only
    kernel_size: int | None = Field(None, gt=0)
    retinal_stride: int | None = Field(None, gt=0)
    activation: Literal["elu", "relu", "tanh", "linear"] = "elu"
    greyscale: bool = False
    hidden_size: int | None = Field(None, gt=0)


class SB3Model(_Spec):
    name: str
    engine: Literal["sb3"]
    description: str = ""
    algo: Literal["RecurrentPPO", "PPO", "A2C"]
    policy: str
    recurrent: bool = False
    families: list[str] = Field(default_factory=lambda: ["neurogym"])  # task families it trains on
    n_envs: int = Field(1, gt=0)  # environments stepped together by the library's vector env
    observations: list[Literal["vector", "image"]] = Field(default_factory=lambda: ["vector"])
    actions: list[Literal["discrete", "box", "multidiscrete", "multibinary"]]
    hyper: dict[str, Any] = Field(default_factory=dict)
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    # A retinal encoder (nets/retinal.py) as the policy's features extractor, for image
    # observations: `name` plus any of its settings (global_channels, hidden_size, ...).
    encoder: dict[str, Any] | None = None

    @field_validator("encoder")
    @classmethod
    def _valid_encoder(cls, encoder: dict | None):
        if encoder is not None:
            from neurorl_cli.nets import retinal

            settings = dict(encoder)
            if "name" not in settings:
                raise ValueError(f"give the encoder's name: one of {', '.join(retinal.ENCODERS)}")
            EncoderSettings.model_validate({k: v for k, v in settings.items() if k in ENCODER_SETTINGS})
            retinal.encoder_settings(settings.pop("name"), **settings)
        return encoder

    @model_validator(mode="after")
    def _bounded(self):
        # Validated, not replaced: settings a spec leaves out keep the library's defaults and
        # stay out of the config and its hash.
        SB3_HYPER[self.algo].model_validate(self.hyper)
        SB3PolicyKwargs.model_validate(self.policy_kwargs)
        return self


class NativeModel(_Spec):
    """A trainer of our own (backends/<algo>.py), for algorithms no library has."""

    name: str
    engine: Literal["native"]
    description: str = ""
    algo: Literal["distributional-td", "meta-a2c-lstm", "td3"]
    families: list[str]
    actions: list[Literal["discrete", "box"]] | None = None  # action spaces it can act in; None: it takes no actions
    hyper: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_hyper(self):
        native_hyper(self.algo).model_validate(self.hyper)
        return self


def native_hyper(algo: str):
    """The pydantic model of a native trainer's hyper-parameters."""
    if algo == "meta-a2c-lstm":
        from neurorl_cli.backends.meta_a2c import Hyper
    elif algo == "td3":
        from neurorl_cli.backends.td3 import Hyper
    else:
        from neurorl_cli.backends.distributional_td import Hyper
    return Hyper


# The settings of a retinal encoder (nets/retinal.py), shared by the engines that use one.
ENCODER_SETTINGS = ("global_channels", "retinal_bottleneck", "vvs_depth", "kernel_size", "retinal_stride",
                    "activation", "greyscale", "hidden_size")


class SampleFactoryHyper(EncoderSettings):
    """Every setting of a sample-factory model, with its default (backends/sample_factory.py).

    Defaults are sample-factory 1.x APPO's with retinal-rl's overrides (reference, sf1-legacy;
    learning_rate and gamma are SF1's base defaults as remembered, not confirmed in a source),
    except `num_workers`: sample-factory starts one per CPU core; 2 keeps a laptop usable.
    Encoder settings left at None take the encoder's own default (nets/retinal.py).
    """

    # the encoder's settings (EncoderSettings), but for
    hidden_size: int = Field(64, gt=0)  # encoder output and GRU size (retinal override; SF: 512)
    # sample-factory APPO
    num_workers: int = Field(2, gt=0)  # rollout worker processes (SF: one per core)
    num_envs_per_worker: int = Field(10, gt=0)  # retinal override (SF: 2)
    worker_num_splits: int = Field(2, gt=0)  # double-buffered sampling
    batch_size: int = Field(2048, gt=0)  # retinal override (SF: 1024)
    num_batches_per_epoch: int = Field(1, gt=0)
    num_epochs: int = Field(1, gt=0)  # PPO epochs per batch
    rollout: int = Field(32, gt=0)
    recurrence: int = Field(32, gt=0)  # BPTT length
    rnn_type: Literal["gru", "lstm"] = "gru"
    rnn_num_layers: int = Field(1, gt=0)
    learning_rate: float = Field(1e-4, gt=0)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)  # used only without V-trace
    with_vtrace: bool = True
    ppo_clip_ratio: float = Field(0.1, gt=0)
    ppo_clip_value: float = Field(0.2, gt=0)  # retinal override (SF: 1.0)
    value_loss_coeff: float = Field(0.5, ge=0)
    exploration_loss: Literal["entropy", "symmetric_kl"] = "symmetric_kl"  # retinal override
    exploration_loss_coeff: float = Field(0.001, ge=0)  # retinal override (SF: 0.003)
    reward_scale: float = Field(0.1, gt=0)  # retinal override (SF: 1.0)
    max_grad_norm: float = Field(4.0, ge=0)
    adam_eps: float = Field(1e-6, gt=0)

    @model_validator(mode="after")
    def _consistent(self):
        if self.rollout % self.recurrence:
            raise ValueError(f"rollout ({self.rollout}) must be a multiple of recurrence ({self.recurrence})")
        if self.batch_size % self.recurrence:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of recurrence ({self.recurrence})")
        if self.num_envs_per_worker % self.worker_num_splits:
            raise ValueError(f"num_envs_per_worker ({self.num_envs_per_worker}) must be a multiple of "
                             f"worker_num_splits ({self.worker_num_splits})")
        # sample-factory's own verify_cfg checks these only once its workers are starting
        if self.recurrence < 2:
            raise ValueError(f"recurrence ({self.recurrence}) must be at least 2: the GRU core learns through time")
        if self.with_vtrace and self.recurrence != self.rollout:
            raise ValueError(f"with V-trace, recurrence ({self.recurrence}) must equal rollout ({self.rollout}); "
                             "or set model.with_vtrace=false")
        return self

    def encoder_settings(self) -> dict[str, Any]:
        """The encoder's settings as make_encoder takes them (None: the encoder's default)."""
        return {k: getattr(self, k) for k in ENCODER_SETTINGS if getattr(self, k) is not None}


class SampleFactoryModel(_Spec):
    """A retinal encoder + GRU core trained by sample-factory's APPO (backends/sample_factory.py)."""

    name: str
    engine: Literal["sample-factory"]
    description: str = ""
    algo: Literal["APPO"] = "APPO"
    encoder: Literal["retinal-simple", "retinal-lindsey"]
    families: list[str] = Field(default_factory=lambda: ["doom"])
    hyper: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_hyper(self):
        from neurorl_cli.nets import retinal

        hyper = SampleFactoryHyper.model_validate(self.hyper)
        retinal.encoder_settings(self.encoder, **hyper.encoder_settings())
        # Every setting, defaults filled in (None: the encoder's own, left out), so that what is
        # trained, listed and hashed is the same whether a model file writes a default or not.
        self.hyper = hyper.model_dump(exclude_none=True)
        return self


ModelSpec = Annotated[SB3Model | NativeModel | SampleFactoryModel, Field(discriminator="engine")]
_MODEL = TypeAdapter(ModelSpec)


# Fields that describe a spec but do not change what is trained: left out of the hash.
_DESCRIPTIVE = {"description"}


# Fields added after configs were first stored, left out at their defaults so that those
# configs (and their hashes) stay what they were.
_ADDED = {"model_defaults": {}, "actions": None, "encoder": None}
_ADDED_TO_PROTOCOLS = {"actions": "greedy"}


def _identity(spec: BaseModel) -> dict:
    out = {k: v for k, v in spec.model_dump(mode="json").items()
           if k not in _DESCRIPTIVE and not (k in _ADDED and v == _ADDED[k])}
    for protocol in out.get("protocols", {}).values():
        for key, default in _ADDED_TO_PROTOCOLS.items():
            if protocol.get(key) == default:
                del protocol[key]
    return out


# ----------------------------------------------------------------------------- loading


# What pydantic puts in an error's path for the member of a union it tried: not a field.
_UNION_MEMBER = re.compile(r"(constrained-)?(float|int|str|bool)|(list|dict|function-\w+)\[.*\]")


def _first_error(exc: ValidationError, data: dict) -> tuple[str, str]:
    """The first error's field path, without the union tags pydantic puts in it."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    if loc and loc[0] in (data.get("family"), data.get("engine")):
        loc = loc[1:]
    loc = [part for part in loc if not (isinstance(part, str) and _UNION_MEMBER.fullmatch(part))]
    return ".".join(map(str, loc)) or "(top)", first["msg"].removeprefix("Value error, ")


def _load_toml(path: Path, adapter: TypeAdapter):
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not a readable TOML spec ({exc})") from exc
    data.setdefault("name", path.stem)
    if adapter is _TASK:
        data.setdefault("family", "neurogym")
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        field, message = _first_error(exc, data)
        raise UserError(f"{path}: field '{field}': {message}") from exc


def _catalog(kind: str, home: Home | None) -> dict[str, Path]:
    folders = [bundled_dir(kind)]
    if home is not None:
        folders.append(home.root / kind)
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = path
    return found


def task_names(home: Home | None = None) -> list[str]:
    return sorted(_catalog("tasks", home))


def model_names(home: Home | None = None) -> list[str]:
    return sorted(_catalog("models", home))


def _unknown(kind: str, name: str, known: list[str], hint: str) -> UserError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    maybe = f" Did you mean {', '.join(close)}?" if close else ""
    return UserError(f"unknown {kind} '{name}'.{maybe} {hint}")


def _load(kind: str, adapter: TypeAdapter, name: str, home: Home | None, hint: str):
    """A spec file path, or a catalog name (the user's folder shadows the shipped one)."""
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return _load_toml(path, adapter)
    catalog = _catalog(f"{kind}s", home)
    if name not in catalog:
        raise _unknown(kind, name, list(catalog), hint)
    return _load_toml(catalog[name], adapter)


def load_task(name: str, home: Home | None = None) -> TaskSpec:
    if name.startswith("neurogym:"):
        return neurogym_task(name.split(":", 1)[1])
    return _load("task", _TASK, name, home, "See `neurorl tasks`, or use neurogym:<Id> or a spec file.")


def load_model(name: str, home: Home | None = None) -> ModelSpec:
    return _load("model", _MODEL, name, home, "See `neurorl models`, or give a spec file.")


def neurogym_task(env_id: str) -> TaskSpec:
    """Any registered NeuroGym task with its default kwargs."""
    from neurorl_cli.envs import neurogym_env

    known = neurogym_env.registered_ids()
    if env_id not in known:
        raise _unknown("NeuroGym task", env_id, known, "List them with `neurorl tasks --neurogym`.")
    return NeuroGymTask(
        name=f"neurogym:{env_id}",
        description=f"NeuroGym {env_id} with its default settings.",
        env=EnvSpec(id=env_id),
        budget=Budget(steps=100_000, checkpoint_every=10_000),
    )


# ----------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """`--set` values: JSON where it parses (numbers, true/false, [lists]), else a string."""
    lowered = {"True": "true", "False": "false", "None": "null"}.get(text, text)
    try:
        return json.loads(lowered)
    except json.JSONDecodeError:
        return text


def split_grid(text: str) -> list[str]:
    """Bare commas make a grid; commas inside [...] belong to a list value."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


# Where a short key is looked up, in order: `--set model.learning_rate=...` means
# model.hyper.learning_rate; `--set task.dt=50` means task.env.kwargs.dt.
# `--set model.global_channels=8` on an sb3 model with a retinal encoder means model.encoder.global_channels.
_SHORTCUTS = {"model": ["", "hyper.", "policy_kwargs.", "encoder."], "task": ["", "env.kwargs.", "env.", "schedule."]}


def _check_type(key: str, old: Any, new: Any) -> Any:
    if old is None:
        return new
    if isinstance(old, bool) or isinstance(new, bool):
        if isinstance(old, bool) and isinstance(new, bool):
            return new
    elif isinstance(old, float) and isinstance(new, int | float):
        return float(new)
    elif isinstance(old, int) and isinstance(new, int):
        return new
    elif isinstance(old, str) and isinstance(new, str):
        return new
    elif isinstance(old, list) and isinstance(new, list):
        return new
    elif isinstance(old, dict) and isinstance(new, dict):
        return new
    raise UserError(
        f"--set {key}: expected {type(old).__name__} like {json.dumps(old)}, got {json.dumps(new)}"
    )


def _library_defaults(section: str, sub: str, spec: dict) -> dict[str, Any]:
    """Keys a spec does not list but the library accepts, with their defaults."""
    if section == "task" and sub == "env.kwargs." and spec.get("family") == "neurogym":
        from neurorl_cli.envs import neurogym_env

        return neurogym_env.constructor_defaults(spec["env"])
    if section == "task" and sub == "env." and spec.get("family") == "meta-rl":
        from neurorl_cli.envs import batched

        return batched.env_kwargs(spec["kind"])
    if section == "task" and sub == "env." and spec.get("family") == "firefly":
        from neurorl_cli.envs.firefly import Firefly

        return describe_signature(Firefly.__init__)
    if section == "model" and sub == "hyper." and spec.get("engine") == "sb3":
        from neurorl_cli.backends import sb3

        return sb3.constructor_defaults(spec["algo"])
    if section == "model" and sub == "hyper." and spec.get("engine") == "native":
        return {k: f.default for k, f in native_hyper(spec["algo"]).model_fields.items()}
    if section == "model" and sub == "hyper." and spec.get("engine") == "sample-factory":
        from neurorl_cli.nets import retinal

        defaults = {k: f.default for k, f in SampleFactoryHyper.model_fields.items()}
        return {**defaults, **retinal.DEFAULTS[spec["encoder"]]}  # typed by the encoder's own defaults
    if section == "model" and sub == "encoder." and spec.get("engine") == "sb3" and spec.get("encoder"):
        from neurorl_cli.nets import retinal

        return {k: None for k in ENCODER_SETTINGS} | retinal.DEFAULTS[spec["encoder"]["name"]]
    return {}


def _parent(spec: dict, path: list[str], create: bool = False) -> dict | None:
    """The table holding the last key of a dotted path (made on the way when `create`)."""
    node: Any = spec
    for part in path[:-1]:
        if not isinstance(node, dict):
            return None
        node = node.setdefault(part, {}) if create else node.get(part)
    return node if isinstance(node, dict) else None


def apply_override(section_specs: dict[str, dict], key: str, value: Any) -> str:
    """Set one `--set` value; returns the path it was set at (e.g. model.hyper.n_steps)."""
    section, _, rest = key.partition(".")
    if section not in _SHORTCUTS or not rest:
        raise UserError(f"--set {key}: keys start with 'task.' or 'model.' (e.g. model.learning_rate=1e-3)")
    spec, name = section_specs[section], rest.split(".")[-1]
    for prefix in _SHORTCUTS[section]:
        node = _parent(spec, (prefix + rest).split("."))
        if node is not None and name in node:
            node[name] = _check_type(key, node[name], value)
            return f"{section}.{prefix}{rest}"
    # Not in the spec: accept keys the library itself takes, typed by its default.
    head = rest.split(".")[0]
    for prefix in _SHORTCUTS[section][1:]:
        defaults = _library_defaults(section, prefix, spec)
        if head in defaults:
            node = _parent(spec, (prefix + rest).split("."), create=True)
            node[name] = _check_type(key, defaults[head], value) if head == name else value
            return f"{section}.{prefix}{rest}"
    raise UserError(f"--set {key}: no such setting in the {section} spec '{spec['name']}'; see `neurorl {section}s --json`")


# ----------------------------------------------------------------------------- config


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(obj: Any) -> str:
    return hashlib.blake2b(canonical_json(obj).encode(), digest_size=16).hexdigest()


def resolve(
    task: TaskSpec,
    model: ModelSpec,
    overrides: list[str] | None = None,
    steps: int | None = None,
    checkpoint_every: int | None = None,
    trials: int | None = None,
) -> list[dict]:
    """Task + model + `--set` overrides + budget -> frozen configs (several when a grid is given).

    Identity: a config's hash covers task, model and budget (not device, launcher, jobs or
    paths); the experiment is that hash, and each seed's run is the experiment plus its seed.
    """
    grid: list[list[tuple[str, Any]]] = []
    for item in overrides or []:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--set {item}: write it as section.key=value, e.g. model.learning_rate=1e-3")
        grid.append([(key.strip(), parse_value(v.strip())) for v in split_grid(raw)])

    configs = []
    for combo in itertools.product(*grid):
        specs = {"task": copy.deepcopy(_identity(task)), "model": copy.deepcopy(_identity(model))}
        for key, value in specs["task"].get("model_defaults", {}).get(model.name, {}).items():
            apply_override(specs, f"model.{key}", value)
        written = {apply_override(specs, key, value): (key, value) for key, value in combo}
        for section, adapter in (("task", _TASK), ("model", _MODEL)):
            try:  # re-validate: an override must leave a valid spec
                adapter.validate_python(specs[section])
            except ValidationError as exc:
                field, message = _first_error(exc, specs[section])
                raise UserError(_override_error(f"{section}.{field}", message, written)) from exc
        budget = _budget(specs["task"]["budget"], {"steps": steps, "trials": trials}, checkpoint_every)
        config = {"task": specs["task"], "model": specs["model"], "budget": budget}
        config["overrides"] = {k: v for k, v in combo}
        configs.append(config)
    return configs


def _override_error(path: str, message: str, written: dict[str, tuple[str, Any]]) -> str:
    """Name the setting as the user wrote it when the error is in one they set. A nested schema's
    error gives a path relative to its table (`n_steps` for model.hyper.n_steps)."""
    section, _, field = path.partition(".")
    mine = [where for where in written if where.startswith(section + ".")]
    if field == "(top)" and len(mine) == 1:  # a check across the spec's settings, after one change
        key, value = written[mine[0]]
        return f"--set {key}={json.dumps(value)}: {message}"
    for where, (key, value) in written.items():
        if path == where or path.startswith(where + ".") or (where.startswith(section + ".") and where.endswith("." + field)):
            return f"--set {key}={json.dumps(value)}: {message}"
    return f"--set: {path}: {message}"


def _budget(spec: dict, asked: dict[str, int | None], checkpoint_every: int | None) -> dict:
    """The run's budget in one unit the task accepts: `{unit: total, "checkpoint_every": n}`."""
    given = [unit for unit, value in asked.items() if value is not None]
    if len(given) > 1:
        raise UserError("give --steps or --trials, not both")
    units = spec["units"]
    unit = given[0] if given else units[0]
    if unit not in units:
        raise UserError(f"this task's budget counts {' or '.join(units)}: use --{units[0]}")
    total = asked[unit] if given else spec[unit]
    every = checkpoint_every if checkpoint_every is not None else spec["checkpoint_every"]
    if total <= 0 or every <= 0:
        raise UserError(f"--{unit} and --checkpoint-every must be positive")
    return {unit: total, "checkpoint_every": min(every, total)}


def budget_total(config: dict) -> tuple[str, int]:
    """(unit, total) of a resolved config's budget."""
    budget = config["budget"]
    unit = "steps" if "steps" in budget else "trials"
    return unit, int(budget[unit])


def experiment_hash(config: dict) -> str:
    return config_hash({k: config[k] for k in ("task", "model", "budget")})


def run_hash(config: dict, seed: int) -> str:
    return config_hash({"experiment": experiment_hash(config), "seed": seed})


DOOM_ENV = ("scenario", "frame_skip", "width", "height", "shape_reward")  # a Doom task's environment settings


def task_environment(task: dict) -> dict:
    """What a task's trials come from: a NeuroGym env table, a conditioning schedule, a Doom scenario."""
    if task.get("family") == "doom":
        return {key: task[key] for key in DOOM_ENV}
    return {key: task[key] for key in ("env", "schedule") if key in task}


def in_protocol_order(task: dict, names) -> list[str]:
    """Protocol names in the order the task lists them (the first selects `best` checkpoints);
    names the task does not list come after, by name."""
    order = list(task.get("protocols", {}))
    return sorted(names, key=lambda p: (order.index(p) if p in order else len(order), p))


def protocol_hash(env: dict, protocol: dict) -> str:
    """Identity of an evaluation: the protocol (trials, seed, kwargs) and the environment."""
    return config_hash({"protocol": protocol, "env": env})


def parse_seeds(text: str) -> list[int]:
    """`0-4`, `3`, `0,2,5` or a mix."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise UserError(f"--seeds {text}: seeds are whole numbers from 0, written as 0-4, 3 or 0,2,5")
        if dash and int(hi) < int(lo):
            raise UserError(f"--seeds {text}: the range {part.strip()} runs backwards; write {hi}-{lo}")
        seeds.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    return sorted(set(seeds))


def describe_signature(fn) -> dict[str, Any]:
    """Defaults of a constructor's keyword parameters (for keys a spec does not list)."""
    params = inspect.signature(fn).parameters.items()
    return {name: p.default for name, p in params if p.default is not inspect.Parameter.empty}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neurorl"


def _spaces(env: dict) -> tuple[str, str, str, str]:
    """(observation kind, action kind, and their descriptions) of a task's environment.

    Finding them means building the environment, and importing NeuroGym imports torch (2-3 s).
    For registered ids the answer depends only on the spec and the library versions, so it is
    cached per user; a user's own `module:Class` is always built afresh, since its code may change.
    """
    from importlib.metadata import version

    from neurorl_cli import atomic
    from neurorl_cli.envs import neurogym_env

    key = config_hash({"env": env, "neurogym": version("neurogym"), "gymnasium": version("gymnasium")})
    cache = _cache_dir() / "spaces.json"
    known: dict = {}
    if env.get("id"):
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if key in known:
            return tuple(known[key])
    obs_kind, act_kind, obs_space, act_space = neurogym_env.spaces(env)
    found = (obs_kind, act_kind, str(obs_space), str(act_space))
    if env.get("id"):
        try:
            atomic.write_json(cache, {**known, key: list(found)})
        except OSError:
            pass  # a cache we cannot write only costs time
    return found


def pair_problem(config: dict) -> str | None:
    """Why a task/model pair does not fit, or None when it does."""
    task, model = config["task"], config["model"]
    if task["family"] not in model["families"]:
        return (f"{model['name']} trains on {'/'.join(model['families'])} tasks, but {task['name']} is a "
                f"{task['family']} task: choose another model (see `neurorl tasks`)")
    if task["family"] == "neurogym":
        obs_kind, act_kind, obs_space, act_space = _spaces(task["env"])
    elif task["family"] == "meta-rl":
        obs_kind, act_kind, obs_space, act_space = "vector", "discrete", "a vector", "Discrete(2)"
    elif task["family"] == "firefly":
        obs_kind, act_kind, obs_space, act_space = "vector", "box", "a vector", "Box(-1, 1, (2,))"
    elif task["family"] == "doom":
        return _doom_problem(task, model)
    else:
        return None
    if obs_kind not in model.get("observations", [obs_kind]):
        return (f"{model['name']} takes {'/'.join(model['observations'])} observations, but {task['name']} "
                f"gives {obs_kind} ({obs_space}): choose another model (see `neurorl tasks`)")
    if act_kind not in (model.get("actions") or [act_kind]):
        return (f"{model['name']} acts in {'/'.join(model['actions'])} spaces, but {task['name']} needs "
                f"{act_kind} ({act_space}): choose another model (see `neurorl tasks`)")
    return None


def _doom_problem(task: dict, model: dict) -> str | None:
    """A Doom task needs its scenario, a model that takes images, and an encoder that fits them."""
    from neurorl_cli.envs import doom
    from neurorl_cli.nets import retinal

    try:
        doom.scenario_path(task["scenario"])
    except UserError as exc:
        return str(exc)
    shape = f"Box(0, 255, ({task['height']}, {task['width']}, 3), uint8)"
    if model["engine"] == "sb3":
        if "image" not in model.get("observations", []):
            return (f"{model['name']} takes {'/'.join(model['observations'])} observations, but {task['name']} "
                    f"gives images ({shape}): choose a model with an image encoder (see `neurorl tasks`)")
        if "multidiscrete" not in model.get("actions", []):
            return (f"{model['name']} acts in {'/'.join(model['actions'])} spaces, but {task['name']} needs "
                    f"multidiscrete (MultiDiscrete([3 3]): turn x move): choose another model (see `neurorl tasks`)")
        if not model.get("encoder"):
            return None
        settings = dict(model["encoder"])
        name = settings.pop("name")
    elif model["engine"] == "sample-factory":
        name, settings = model["encoder"], SampleFactoryHyper.model_validate(model["hyper"]).encoder_settings()
    else:
        return None
    try:
        retinal.conv_shapes(name, (3, task["height"], task["width"]), **settings)
    except UserError as exc:
        return str(exc)
    return None


def check_pair(config: dict) -> None:
    """Refuse a task/model pair that does not fit, before anything is stored."""
    problem = pair_problem(config)
    if problem:
        raise UserError(problem)
