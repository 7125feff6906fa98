"""Neurorl's own trainers (one module per algorithm no library has) as one engine, `native`:
the model spec names the algorithm, and each algorithm says what it can train."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from neurorl_cli.interfaces import EngineBase, NotOffered, Offer
from neurorl_cli.specs import ModelSpecBase

class NativeModel(ModelSpecBase):
    """A trainer of our own (engines/native/<algo>.py), for algorithms no library has."""

    engine: Literal["native"]
    algo: Literal["distributional-td", "meta-a2c-lstm", "td3"]
    # The task families the model was written for: listed by `neurorl models` and part of stored
    # configs' identity; pairs are decided by what each algorithm needs (NEEDS).
    families: list[str]
    actions: list[Literal["discrete", "box"]] | None = None  # action spaces it can act in; None: it takes no actions

    @model_validator(mode="after")
    def _valid_hyper(self):
        native_hyper(self.algo).model_validate(self.hyper)
        return self


def native_hyper(algo: str):
    """The pydantic model of a native trainer's hyper-parameters."""
    if algo == "meta-a2c-lstm":
        from neurorl_cli.engines.native.meta_a2c import Hyper
    elif algo == "td3":
        from neurorl_cli.engines.native.td3 import Hyper
    else:
        from neurorl_cli.engines.native.distributional_td import Hyper
    return Hyper




# What each algorithm needs of a task, and the trainer that runs it.
TRAINERS = {
    "distributional-td": "neurorl_cli.engines.native.distributional_td:DistributionalTDBackend",
    "meta-a2c-lstm": "neurorl_cli.engines.native.meta_a2c_group:GroupMetaA2CBackend",
    "td3": "neurorl_cli.engines.native.td3_group:GroupTD3Backend",
}
NEEDS = {
    # value predictors learn from a schedule of cues and rewards; no agent acts
    "distributional-td": {"features": {"cue-reward-schedule"}, "what": "a cue-reward schedule"},
    # whole episodes unrolled side by side as tensors
    "meta-a2c-lstm": {"batched": True, "observations": {"vector"}, "what": "batched episodes of vector observations"},
    # trials of a batched task with a known motion model (its EKF agents filter with it)
    "td3": {"batched": True, "features": {"motion-model"}, "what": "batched trials with a known motion model"},
}


class NativeEngine(EngineBase):
    name = "native"
    model_spec = NativeModel
    set_paths = ("hyper.",)

    def _trainer(self, model: dict):
        from importlib import import_module

        module, _, cls = TRAINERS[model["algo"]].partition(":")
        return getattr(import_module(module), cls)()

    def settings(self, model: dict):
        return native_hyper(model["algo"])

    def problem(self, model: dict, task: dict, offer: Offer) -> str | None:
        needs = NEEDS[model["algo"]]
        fits = (needs.get("features", set()) <= offer.features and offer.batched >= needs.get("batched", False)
                and offer.observations in needs.get("observations", {offer.observations}))
        if not fits:
            algo = f" ({model['algo']})" if model["algo"] != model["name"] else ""
            return (f"{model['name']}{algo} trains on {needs['what']}, which {task['name']} does not offer: "
                    "choose another model (see `neurorl tasks`)")
        actions = model.get("actions")
        if actions is not None and offer.actions not in actions:
            return (f"{model['name']} acts in {'/'.join(actions)} spaces, but {task['name']} needs {offer.actions} "
                    f"({offer.action_space}): choose another model (see `neurorl tasks`)")
        return None

    def methods(self, model: dict) -> str:
        from neurorl_cli.analysis.prose import model_sentence

        trainer = self._trainer(model)
        if hasattr(trainer, "methods"):  # an algorithm that describes itself (distributional TD)
            return trainer.methods(model)
        return model_sentence(model, f"{model['algo']}, neurorl's own torch trainer" + getattr(trainer, "method_note", ""))

    def trains_on(self, model) -> str:
        return NEEDS[model.algo]["what"] + (f" -> {'/'.join(model.actions)}" if model.actions else "")

    def train(self, run, log) -> None:
        self._trainer(run.config["model"]).train(run, log)

    # Seeds per worker process by default, where the algorithm trains seeds as one batched
    # computation: on a CPU, past about 16 seeds the cores are busy and a larger group only
    # delays the first results; a GPU keeps gaining up to hundreds. A trainer may say less
    # (`group_default`, where grouping does not pay on a device).
    GROUP = {"cpu": 16, "cuda": 64}

    def group_size(self, config: dict, device: str, asked: int | None) -> int:
        trainer = self._trainer(config["model"])
        can = getattr(trainer, "can_group", lambda config: hasattr(trainer, "train_group"))
        if not can(config):
            return 1
        kind = "cuda" if device.startswith("cuda") else "cpu"
        return asked or getattr(trainer, "group_default", self.GROUP)[kind]

    def train_group(self, runs, logs) -> None:
        trainer = self._trainer(runs[0].config["model"])
        if not hasattr(trainer, "train_group"):
            raise NotOffered(f"{runs[0].config['model']['algo']} trains one seed at a time")
        trainer.train_group(runs, logs)

    def load_policy(self, config: dict, checkpoint, device: str = "cpu"):
        return self._trainer(config["model"]).load_policy(config, checkpoint, device)

    def evaluate(self, family, config: dict, checkpoint, protocol: dict, device: str = "cpu"):
        trainer = self._trainer(config["model"])
        if hasattr(trainer, "evaluate"):  # a trainer that measures its own agents (TD3's trials, TD's predictors)
            return trainer.evaluate(config, checkpoint, protocol, device)
        return super().evaluate(family, config, checkpoint, protocol, device)

    def evaluate_many(self, config: dict, checkpoints: list, protocol: dict, device: str = "cpu"):
        trainer = self._trainer(config["model"])
        if not hasattr(trainer, "evaluate_many"):
            raise NotOffered(f"{config['model']['algo']} evaluates one checkpoint at a time")
        return trainer.evaluate_many(config, checkpoints, protocol, device)

    def budget_note(self, config: dict) -> str | None:
        trainer = self._trainer(config["model"])
        return trainer.budget_note(config) if hasattr(trainer, "budget_note") else None

    def budget_grain(self, config: dict) -> int | None:
        trainer = self._trainer(config["model"])
        return trainer.budget_grain(config) if hasattr(trainer, "budget_grain") else None

    def record_trials(self, config: dict, checkpoint, protocol: dict, trials: int) -> dict:
        """TD3's agents over a protocol's trials, step by step (firefly analyses and watch)."""
        return self._trainer(config["model"]).record_trials(config, checkpoint, protocol, trials)


engine = NativeEngine()
