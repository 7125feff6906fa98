"""A2C-LSTM meta-learner (Wang et al. 2018), trained on whole episodes batched as tensors.

One update: `episodes_per_update` episodes run side by side from a zero LSTM state to their
end, actions sampled from the policy. With discounted returns R_t bootstrapped with 0 at the
episode's end, the advantage R_t - V_t (GAE with lambda 1) and, per episode,

    loss = sum_t [ -log pi(a_t) (R_t - V_t) + value_coef * 0.5 (R_t - V_t)^2 - entropy_coef * H_t ]

averaged over the batch; RMSProp steps once. Batching hundreds of episodes per update is
what makes this fast and stable: each update sees many object pairs (Harlow) or reward
reversals (two-step) at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from neurorl_cli.specs import budget_total
from neurorl_cli.runlog import RunLog
from neurorl_cli.engines.base import load_checkpoint, package_versions, resolve_device
from neurorl_cli.interfaces import RunConfig

VERSIONED = ["neurorl-cli", "torch", "numpy", "neurogym", "gymnasium"]
MAX_POSITIONS = 10  # accuracy is logged per trial position for episodes this short (Harlow: 6)


class Hyper(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    hidden_size: int = Field(48, gt=0)  # LSTM units
    gamma: float = Field(0.9, ge=0, le=1)  # discount per step
    value_coef: float = Field(0.05, ge=0)
    entropy_coef: float = Field(0.05, ge=0)
    learning_rate: float = Field(1e-3, gt=0)  # RMSProp
    rmsprop_alpha: float = Field(0.99, gt=0, lt=1)  # RMSProp's decay of the squared-gradient average
    rmsprop_eps: float = Field(1e-5, gt=0)
    episodes_per_update: int = Field(512, gt=0)  # episodes unrolled side by side per update
    max_grad_norm: float = Field(999.0, gt=0)  # the reference's clip (999: effectively none)
    log_every_episodes: int = Field(2048, gt=0)  # training metrics are averaged over this many


def build_env(config: dict, n: int, seed: int, device: str, extra_kwargs: dict | None = None):
    """The task's batched environment, from its family."""
    from neurorl_cli.plugins import family_of

    return family_of(config).batched_env(config["task"], n, seed, device, extra_kwargs)


def unroll(net, env, gamma: float):
    """One batch of whole episodes: (per-step tensors [T, n], trial outcomes)."""
    obs = env.reset()
    state = net.initial_state(env.n, obs.device)
    alive = torch.ones(env.n, dtype=torch.bool, device=obs.device)
    logps, values, entropies, rewards, masks = [], [], [], [], []
    correct, positions = [], []
    for _ in range(env.episode_steps):
        logits, value, state = net(obs, state)
        dist = torch.distributions.Categorical(logits=logits)
        action = dist.sample()
        obs, reward, done, info = env.step(action)
        mask = alive.float()
        logps.append(dist.log_prob(action) * mask)
        values.append(value * mask)
        entropies.append(dist.entropy() * mask)
        rewards.append(reward * mask)
        masks.append(mask)
        ended = info["trial_end"] & alive
        if ended.any():
            correct.append(info["correct"][ended])
            if "position" in info:
                positions.append(info["position"][ended])
        alive = alive & ~done
        if not alive.any():
            break
    rewards_t = torch.stack(rewards)
    returns = torch.zeros_like(rewards_t)
    running = torch.zeros(env.n, device=obs.device)
    for t in range(len(rewards) - 1, -1, -1):  # R_t = r_t + gamma R_{t+1}; rewards are 0 after an episode ends
        running = rewards_t[t] + gamma * running
        returns[t] = running
    steps = {"logp": torch.stack(logps), "value": torch.stack(values), "entropy": torch.stack(entropies),
             "reward": rewards_t, "return": returns, "mask": torch.stack(masks)}
    trials = {"correct": torch.cat(correct) if correct else torch.zeros(0),
              "position": torch.cat(positions) if positions else None}
    return steps, trials


def a2c_loss(steps: dict, hyper: Hyper) -> tuple[torch.Tensor, dict[str, float]]:
    mask = steps["mask"]
    advantage = (steps["return"] - steps["value"]).detach() * mask
    n = mask.shape[1]
    policy = -(steps["logp"] * advantage).sum() / n
    value = 0.5 * ((steps["return"] - steps["value"]) ** 2 * mask).sum() / n
    entropy = steps["entropy"].sum() / n
    loss = policy + hyper.value_coef * value - hyper.entropy_coef * entropy
    return loss, {"loss/policy": policy.item(), "loss/value": value.item(), "loss/entropy": entropy.item()}


