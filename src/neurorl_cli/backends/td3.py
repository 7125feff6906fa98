"""Recurrent TD3 on the firefly task (the modularity study's trainer), batched in torch.

Trials are collected `trials_per_batch` at a time from the batched environment; each trial is
stored whole. Replay draws `batch_size` trajectories of one length (a length drawn in
proportion to how many stored trajectories have it), so batches are time-major without
padding. Per update, with next observations the observations shifted by one (zero at the end)
and the target networks warmed on the first step:

    a'  = smooth(actor'(s_{t+1}))            noise keeps stop / move components on their side of 0.1
    y_t = r_t + (1 - done_t) gamma min(Q1', Q2')(s_{t+1}, a')
    L_Q = MSE(Q1, y) + MSE(Q2, y);  every `policy_delay` updates: L_pi = -mean Q1(s, pi(s)), soft targets

Critic updates run once per `replay_period` environment steps collected. Training moves
through the reference's phases: I (exploration 0.8, no observation noise) until the rewarded
fraction of the last 100 trials passes 0.2; II (exploration 0.5, observation noise on, replay
and trial count reset, mirrored trajectories stored too); III (exploration 0.4, learning
rate 5e-5) once a validation reward fraction passes 0.8. The budget counts phase II+ trials.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..catalog import budget_total
from ..runlog import RunLog
from .base import RunConfig, package_versions, resolve_device

VERSIONED = ["neurorl-cli", "torch", "numpy"]
STOP = 0.1  # |a| below this on both components is a stop


class Hyper(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str = "Actor3"
    critic: str = "Critic5"
    gamma: float = Field(0.97, ge=0, le=1)
    tau: float = Field(0.005, gt=0, le=1)
    policy_delay: int = Field(2, gt=0)
    target_noise: float = Field(0.05, ge=0)
    target_noise_clip: float = Field(0.1, ge=0)
    learning_rate: float = Field(3e-4, gt=0)
    late_learning_rate: float = Field(5e-5, gt=0)  # phase III
    adam_eps: float = Field(1.5e-4, gt=0)
    batch_size: int = Field(16, gt=0)  # whole trajectories per update
    buffer_trajectories: int = Field(100_000, gt=0)
    replay_period: int = Field(4, gt=0)  # environment steps per critic update
    warmup_trials: int = Field(800, ge=0)  # stored trials before updates start
    exploration: list[float] = Field(default_factory=lambda: [0.8, 0.5, 0.4])  # per phase
    phase2_rewarded: float = Field(0.2, ge=0, le=1)  # rewarded fraction of the last 100 trials
    phase3_reward_fraction: float = Field(0.8, ge=0, le=1)  # validation reward fraction
    phase1_max_trials: int = Field(50_000, gt=0)  # no success by then: the run fails
    validation_trials: int = Field(300, gt=0)
    trials_per_batch: int = Field(16, gt=0)  # trials collected side by side

    @field_validator("actor", "critic")
    @classmethod
    def _known(cls, name: str, info):
        from ..nets.firefly import ACTORS, CRITICS

        known = ACTORS if info.field_name == "actor" else CRITICS
        if name not in known:
            raise ValueError(f"unknown {info.field_name} {name!r}; known: {', '.join(known)}")
        return name


# -- replay ------------------------------------------------------------------------------------


class TrajectoryReplay:
    """Whole trajectories, grouped by length; the oldest go first when full."""

    def __init__(self, capacity: int, generator: torch.Generator):
        self.capacity = capacity
        self.order: deque[tuple[int, int]] = deque()  # (length, key) in arrival order
        self.by_length: dict[int, dict[int, dict[str, torch.Tensor]]] = {}
        self.generator = generator
        self._next = 0

    def __len__(self) -> int:
        return len(self.order)

    def add(self, trajectory: dict[str, torch.Tensor]) -> None:
        length = trajectory["obs"].shape[0]
        self.by_length.setdefault(length, {})[self._next] = trajectory
        self.order.append((length, self._next))
        self._next += 1
        while len(self.order) > self.capacity:
            old_length, key = self.order.popleft()
            del self.by_length[old_length][key]
            if not self.by_length[old_length]:
                del self.by_length[old_length]

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        """`batch` trajectories of one length, stacked time-major (T, B, ...)."""
        pick = int(torch.randint(len(self.order), (1,), generator=self.generator))
        length = self.order[pick][0]
        pool = list(self.by_length[length].values())
        index = torch.randint(len(pool), (batch,), generator=self.generator).tolist()
        return {k: torch.stack([pool[i][k] for i in index], dim=1) for k in pool[0]}


# -- acting ------------------------------------------------------------------------------------


def smooth_target(action: torch.Tensor, noise: float, clip: float, generator=None) -> torch.Tensor:
    """Target policy smoothing that keeps a stop a stop and a move a move (per component side)."""
    eps = (torch.randn(action.shape, generator=generator, device=action.device) * noise).clamp(-clip, clip)
    noisy = action + eps
    stop = (action.abs() < STOP).all(dim=-1, keepdim=True)
    low = torch.where(stop | (action.abs() <= STOP), -STOP, torch.where(action > STOP, STOP, -1.0))
    high = torch.where(stop | (action.abs() <= STOP), STOP, torch.where(action > STOP, 1.0, -STOP))
    return torch.maximum(torch.minimum(noisy, high), low)


def collect(env, actor, noise: float, generator: torch.Generator, device) -> tuple[list[dict], dict]:
    """Run one batch of trials with exploration noise: the trajectories and their outcomes."""
    obs = env.reset()
    n = obs.shape[0]
    state = None
    steps: list[dict[str, torch.Tensor]] = []
    active = torch.ones(n, dtype=torch.bool, device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    outcome: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for _ in range(env.max_steps):
            chosen, state = actor(obs[None], state)
            chosen = chosen[0]
            action = chosen
            if noise > 0:
                action = (chosen + torch.randn(chosen.shape, generator=generator, device=device) * noise).clamp(-1, 1)
            # The start threshold is judged on the policy's own action, before exploration noise.
            next_obs, reward, done, info = env.step(action, raw_action=chosen)
            steps.append({"obs": obs, "action": action, "reward": reward, "active": active.clone()})
            lengths += active.long()
            ended = done & active
            for key in ("rewarded", "distance_cm", "stopped"):
                if key in info:
                    outcome.setdefault(key, torch.zeros(n, device=device))
                    outcome[key] = torch.where(ended, info[key].float(), outcome[key])
            active = active & ~done
            obs = next_obs
            if not active.any():
                break
    trajectories = []
    for i in range(n):
        length = int(lengths[i])
        traj = {k: torch.stack([s[k][i] for s in steps[:length]]) for k in ("obs", "action", "reward")}
        done = torch.zeros(length, device=device)
        done[-1] = 1.0
        traj["done"] = done
        trajectories.append({k: v.cpu() for k, v in traj.items()})
    outcome["steps"] = lengths.float()
    return trajectories, outcome


# -- learning ----------------------------------------------------------------------------------


class TD3:
    def __init__(self, hyper: Hyper, obs_dim: int, action_dim: int, device):
        from ..nets.firefly import make_actor, make_critic

        self.hyper, self.device = hyper, device
        self.actor = make_actor(hyper.actor, obs_dim, action_dim).to(device)
        self.critic = make_critic(hyper.critic, obs_dim, action_dim).to(device)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=hyper.learning_rate, eps=hyper.adam_eps)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=hyper.learning_rate, eps=hyper.adam_eps)
        self.updates = 0

    def set_learning_rate(self, lr: float) -> None:
        for optim in (self.actor_optim, self.critic_optim):
            for group in optim.param_groups:
                group["lr"] = lr

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, float]:
        h = self.hyper
        obs, act = batch["obs"].to(self.device), batch["action"].to(self.device)
        rew, done = batch["reward"].to(self.device), batch["done"].to(self.device)
        next_obs = torch.cat([obs[1:], torch.zeros_like(obs[:1])])
        with torch.no_grad():
            _, actor_state = self.actor_target(obs[:1])
            next_act = smooth_target(self.actor_target(next_obs, actor_state)[0], h.target_noise, h.target_noise_clip, generator)
            _, _, critic_state = self.critic_target(obs[:1], act[:1])
            q1_next, q2_next, _ = self.critic_target(next_obs, next_act, critic_state)
            y = rew + (1 - done) * h.gamma * torch.minimum(q1_next, q2_next)
        q1, q2, _ = self.critic(obs, act)
        critic_loss = torch.nn.functional.mse_loss(q1, y) + torch.nn.functional.mse_loss(q2, y)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()
        out = {"loss/critic": critic_loss.item(), "value/q1": q1.mean().item()}
        self.updates += 1
        if self.updates % h.policy_delay == 0:
            actor_loss = -self.critic.q1(obs, self.actor(obs)[0])[0].mean()
            self.actor_optim.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optim.step()
            for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                with torch.no_grad():
                    for p, tp in zip(net.parameters(), target.parameters()):
                        tp.lerp_(p, h.tau)
            out["loss/actor"] = actor_loss.item()
        return out

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in
                ("actor", "critic", "actor_target", "critic_target", "actor_optim", "critic_optim")} | {"updates": self.updates}

    def load_state_dict(self, saved: dict) -> None:
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_optim", "critic_optim"):
            getattr(self, name).load_state_dict(saved[name])
        self.updates = saved["updates"]


def mirrored(trajectory: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The trajectory reflected across the y axis (angular observation and action and the
    target's x change sign): the same trial, turning the other way."""
    from ..envs.firefly import Firefly

    return {**trajectory, "obs": Firefly.mirror_obs(trajectory["obs"]), "action": Firefly.mirror_action(trajectory["action"])}


