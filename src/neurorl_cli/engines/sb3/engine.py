"""The stable-baselines3 / sb3-contrib engine as the core sees it: its model spec, settings and
what it can train. The trainer (trainer.py) is imported only to train, evaluate or load."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from neurorl_cli.interfaces import EngineBase, Offer
from neurorl_cli.nets.retinal import ENCODER_SETTINGS, EncoderSettings
from neurorl_cli.specs import LIBRARY, ModelSpecBase, PositiveInt

class _OnPolicyHyper(BaseModel):
    """`hyper` of an sb3 on-policy algorithm: the numeric settings PPO, RecurrentPPO and A2C share."""

    model_config = LIBRARY
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

    model_config = LIBRARY
    net_arch: list[PositiveInt] | dict[str, list[PositiveInt]] = None  # hidden layers; or per head {pi, vf}
    lstm_hidden_size: int = Field(None, gt=0)  # RecurrentPPO
    n_lstm_layers: int = Field(None, gt=0)
    shared_lstm: bool = None
    enable_critic_lstm: bool = None
    log_std_init: float = None  # continuous actions: any finite value
    ortho_init: bool = None


class SB3Model(ModelSpecBase):
    engine: Literal["sb3"]
    algo: Literal["RecurrentPPO", "PPO", "A2C"]
    policy: str
    recurrent: bool = False
    # The task families the model was written for: listed by `neurorl models` and part of stored
    # configs' identity (so the default stays), but pairs are decided by observations and actions.
    families: list[str] = Field(default_factory=lambda: ["neurogym"])
    n_envs: int = Field(1, gt=0)  # environments stepped together by the library's vector env
    observations: list[Literal["vector", "image"]] = Field(default_factory=lambda: ["vector"])
    actions: list[Literal["discrete", "box", "multidiscrete", "multibinary"]]
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




def _retinal_problem(model: dict, encoder: dict, offer: Offer) -> str | None:
    """Whether the encoder's layers fit the task's images."""
    from neurorl_cli.errors import UserError
    from neurorl_cli.nets import retinal

    settings = dict(encoder)
    name = settings.pop("name")
    height, width = offer.observation_shape[:2]
    try:
        retinal.conv_shapes(name, (3, height, width), **settings)
    except UserError as exc:
        return str(exc)
    return None


class SB3Engine(EngineBase):
    name = "sb3"
    model_spec = SB3Model
    set_paths = ("hyper.", "policy_kwargs.", "encoder.")

    def _trainer(self):
        from neurorl_cli.engines.sb3.trainer import SB3Backend

        return SB3Backend()

    def settings(self, model: dict):
        return SB3_HYPER[model["algo"]]

    def setting_defaults(self, model: dict, prefix: str) -> dict[str, Any]:
        if prefix == "hyper.":
            from neurorl_cli.engines.sb3.trainer import constructor_defaults

            return constructor_defaults(model["algo"])
        if prefix == "encoder." and model.get("encoder"):
            from neurorl_cli.nets import retinal

            return {k: None for k in ENCODER_SETTINGS} | retinal.DEFAULTS[model["encoder"]["name"]]
        return {}

    def problem(self, model: dict, task: dict, offer: Offer) -> str | None:
        name, observations, actions = model["name"], model.get("observations", ["vector"]), model["actions"]
        if not offer.single_env:
            return (f"{name} trains through {self._library(model)} on a gymnasium environment, which {task['name']} "
                    "does not offer: choose another model (see `neurorl tasks`)")
        if offer.observations not in observations:
            if offer.observations == "image":
                return (f"{name} takes {'/'.join(observations)} observations, but {task['name']} gives images "
                        f"({offer.observation_space}): choose a model with an image encoder (see `neurorl tasks`)")
            return (f"{name} takes {'/'.join(observations)} observations, but {task['name']} gives "
                    f"{offer.observations} ({offer.observation_space}): choose another model (see `neurorl tasks`)")
        if offer.actions not in actions:
            return (f"{name} acts in {'/'.join(actions)} spaces, but {task['name']} needs {offer.actions} "
                    f"({offer.action_space}): choose another model (see `neurorl tasks`)")
        if offer.observations == "image" and model.get("encoder"):
            return _retinal_problem(model, model["encoder"], offer)
        return None

    @staticmethod
    def _library(model: dict) -> str:
        return "sb3-contrib" if model.get("algo") == "RecurrentPPO" else "Stable-Baselines3"

    def methods(self, model: dict) -> str:
        from neurorl_cli.analysis.prose import model_sentence, pairs, plural

        encoder = model.get("encoder")
        parts = [f"{model['algo']} from {self._library(model)}", f"policy {model['policy']}"
                 + (f" with {pairs(model['policy_kwargs'])}" if model.get("policy_kwargs") else "")]
        if encoder:  # a retinal encoder as the features extractor: its name and settings
            settings = {k: v for k, v in encoder.items() if k != "name"}
            parts.append(f"encoder {encoder['name']}" + (f" ({pairs(settings)})" if settings else ""))
        parts.append(plural(model.get("n_envs", 1), "parallel environment"))
        return model_sentence(model, "; ".join(parts))

    def label(self, model) -> str:
        encoder = f" + {model.encoder['name']}" if model.encoder else ""
        return f"{model.algo} / {model.policy}{encoder}"

    def trains_on(self, model) -> str:
        return f"{'/'.join(model.observations)} -> {'/'.join(model.actions)}"

    def libraries(self, model: dict) -> dict[str, str]:
        contrib = {"sb3-contrib": "sb3-contrib"} if model.get("algo") == "RecurrentPPO" else {}
        return {**contrib, "stable-baselines3": "Stable-Baselines3"}

    def budget_grain(self, config: dict) -> int | None:
        return self._trainer().budget_grain(config)

    def check_settings(self, config: dict) -> None:
        self._trainer().check_settings(config)

    def train(self, run, log) -> None:
        self._trainer().train(run, log)

    def load_policy(self, config: dict, checkpoint, device: str = "cpu"):
        return self._trainer().load_policy(config, checkpoint, device)


engine = SB3Engine()
