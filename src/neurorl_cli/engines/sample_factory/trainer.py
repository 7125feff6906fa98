"""sample-factory 2 APPO on neurorl's Doom tasks: a retinal encoder + sample-factory's GRU core.

Thin on purpose: sample-factory trains, with its own runner, learner, rollout and inference
processes, inside the worker's `train()`. This module builds its configuration from the model
spec, registers our DoomEnv and retinal encoder with it (sf_glue.py), and hooks into its runner
(a `Hooks` object living on the runner's event loop, in the worker's process):

- Checkpoints: sample-factory saves when its runner emits `save_periodic`, by wall clock, and keeps
  two. Wall-clock saving is off (`save_every_sec`, `keep_checkpoints` and the best-policy saver
  set out of reach); the hooks emit `save_periodic` whenever the learner's step count (reported
  after each training iteration) crosses a multiple of the run's `checkpoint_every`, and once
  more at the end. Each file the learner writes is moved, as soon as it announces it
  (`saved_model`), into the run's `checkpoints/` through `RunLog.checkpoint`, named by the
  learner's agent-step count at the save; none is deleted.
- Metrics: handlers added to the runner's message handlers collect the episode statistics the
  rollout workers send (shaped reward, `true_objective`, length, our env's episode_extra_stats)
  and forward them with the learner's training statistics (losses, entropy, KL, learning rate)
  and the throughput measured between reports to `RunLog.metrics`, each time the learner sends
  a summary (every few seconds early on, sample-factory's own pace).
- Budget and stop: the hooks end training (the runner's `_stop_training`, as its own stop
  condition does) at the first iteration that reaches the budget, or when the worker is asked
  to stop (SIGTERM/Ctrl-C); the runner then saves a final checkpoint.
- Resume: the previous attempt's checkpoint is put back into sample-factory's checkpoint folder
  and sample-factory resumes from it (`restart_behavior=resume`): weights, optimizer, counters.

Steps are agent steps (`summaries_use_frameskip` off): the budget's unit. Frame skip happens
inside the environment, so one agent step is `frame_skip` tics.

Evaluation, watching and the analysis recordings run our own loop over the environment (not
sample-factory's enjoy script) with the actor-critic loaded from a checkpoint.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from neurorl_cli.runlog import RunLog
from neurorl_cli.engines.base import package_versions, resolve_device
from neurorl_cli.interfaces import RunConfig

VERSIONED = ["neurorl-cli", "torch", "sample-factory", "vizdoom", "gymnasium", "numpy"]
EXPERIMENT = "sf"  # sample-factory's experiment folder, inside the run's `sample_factory/` train_dir
TRAIN_DIR = "sample_factory"
NEVER = 10**12  # seconds / files / steps sample-factory should never reach
WATCH_EVERY = 0.5  # seconds between checks of the worker's stop request and of sample-factory's processes
SF_CHECKPOINT = re.compile(r"checkpoint_(\d+)_(\d+)\.pth$")

# Settings neurorl fixes rather than leaves to the model spec, and why.
FIXED = {
    "algo": "APPO",
    "use_rnn": True,
    "actor_critic_share_weights": True,  # one encoder and core for actor and critic, as the reference
    "obs_subtract_mean": 0.0,
    "obs_scale": 255.0,  # the encoder sees images in [0, 1], as the reference's
    # A running input normalisation would change what the first conv layer sees, and so
    # what its receptive fields mean; the reference has none.
    "normalize_input": False,
    "normalize_returns": False,  # sample-factory refuses it with V-trace; the reference has none
    "summaries_use_frameskip": False,  # count agent steps, the budget's unit, not tics
    "save_every_sec": NEVER,  # checkpoints come from our step counter, not the clock
    "keep_checkpoints": NEVER,  # none deleted
    "save_best_every_sec": NEVER,  # "best" is chosen by evaluation, not by training reward
    "save_best_after": NEVER,
    "with_wandb": False,
}


# ----------------------------------------------------------------------------- configuration


def hyper_of(config: dict):
    from neurorl_cli.engines.sample_factory.settings import SampleFactoryHyper

    return SampleFactoryHyper.model_validate(config["model"]["hyper"])


def sf_settings(config: dict) -> dict:
    """sample-factory's settings for a model spec: its hyper-parameters, GRU size = hidden_size."""
    from neurorl_cli.nets.retinal import ENCODER_SETTINGS

    hyper = hyper_of(config).model_dump()
    out = {k: v for k, v in hyper.items() if k not in ENCODER_SETTINGS}
    out["rnn_size"] = hyper["hidden_size"]
    out["env_frameskip"] = int(config["task"].get("frame_skip", 4))
    out.update(FIXED)
    return out