def make_env(config: dict, n: int, seed: int, device, **overrides):
    from ..envs.firefly import Firefly

    return Firefly(n=n, seed=seed, device=device, **{**config["task"].get("env", {}), **overrides})


class TD3Backend:
    name = "native/td3"

    def train(self, run: RunConfig, log: RunLog) -> None:
        config = run.config
        hyper = Hyper(**config["model"]["hyper"])
        if run.threads:
            torch.set_num_threads(run.threads)
        device = torch.device(resolve_device(run.device))
        torch.manual_seed(run.seed)
        generator = torch.Generator().manual_seed(run.seed + 1)
        unit, total = budget_total(config)
        every = run.checkpoint_every
        agent = TD3(hyper, 6, 2, device)
        counts = {"trials": 0, "steps": 0, "phase": 1, "phase1_trials": 0}
        replay = TrajectoryReplay(hyper.buffer_trajectories, generator)
        recent: deque[float] = deque(maxlen=100)
        if run.resume_from:
            saved = torch.load(run.resume_from, map_location=device, weights_only=False)
            agent.load_state_dict(saved["agent"])
            counts = saved["counts"]
            torch.set_rng_state(saved["rng"])
            generator.set_state(saved["generator"])
            for trajectory in saved.get("replay", []):
                replay.add(trajectory)
        log.started(device=str(device), versions=package_versions(VERSIONED))
        if counts["phase"] >= 3:
            agent.set_learning_rate(hyper.late_learning_rate)
        env = make_env(config, hyper.trials_per_batch, run.seed * 1_000 + 1 + 7919 * (run.attempt - 1), device,
                       **({"observation_noise": 0.0} if counts["phase"] == 1 else {}))

        def save(step: int) -> None:
            state = {"agent": agent.state_dict(), "counts": dict(counts), "rng": torch.get_rng_state(),
                     "generator": generator.get_state(), "hyper": hyper.model_dump(), "replay": list(_replay_tail(replay))}
            log.checkpoint(step, lambda tmp: torch.save(state, tmp))

        window: dict[str, list[float]] = {}
        started = time.perf_counter()
        pending_updates = 0.0
        while counts[unit] < total:
            before = counts[unit]
            noise = hyper.exploration[min(counts["phase"], len(hyper.exploration)) - 1]
            trajectories, outcome = collect(env, agent.actor, noise, generator, device)
            n_steps = int(outcome["steps"].sum())
            for trajectory in trajectories:
                replay.add(trajectory)
                if counts["phase"] >= 2:
                    replay.add(mirrored(trajectory))
            rewarded = outcome.get("rewarded", torch.zeros(len(trajectories))).tolist()
            recent.extend(rewarded)
            if counts["phase"] == 1:
                counts["phase1_trials"] += len(trajectories)
            else:
                counts["trials"] += len(trajectories)
                counts["steps"] += n_steps
            for key, value in (("perf/rewarded_fraction", float(np.mean(rewarded))),
                               ("perf/reward_rate", float(np.sum(rewarded)) / max(n_steps * 0.1, 1e-9)),
                               ("perf/distance_cm", float(outcome.get("distance_cm", torch.zeros(1)).mean()))):
                window.setdefault(key, []).append(value)
            if len(replay) >= hyper.warmup_trials:
                pending_updates += n_steps / hyper.replay_period
                while pending_updates >= 1:
                    for key, value in agent.update(replay.sample(hyper.batch_size), generator).items():
                        window.setdefault(key, []).append(value)
                    pending_updates -= 1
            # phase switches, as events in the run log and a metric
            if counts["phase"] == 1 and len(recent) == recent.maxlen and np.mean(recent) >= hyper.phase2_rewarded:
                counts["phase"] = 2
                replay = TrajectoryReplay(hyper.buffer_trajectories, generator)
                env = make_env(config, hyper.trials_per_batch, run.seed * 1_000 + 2, device)
                log.note("phase", phase=2, after_phase1_trials=counts["phase1_trials"])
            elif counts["phase"] == 1 and counts["phase1_trials"] >= hyper.phase1_max_trials:
                raise RuntimeError(f"no phase switch after {counts['phase1_trials']} phase-I trials (rewarded fraction of the last 100: {np.mean(recent):.2f})")
            crossed = counts[unit] // every > before // every or counts[unit] >= total
            if counts["phase"] >= 2 and crossed:
                validation = validate(agent.actor, config, hyper.validation_trials, device)
                window.setdefault("val/reward_fraction", []).append(validation["reward_fraction"])
                window.setdefault("val/reward_rate", []).append(validation["reward_rate"])
                if counts["phase"] == 2 and validation["reward_fraction"] > hyper.phase3_reward_fraction:
                    counts["phase"] = 3
                    agent.set_learning_rate(hyper.late_learning_rate)
                    log.note("phase", phase=3, trials=counts["trials"])
            log.step = counts[unit]
            if crossed or counts["phase"] == 1 and counts["phase1_trials"] % 500 < len(trajectories):
                elapsed = max(time.perf_counter() - started, 1e-9)
                values = {k: float(np.mean(v)) for k, v in window.items()}
                values.update({"train/phase": counts["phase"], "train/trials_per_s": (counts["trials"] + counts["phase1_trials"]) / elapsed})
                log.metrics(counts[unit], values)
                window = {}
            if crossed and counts["phase"] >= 2:
                save(counts[unit])
            if log.stop_requested:
                save(counts[unit])
                return

    # Trained agents act and are evaluated on the CPU, where the evaluation environments are.
    def load_policy(self, config: dict, checkpoint: Path, device: str = "cpu"):
        return FireflyPolicy(_load_nets(checkpoint)[1])

    def evaluate(self, config: dict, checkpoint: Path, protocol: dict, device: str = "cpu"):
        hyper, actor, critic = _load_nets(checkpoint)
        return evaluate_actor(actor, config, protocol, critic=critic, gamma=hyper.gamma)