class Window:
    """Training metrics averaged since the last log line."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.episodes = 0
        self.started = time.perf_counter()
        self.steps = 0

    def add(self, key: str, total: float, count: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + total
        self.counts[key] = self.counts.get(key, 0) + count

    def values(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        out = {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}
        out["train/steps_per_s"] = self.steps / elapsed
        out["train/episodes_per_s"] = self.episodes / elapsed
        return out


class MetaA2CBackend:
    name = "native/meta-a2c-lstm"

    def budget_grain(self, config: dict) -> int | None:
        """Budget units per update: `episodes_per_update` whole episodes (our tasks' episodes have
        a fixed length; NeuroGym's vary)."""
        unit, _ = budget_total(config)
        env = build_env(config, 1, 0, "cpu")
        if not env.fixed_length:
            return None
        per_episode = env.trials_per_episode if unit == "trials" else env.episode_steps
        return Hyper(**config["model"]["hyper"]).episodes_per_update * per_episode

    def train(self, run: RunConfig, log: RunLog) -> None:
        from neurorl_cli.nets.meta_lstm import MetaLSTM

        config = run.config
        hyper = Hyper(**config["model"]["hyper"])
        device = resolve_device(run.device)
        torch.manual_seed(run.seed)
        # A resumed attempt restores the batched tasks' random stream from its checkpoint;
        # NeuroGym's lockstep envs cannot be, so they draw fresh trials instead.
        env = build_env(config, hyper.episodes_per_update, seed=run.seed + 7919 * (run.attempt - 1), device=device)
        net = MetaLSTM(env.obs_dim, env.n_actions, hyper.hidden_size).to(device)
        optim = torch.optim.RMSprop(net.parameters(), lr=hyper.learning_rate, alpha=hyper.rmsprop_alpha, eps=hyper.rmsprop_eps)
        counts = {"steps": 0, "trials": 0, "episodes": 0, "updates": 0}
        if run.resume_from:
            # Read onto the CPU: the random states must stay there, and load_state_dict moves the rest.
            saved = load_checkpoint(run.resume_from)
            net.load_state_dict(saved["net"])
            optim.load_state_dict(saved["optim"])
            counts = saved["counts"]
            torch.set_rng_state(saved["rng"])  # the same stream of actions and episodes as one long run
            if hasattr(env, "generator"):
                env.generator.set_state(saved["env_rng"].to(env.generator.get_state().device))
        log.started(device=device, versions=package_versions(VERSIONED))
        unit, total = budget_total(config)
        every = run.checkpoint_every

        def save(step: int) -> None:
            state = {
                "net": net.state_dict(), "optim": optim.state_dict(), "counts": dict(counts),
                "rng": torch.get_rng_state(), "env_rng": env.generator.get_state() if hasattr(env, "generator") else None,
                "obs_dim": env.obs_dim, "n_actions": env.n_actions, "hyper": hyper.model_dump(),
            }
            log.checkpoint(step, lambda tmp: torch.save(state, tmp))

        window = Window()
        while counts[unit] < total:
            before = counts[unit]
            steps, trials = unroll(net, env, hyper.gamma)
            loss, losses = a2c_loss(steps, hyper)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), hyper.max_grad_norm)
            optim.step()

            n_steps = int(steps["mask"].sum().item())
            counts["steps"] += n_steps
            counts["trials"] += int(trials["correct"].numel())
            counts["episodes"] += env.n
            counts["updates"] += 1
            window.steps += n_steps
            window.episodes += env.n
            window.add("train/episode_reward", steps["reward"].sum().item(), env.n)
            for key, value in {**losses, "loss/grad_norm": float(grad_norm)}.items():
                window.add(key, value, 1)
            known = trials["correct"][~torch.isnan(trials["correct"])]
            window.add("perf/trial_performance", known.sum().item(), known.numel())
            if trials["position"] is not None and env.trials_per_episode <= MAX_POSITIONS:
                for k in range(1, env.trials_per_episode + 1):
                    hit = trials["correct"][trials["position"] == k]
                    window.add(f"perf/accuracy_trial_{k}", hit.sum().item(), hit.numel())
            log.step = counts[unit]
            if window.episodes >= hyper.log_every_episodes or counts[unit] >= total:
                log.metrics(counts[unit], {**window.values(), "train/episodes": counts["episodes"], "train/trials": counts["trials"]})
                window = Window()
            if counts[unit] // every > before // every or counts[unit] >= total or log.stop_requested:
                save(counts[unit])
            if log.stop_requested:  # SIGTERM (scancel, preemption): stop with the checkpoint just saved
                return

    # -- trained agents
    def load_policy(self, config: dict, checkpoint: Path, device: str = "cpu") -> MetaPolicy:
        from neurorl_cli.nets.meta_lstm import MetaLSTM

        device = resolve_device(device)
        saved = load_checkpoint(checkpoint, device)
        net = MetaLSTM(saved["obs_dim"], saved["n_actions"], saved["hyper"]["hidden_size"]).to(device)
        net.load_state_dict(saved["net"])
        net.eval()
        return MetaPolicy(net, device)


class MetaPolicy:
    """The trained network acting on a batch of environments, LSTM state carried."""

    def __init__(self, net, device: str):
        self.net, self.device = net, torch.device(device)
        self.reset(1)

    def reset(self, n_envs: int) -> None:
        self.state = self.net.initial_state(n_envs, self.device)

    def episode_started(self, mask) -> None:
        keep = torch.as_tensor(~np.asarray(mask, dtype=bool), device=self.device).float()[:, None]
        self.state = (self.state[0] * keep, self.state[1] * keep)

    @torch.no_grad()
    def act(self, obs, deterministic: bool = True) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(self.state[0].shape[0], -1)
        logits, _, self.state = self.net(x, self.state)
        if deterministic:
            action = logits.argmax(dim=-1)
        else:
            action = torch.distributions.Categorical(logits=logits).sample()
        return action.cpu().numpy()

    def activity(self) -> dict[str, np.ndarray]:
        return {"lstm_h": self.state[0].cpu().numpy().copy(), "lstm_c": self.state[1].cpu().numpy().copy()}