def sf_config(config: dict, train_dir: Path, device: str, seed: int, extra: dict | None = None):
    """sample-factory's configuration, parsed by its own parser from an argv we build."""
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args

    from neurorl_cli.engines.sample_factory import glue as sf_glue

    settings = {
        **sf_settings(config), "env": sf_glue.ENV_NAME, "experiment": EXPERIMENT, "train_dir": str(train_dir),
        "device": "gpu" if str(device).startswith("cuda") else "cpu", "seed": int(seed), **(extra or {}),
    }
    argv = [f"--{key}={value}" for key, value in settings.items()]  # booleans as True/False, as its parser reads them
    parser, _ = parse_sf_args(argv=argv, evaluation=False)
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(settings) - known)
    if unknown:  # our settings and sample-factory's names must agree: a typo would be ignored silently
        raise ValueError(f"sample-factory has no setting {', '.join(unknown)}")
    return parse_full_cfg(parser, argv)


def spaces(config: dict):
    """The observation and action spaces sample-factory's model sees (images CHW, a Tuple of two Discrete(3))."""
    import gymnasium as gym

    task = config["task"]
    obs = gym.spaces.Box(0, 255, (3, int(task.get("height", 72)), int(task.get("width", 128))), np.uint8)
    return gym.spaces.Dict({"obs": obs}), gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Discrete(3)))


# ----------------------------------------------------------------------------- training hooks


def _checkpoint_dir(train_dir: Path) -> Path:
    return Path(train_dir) / EXPERIMENT / "checkpoint_p0"


def _number(value) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().mean().item() if value.numel() else None
    if isinstance(value, np.ndarray):
        value = float(value.mean()) if value.size else None
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    return None


