"""sample-factory's APPO engine as the core sees it: a retinal encoder + recurrent core, its
settings with their defaults, and what it can train. The trainer is trainer.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from neurorl_cli.interfaces import EngineBase, Offer, field_defaults
from neurorl_cli.engines.sample_factory.settings import SampleFactoryHyper
from neurorl_cli.specs import ModelSpecBase


class SampleFactoryModel(ModelSpecBase):
    """A retinal encoder + GRU core trained by sample-factory's APPO (trainer.py)."""

    engine: Literal["sample-factory"]
    algo: Literal["APPO"] = "APPO"
    encoder: Literal["retinal-simple", "retinal-lindsey"]
    # The task families the model was written for: listed by `neurorl models` and part of stored
    # configs' identity (so the default stays); pairs are decided by what the task offers.
    families: list[str] = Field(default_factory=lambda: ["doom"])

    @model_validator(mode="after")
    def _valid_hyper(self):
        from neurorl_cli.nets import retinal

        hyper = SampleFactoryHyper.model_validate(self.hyper)
        retinal.encoder_settings(self.encoder, **hyper.encoder_settings())
        # Every setting, defaults filled in (None: the encoder's own, left out), so that what is
        # trained, listed and hashed is the same whether a model file writes a default or not.
        self.hyper = hyper.model_dump(exclude_none=True)
        return self


class SampleFactoryEngine(EngineBase):
    name = "sample-factory"
    model_spec = SampleFactoryModel
    set_paths = ("hyper.",)

    def _trainer(self):
        from neurorl_cli.engines.sample_factory.trainer import SampleFactoryBackend

        return SampleFactoryBackend()

    def settings(self, model: dict):
        return SampleFactoryHyper

    def setting_defaults(self, model: dict, prefix: str) -> dict[str, Any]:
        if prefix != "hyper.":
            return {}
        from neurorl_cli.nets import retinal

        return {**field_defaults(SampleFactoryHyper), **retinal.DEFAULTS[model["encoder"]]}  # typed by the encoder's own defaults

    def problem(self, model: dict, task: dict, offer: Offer) -> str | None:
        # The glue (glue.py) runs ViZDoom scenarios in sample-factory's own worker processes.
        if "vizdoom-scenario" not in offer.features or offer.observations != "image":
            return (f"{model['name']} ({model['algo']} from Sample Factory) trains on ViZDoom scenarios with image "
                    f"observations, which {task['name']} does not offer: choose another model (see `neurorl tasks`)")
        from neurorl_cli.errors import UserError
        from neurorl_cli.nets import retinal

        height, width = offer.observation_shape[:2]
        settings = SampleFactoryHyper.model_validate(model["hyper"]).encoder_settings()
        try:
            retinal.conv_shapes(model["encoder"], (3, height, width), **settings)
        except UserError as exc:
            return str(exc)
        return None

    def methods(self, model: dict) -> str:
        from neurorl_cli.analysis.prose import model_sentence

        encoder = f"encoder {model['encoder']}" if model.get("encoder") else "its encoder"
        return model_sentence(model, f"{model.get('algo', 'APPO')} from Sample Factory, {encoder} with a recurrent core")

    def label(self, model) -> str:
        return f"{model.algo} + {model.encoder}"

    def trains_on(self, model) -> str:
        return "ViZDoom scenarios (image -> turn x move)"

    def libraries(self, model: dict) -> dict[str, str]:
        return {"sample-factory": "Sample Factory"}

    def train(self, run, log) -> None:
        self._trainer().train(run, log)

    def load_policy(self, config: dict, checkpoint, device: str = "cpu"):
        return self._trainer().load_policy(config, checkpoint, device)

    def record(self, config: dict, checkpoint, steps: int, frame_skip: int = 1, seed: int = 0, device: str = "cpu") -> dict:
        """The agent's view and activity over `steps` steps (the Doom analyses)."""
        return self._trainer().record(config, checkpoint, steps, frame_skip=frame_skip, seed=seed, device=device)


engine = SampleFactoryEngine()
