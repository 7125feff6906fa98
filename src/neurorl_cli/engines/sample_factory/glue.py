"""What sample-factory needs registered to train neurorl's Doom tasks: the environment and the encoder.

sample-factory starts its learner, rollout and inference workers as spawned processes and
hands each a pickled copy of its registries, so everything registered here is a
`functools.partial` of a module-level function: it pickles by name and is rebuilt in the child.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager

import gymnasium as gym
from sample_factory.algo.learning.learner import Learner
from sample_factory.algo.runners.runner_parallel import ParallelRunner
from sample_factory.envs.env_wrappers import PixelFormatChwWrapper
from sample_factory.model.encoder import Encoder

from neurorl_cli.interfaces import env_seed

ENV_NAME = "neurorl_doom"


class RunSeeds(gym.Wrapper):
    """sample-factory resets environment i with seed i whatever the run: offset it by the run's seed,
    so another seed sees other episodes."""

    def __init__(self, env, run_seed: int):
        super().__init__(env)
        self.run_seed = run_seed

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            seed = env_seed(self.run_seed, seed)
        return self.env.reset(seed=seed, options=options)


def make_doom(task: dict, run_seed: int, full_env_name=None, cfg=None, env_config=None, render_mode=None):
    """sample-factory's environment factory: a task's DoomEnv with CHW images, as its models expect."""
    from neurorl_cli.families.doom.env import task_env

    return PixelFormatChwWrapper(RunSeeds(task_env(task, actions="tuple"), run_seed))


class RetinalSFEncoder(Encoder):
    """A retinal encoder (nets/retinal.py) as sample-factory's encoder, ahead of its GRU core."""

    def __init__(self, cfg, obs_space, name: str, settings: dict):
        super().__init__(cfg)
        from neurorl_cli.nets.retinal import make_encoder

        self.net = make_encoder(name, tuple(obs_space["obs"].shape), **settings)

    def forward(self, obs_dict):
        return self.net(obs_dict["obs"])

    def get_out_size(self) -> int:
        return int(self.net.output_size)


def make_sf_encoder(name: str, settings: dict, cfg, obs_space) -> RetinalSFEncoder:
    return RetinalSFEncoder(cfg, obs_space, name, settings)


class VTraceLearner(Learner):
    """sample-factory 2.1.1's learner, able to record its training summaries under V-trace.

    2.1.1 reads GAE's advantages from the minibatch for its summaries, which V-trace never stores,
    and the learner process dies at its first summary (fixed upstream after 2.1.1 by skipping those
    statistics). Here the summaries get V-trace's advantages, the ones its loss used (normalised)."""

    def _record_summaries(self, train_loop_vars):
        if "advantages" not in train_loop_vars.mb:
            train_loop_vars.mb["advantages"] = train_loop_vars.adv
        return super()._record_summaries(train_loop_vars)


class Runner(ParallelRunner):
    """sample-factory's parallel runner with VTraceLearner in its learner process."""

    def _make_learner(self, event_loop, policy_id, batcher):
        worker = super()._make_learner(event_loop, policy_id, batcher)
        # The same arguments LearnerWorker gave its own learner; the model is built later, in init().
        worker.learner = VTraceLearner(self.cfg, self.env_info, self.buffer_mgr.policy_versions, policy_id,
                                       worker.param_server)
        return worker


@contextmanager
def quiet():
    """sample-factory logs every registration and setting at DEBUG: keep its warnings only."""
    logger = logging.getLogger("rl")  # sample-factory's logger
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def register_encoder(config: dict) -> None:
    """The model's retinal encoder as this process's sample-factory encoder."""
    from sample_factory.algo.utils.context import global_model_factory

    from neurorl_cli.engines.sample_factory.settings import SampleFactoryHyper

    hyper = SampleFactoryHyper.model_validate(config["model"]["hyper"])
    global_model_factory().register_encoder_factory(
        functools.partial(make_sf_encoder, config["model"]["encoder"], hyper.encoder_settings())
    )


def register(config: dict, run_seed: int) -> None:
    """Register a run's environment and encoder in this process's sample-factory context
    (its spawned processes receive copies)."""
    from sample_factory.envs.env_utils import register_env

    register_env(ENV_NAME, functools.partial(make_doom, config["task"], run_seed))
    register_encoder(config)