def _hooks_class():
    # Imported here: sample-factory loads torch and its multiprocessing machinery.
    from sample_factory.algo.runners.runner import AlgoObserver
    from signal_slot.signal_slot import EventLoopObject, Timer

    class Hooks(EventLoopObject, AlgoObserver):
        """Budget, checkpoints, metrics and stop requests, on the runner's event loop."""

        def __init__(self, runner, log: RunLog, run: RunConfig, train_dir: Path, start_step: int, keep: set[str]):
            EventLoopObject.__init__(self, runner.event_loop, "neurorl_hooks")
            self.runner, self.log, self.run = runner, log, run
            self.folder = _checkpoint_dir(train_dir)
            self.every, self.total = run.checkpoint_every, run.steps
            self.frame_skip = int(run.config["task"].get("frame_skip", 4))
            self.asked = start_step  # the step at which the last checkpoint was asked for
            self.registered: set[int] = set()
            self.keep = keep  # the resumed-from file: sample-factory loads it, it is registered already
            self.ending = False
            self.failure: str | None = None
            self.episodes: dict[str, list[float]] = {}
            self.last_report = (time.perf_counter(), start_step)
            self.timer = Timer(runner.event_loop, WATCH_EVERY)
            self.timer.timeout.connect(self.watch)

        # -- AlgoObserver
        def on_connect_components(self, runner) -> None:
            for learner in runner.learners.values():
                learner.saved_model.connect(self.on_saved)

        # -- slots and message handlers
        def on_env_steps(self, runner, msg: dict, policy_id) -> None:
            from sample_factory.algo.utils.misc import LEARNER_ENV_STEPS

            steps = int(msg[LEARNER_ENV_STEPS])
            self.log.step = max(self.log.step, steps)
            if self.ending:
                return
            if steps >= self.total:
                self.end()
            elif steps // self.every > self.asked // self.every:
                self.asked = steps
                runner.save_periodic.emit()

        def on_episode(self, runner, msg: dict, policy_id) -> None:
            from sample_factory.algo.utils.misc import EPISODIC

            stats = msg[EPISODIC]
            values = {"train/episode_reward": stats.get("reward"), "train/episode_length": stats.get("len")}
            for key, value in (stats.get("episode_extra_stats") or {}).items():
                values[f"train/{key}"] = value
            if stats.get("true_objective") is not None:  # the unshaped reward, as sample-factory names it
                values["train/true_reward"] = stats["true_objective"]
            for key, value in values.items():
                number = _number(value)
                if number is not None:
                    self.episodes.setdefault(key, []).append(number)

        def on_train_stats(self, runner, msg: dict, policy_id) -> None:
            from sample_factory.algo.utils.misc import LEARNER_ENV_STEPS, TRAIN_STATS

            values = {f"loss/{k}": _number(v) for k, v in msg[TRAIN_STATS].items()}
            self.report(int(msg.get(LEARNER_ENV_STEPS, self.log.step)), values)

        def report(self, steps: int, values: dict) -> None:
            now = time.perf_counter()
            then, before = self.last_report
            if steps > before and now > then:
                values["train/steps_per_s"] = (steps - before) / (now - then)
                values["train/frames_per_s"] = values["train/steps_per_s"] * self.frame_skip  # tics simulated
            for key, numbers in self.episodes.items():
                values[key] = float(np.mean(numbers))
            if self.episodes:
                values["train/episodes"] = len(next(iter(self.episodes.values())))
            self.episodes = {}
            self.last_report = (now, steps)
            self.log.metrics(steps, {k: v for k, v in values.items() if v is not None})

        def on_saved(self, policy_id=None) -> None:
            self.collect()

        def watch(self) -> None:
            if self.log.stop_requested and not self.ending:
                self.end()
            # A component process that died (an exception, the OOM killer) never reports that it
            # stopped, and the runner would wait for it forever: end the event loop instead.
            processes = list(self.runner.processes) + list(getattr(self.runner.sampler, "processes", []))
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead and self.failure is None:
                self.failure = (f"sample-factory's {dead[0].name} process died (exit code {dead[0].exitcode}); "
                                "see worker.log")
                self.runner.event_loop.stop()

        def end(self) -> None:
            self.ending = True
            self.runner._stop_training()  # saves a final checkpoint, then stops every component

        # -- files
        def collect(self) -> None:
            """Move every checkpoint the learner finished writing into the run's checkpoints/, in step order."""
            found = []
            for path in self.folder.glob("checkpoint_*.pth"):
                match = SF_CHECKPOINT.search(path.name)
                if match and path.name not in self.keep:  # checkpoint_temp is still being written
                    found.append((int(match.group(2)), path))
            for step, path in sorted(found):
                if step in self.registered:
                    path.unlink(missing_ok=True)  # the same state saved twice (the final save and the learner's own at stop)
                    continue
                self.log.checkpoint(step, lambda tmp, src=path: os.replace(src, tmp))
                self.registered.add(step)

    return Hooks


def _stop_children(timeout: float = 10.0) -> None:
    """sample-factory's processes are not daemonic: one left behind by an interrupted run would keep
    the worker from exiting. End those this process started (and only those)."""
    children = multiprocessing.active_children()
    deadline = time.time() + timeout
    for child in children:
        child.join(timeout=max(0.1, deadline - time.time()))
    for child in children:
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
        if child.is_alive():
            child.kill()


# ----------------------------------------------------------------------------- the backend