def _load_nets(checkpoint: Path):
    """(hyper, actor, critic) of a checkpoint, read once."""
    from ..nets.firefly import make_actor, make_critic

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hyper = Hyper(**saved["hyper"])
    actor, critic = make_actor(hyper.actor, 6, 2), make_critic(hyper.critic, 6, 2)
    actor.load_state_dict(saved["agent"]["actor"])
    critic.load_state_dict(saved["agent"]["critic"])
    return hyper, actor.eval(), critic.eval()


def _replay_tail(replay: TrajectoryReplay, keep: int = 2000):
    """The newest stored trajectories, kept in checkpoints so a resumed run does not start empty."""
    for length, key in list(replay.order)[-keep:]:
        yield replay.by_length[length][key]


def validate(actor, config: dict, trials: int, device) -> dict[str, float]:
    """Noise-free validation during training (gain 1), as the reference's in-training check."""
    env = make_env(config, trials, 12345, device, process_noise=0.0, observation_noise=0.0)
    return run_trials(actor, env)[0]


def run_trials(actor, env, critic=None, gamma: float = 0.97) -> tuple[dict[str, float], list[dict]]:
    """Every trial of one batch with the deterministic actor: metrics and one row per trial."""
    obs = env.reset()
    n = obs.shape[0]
    state, critic_state = None, None
    active = torch.ones(n, dtype=torch.bool)
    steps = torch.zeros(n)
    rows: list[dict] = [{} for _ in range(n)]
    td, values = torch.zeros(n), torch.zeros(n)
    prev_q = None
    with torch.no_grad():
        for t in range(env.max_steps):
            action, state = actor(obs[None], state)
            action = action[0]
            if critic is not None:
                q1, _, critic_state = critic(obs[None], action[None], critic_state)
                q = q1[0]
                values += torch.where(active, q, 0)
                if prev_q is not None:
                    td += torch.where(active, prev_r + gamma * q - prev_q, 0)
                prev_q = q
            obs, reward, done, info = env.step(action)
            if critic is not None:
                prev_r = reward
                ended = done & active
                td += torch.where(ended, reward - prev_q, 0)  # the last step bootstraps with 0
            steps += active.float()
            for i in torch.nonzero(done & active).flatten().tolist():
                rows[i] = {"rewarded": float(info["rewarded"][i]), "reward": float(reward[i]),
                           "distance_cm": float(info["distance_cm"][i]), "overshoot_cm": float(info["overshoot_cm"][i]),
                           "steps": int(steps[i]), "stopped": float(info["stopped"][i])}
            active = active & ~done
            if not active.any():
                break
    rewarded = np.array([r["rewarded"] for r in rows])
    total_time = float(steps.sum()) * 0.1
    metrics = {
        "reward_fraction": float(rewarded.mean()),
        "reward_rate": float(rewarded.sum() / max(total_time, 1e-9)),  # rewarded trials per second
        "distance_cm": float(np.mean([r["distance_cm"] for r in rows])),
        "overshoot_cm": float(np.mean([r["overshoot_cm"] for r in rows])),
        "mean_reward": float(np.mean([r["reward"] for r in rows])),
        "trials": n,
    }
    if critic is not None:
        metrics["td_error"] = float((td / steps).mean())
        metrics["value_estimate"] = float((values / steps).mean())
    return metrics, rows


def evaluate_actor(actor, config: dict, protocol: dict, critic=None, gamma: float = 0.97):
    env = make_env(config, protocol["trials"], protocol["seed"], "cpu", **(protocol.get("kwargs") or {}))
    metrics, rows = run_trials(actor, env, critic, gamma)
    trials = [{"index": i, "env": 0, "ground_truth": None, "choice": None, "correct": r["rewarded"],
               "reward": r["reward"], "reaction_time": None, "steps": r["steps"],
               "conditions": {k: r[k] for k in ("distance_cm", "overshoot_cm", "stopped")}} for i, r in enumerate(rows)]
    return metrics, trials


class FireflyPolicy:
    def __init__(self, actor):
        self.actor = actor
        self.reset(1)

    def reset(self, n_envs: int) -> None:
        self.state = None

    def episode_started(self, mask) -> None:
        self.state = None

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True):
        action, self.state = self.actor(torch.as_tensor(np.asarray(obs), dtype=torch.float32)[None], self.state)
        return action[0].numpy()

    def activity(self) -> dict[str, np.ndarray]:
        return {}