class SampleFactoryBackend:
    name = "sample-factory"

    def train(self, run: RunConfig, log: RunLog) -> None:
        from sample_factory.algo.utils.misc import EPISODIC, LEARNER_ENV_STEPS, TRAIN_STATS, ExperimentStatus
        from sample_factory.cfg.arguments import maybe_load_from_checkpoint

        from neurorl_cli.engines.sample_factory import glue as sf_glue

        config = run.config
        device = resolve_device(run.device)
        train_dir = Path(run.run_dir) / TRAIN_DIR
        folder = _checkpoint_dir(train_dir)
        # Files left by an attempt that died before announcing them are not ours to resume from.
        if folder.is_dir():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        start_step, keep = 0, set()
        if run.resume_from:
            saved = torch.load(run.resume_from, map_location="cpu", weights_only=True)
            start_step = int(saved["env_steps"])
            name = f"checkpoint_{int(saved['train_step']):09d}_{start_step}.pth"
            shutil.copyfile(run.resume_from, folder / name)
            keep.add(name)

        sf_glue.register(config, run.seed)
        cfg = sf_config(config, train_dir, device, run.seed, {
            "restart_behavior": "resume",
            # A backstop only: the hooks end training at the budget first (sample-factory's own test
            # sees the learner's step count one iteration late).
            "train_for_env_steps": run.steps,
        })
        # What sample-factory's make_runner does for a resumed parallel run, with our runner class.
        runner = sf_glue.Runner(maybe_load_from_checkpoint(cfg))
        hooks = _hooks_class()(runner, log, run, train_dir, start_step, keep)
        if run.resume_from:
            hooks.registered.add(start_step)  # the previous attempt registered it
        runner.register_observer(hooks)
        # Appended (not registered: sample-factory's register_* replaces its own handlers).
        runner.policy_msg_handlers[LEARNER_ENV_STEPS].append(hooks.on_env_steps)
        runner.policy_msg_handlers[EPISODIC].append(hooks.on_episode)
        runner.policy_msg_handlers[TRAIN_STATS].append(hooks.on_train_stats)

        log.started(device=device, versions=package_versions(VERSIONED))
        try:
            status = runner.init()
            if status != ExperimentStatus.SUCCESS:
                raise RuntimeError("sample-factory refused the configuration (its reasons are in worker.log)")
            status = runner.run()
        finally:
            _stop_children()
        if hooks.failure:
            raise RuntimeError(hooks.failure)
        hooks.collect()  # the learner's own save at stop announces nothing
        for name in keep:  # the copy of the checkpoint this attempt resumed from (registered already)
            (folder / name).unlink(missing_ok=True)
        if hooks.episodes:
            hooks.report(log.step, {})
        main_loop = float(runner.timing.get("main_loop", 0.0))
        total = runner.total_env_steps_since_resume or 0
        # sample-factory's own closing throughput figure (its "Collected ..., FPS" line), in agent steps.
        log.note("sample_factory_summary", env_steps=int(log.step), steps_since_resume=int(total),
                 main_loop_s=float(main_loop), steps_per_s=float(total / main_loop) if main_loop else None)
        if log.stop_requested:
            return  # cancelled, with the final checkpoint when the learner had started
        if status != ExperimentStatus.SUCCESS:
            raise RuntimeError(f"sample-factory stopped with status {status} (see worker.log)")
        if max(hooks.registered, default=0) < run.steps:
            raise RuntimeError(f"sample-factory stopped at step {log.step} of {run.steps} without a final checkpoint")

    # -- trained agents
    def load_policy(self, config: dict, checkpoint: Path, device: str = "cpu") -> SFPolicy:
        from sample_factory.model.actor_critic import create_actor_critic

        from neurorl_cli.engines.sample_factory import glue as sf_glue

        device = resolve_device(device)
        with sf_glue.quiet():
            sf_glue.register_encoder(config)
            cfg = sf_config(config, Path(checkpoint).parent, device, 0)
            obs_space, action_space = spaces(config)
            actor_critic = create_actor_critic(cfg, obs_space, action_space)
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        actor_critic.load_state_dict(saved["model"])
        actor_critic.model_to_device(torch.device(device))
        actor_critic.eval()
        return SFPolicy(actor_critic, cfg, device)

    def record(self, config: dict, checkpoint: Path, steps: int, frame_skip: int = 1, seed: int = 0,
               device: str = "cpu") -> dict[str, np.ndarray]:
        """The agent acting for `steps` steps (episodes following one another) at `frame_skip`
        (1: it acts on every frame, the analysis setting): what it saw and did, and its activity.

        Keys: frames (T, H, W, 3) uint8 observations, fc (T, hidden) encoder output, rnn
        (T, hidden) core output, value (T,), actions (T, 2), health (T,) HEALTH after each action,
        episode (T,) the episode each step belongs to."""
        policy = self.load_policy(config, checkpoint, device)
        keys = ("frames", "fc", "rnn", "value", "actions", "health", "episode")
        out: dict[str, list] = {key: [] for key in keys}
        from neurorl_cli.families.doom.env import play

        for step in play(policy, config["task"], seed, {"frame_skip": frame_skip}):
            out["frames"].append(step["obs"])
            for key in ("fc", "rnn", "value"):
                out[key].append(step["activity"][key][0])
            out["actions"].append(step["action"])
            out["health"].append(step["info"].get("health", np.nan))
            out["episode"].append(step["episode"])
            if len(out["frames"]) >= steps:
                break
        arrays = {key: np.asarray(value) for key, value in out.items()}
        arrays["frames"] = arrays["frames"].astype(np.uint8)
        arrays["health"] = arrays["health"].astype(np.float32)
        return arrays


class SFPolicy:
    """sample-factory's actor-critic acting on a batch of Doom observations, GRU state carried.

    `act` takes the environment's images (N, H, W, 3) uint8 and returns actions (N, 2):
    (turn, move), each 0 noop / 1 left or forward / 2 right or backward."""

    action_format = "tuple"  # one discrete choice per button group, as sample-factory's Tuple space

    def __init__(self, actor_critic, cfg, device: str):
        from sample_factory.model.model_utils import get_rnn_size

        self.actor_critic, self.cfg = actor_critic, cfg
        self.device = torch.device(device)
        self.rnn_size = get_rnn_size(cfg)
        self._activity: dict[str, np.ndarray] = {}
        self.reset(1)

    def reset(self, n_envs: int) -> None:
        self.rnn_states = torch.zeros(n_envs, self.rnn_size, device=self.device)
        self._activity = {}

    def episode_started(self, mask) -> None:
        mask = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device)
        self.rnn_states[mask] = 0.0

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True) -> np.ndarray:
        from sample_factory.algo.utils.action_distributions import argmax_actions

        images = torch.as_tensor(np.asarray(obs), device=self.device)
        if images.ndim == 3:
            images = images[None]
        n = images.shape[0]
        if self.rnn_states.shape[0] != n:
            self.reset(n)
        normalized = self.actor_critic.normalize_obs({"obs": images.permute(0, 3, 1, 2)})
        fc = self.actor_critic.forward_head(normalized)
        core, self.rnn_states = self.actor_critic.forward_core(fc, self.rnn_states)
        out = self.actor_critic.forward_tail(core, values_only=False, sample_actions=not deterministic)
        if deterministic:
            # Per component (sample-factory's own Tuple argmax concatenates a batch into one row).
            distribution = self.actor_critic.action_distribution()
            actions = torch.stack([argmax_actions(d) for d in distribution.distributions], dim=1)
        else:
            actions = out["actions"].reshape(n, -1)
        self._activity = {"fc": fc.cpu().numpy().copy(), "rnn": core.cpu().numpy().copy(),
                          "value": out["values"].reshape(n).cpu().numpy().copy()}
        return actions.long().cpu().numpy()

    def activity(self) -> dict[str, np.ndarray]:
        return dict(self._activity)
