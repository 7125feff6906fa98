"""A seed group of the A2C-LSTM meta-learner: S seeds of one experiment trained in one process
as one batched computation.

Each seed is the solo trainer's run (MetaA2CBackend.train), to float rounding:

- its network is a slice of one StackedMetaLSTM (leading seed dimension); all seeds' episodes
  step together, one batched forward per time step, one backward for the summed losses;
- its optimizer state is its own slice of RMSProp's (elementwise) state on the stacked tensors,
  its gradient clipped by its own norm;
- its random streams are the solo ones: actions from a generator holding what the global torch
  stream holds after that seed's own `torch.manual_seed(seed)` and network init (the draws
  Categorical.sample makes: draw_actions), episodes from its own block of the
  batched env (BatchedEnv.split_streams, seeded as solo seeds it);
- its run log gets the same events at the same steps, and its checkpoints are solo's format, so
  either side resumes the other's.

Seeds resumed from different points end at different updates: one that ends its budget
finishes its own log and drops out of the stacks; the others go on.
"""

from __future__ import annotations

import torch

from neurorl_cli.specs import budget_total
from neurorl_cli.runlog import RunLog
from neurorl_cli.engines.base import load_checkpoint, package_versions, resolve_device
from neurorl_cli.interfaces import NotOffered, RunConfig
from neurorl_cli.engines.native.meta_a2c import (
    MAX_POSITIONS, VERSIONED, Hyper, MetaA2CBackend, Window, build_env)


class GroupMetaA2CBackend(MetaA2CBackend):
    """The meta-A2C trainer with seed groups: the engine loads this one (meta_a2c.py stays the
    solo trainer, which this module builds on)."""

    def can_group(self, config: dict) -> bool:
        """Only our own batched tasks draw through per-seed streams (NeuroGym's lockstep envs do not)."""
        from neurorl_cli.envs.batched import BatchedEnv

        probe = build_env(config, 1, 0, "cpu")
        return isinstance(probe, BatchedEnv) and probe.fixed_length

    def train_group(self, runs: list[RunConfig], logs: list[RunLog]) -> None:
        """Several seeds of one experiment as one batched computation, each through its own run
        log as `train` trains it alone (train_seed_group); NotOffered for tasks whose
        batched env has no per-seed random streams (NeuroGym's lockstep envs)."""
        train_seed_group(runs, logs)


class _Seed:
    """One seed's bookkeeping: its run, log, counts, metric window and action stream."""

    def __init__(self, run: RunConfig, log: RunLog, net, optim_state: dict | None, counts: dict, rng: torch.Tensor,
                 action_gen: torch.Generator, env_state: torch.Tensor | None):
        self.run, self.log, self.net, self.optim_state = run, log, net, optim_state
        self.counts, self.rng, self.action_gen, self.env_state = counts, rng, action_gen, env_state
        self.window = None


def _optim_slices(optim_state: dict | None, n_params: int):
    """(step, [square_avg per parameter]) from a solo optimizer state dict, or None."""
    if optim_state is None:
        return None
    state = optim_state["state"]
    if not state:
        return None
    if any(k in state[i] for i in state for k in ("momentum_buffer", "grad_avg")):
        raise NotOffered("a checkpoint with momentum or centred RMSProp state cannot be grouped")
    return float(state[0]["step"]), [state[i]["square_avg"] for i in range(n_params)]


def train_seed_group(runs: list[RunConfig], logs: list[RunLog]) -> None:
    """MetaA2CBackend.train_group: see the section's head."""
    from neurorl_cli.envs.batched import BatchedEnv
    from neurorl_cli.nets.meta_lstm import PARAM_NAMES, MetaLSTM, StackedMetaLSTM

    if len(runs) != len(logs) or not runs:
        raise ValueError("one run log per run")
    config = runs[0].config
    if any(r.config != config for r in runs):
        raise ValueError("a seed group shares one experiment config")
    hyper = Hyper(**config["model"]["hyper"])
    device = resolve_device(runs[0].device)
    n = hyper.episodes_per_update
    S = len(runs)

    # Only our own batched tasks draw through per-row streams (a one-episode probe says, before
    # S * n lockstep envs would be built); then the env of S * n episodes, split into per-seed
    # streams before it draws anything.
    probe = build_env(config, 1, 0, "cpu")
    if not isinstance(probe, BatchedEnv) or not probe.fixed_length:
        raise NotOffered(f"{config['task']['name']} has no per-seed random streams to step seeds together")
    env_seeds = [r.seed + 7919 * (r.attempt - 1) for r in runs]
    env = build_env(config, S * n, seed=env_seeds[0], device=device)
    env.split_streams(env_seeds)

    # Each seed as solo builds it: seed the global stream, init the net, take the stream's state.
    seeds: list[_Seed] = []
    for run, log in zip(runs, logs):
        torch.manual_seed(run.seed)
        net = MetaLSTM(env.obs_dim, env.n_actions, hyper.hidden_size)
        counts = {"steps": 0, "trials": 0, "episodes": 0, "updates": 0}
        optim_state, env_state = None, None
        if run.resume_from:
            saved = load_checkpoint(run.resume_from)
            net.load_state_dict(saved["net"])
            optim_state = saved["optim"]
            counts = dict(saved["counts"])
            torch.set_rng_state(saved["rng"])
            env_state = saved.get("env_rng")
        rng = torch.get_rng_state()
        action_gen = torch.Generator(device=device)
        if torch.device(device).type == "cpu":
            action_gen.set_state(rng)
        else:  # solo samples on the device from its own default stream, seeded by manual_seed
            action_gen.manual_seed(run.seed)
        seeds.append(_Seed(run, log, net, optim_state, counts, rng, action_gen, env_state))
    for s, seed in enumerate(seeds):
        if seed.env_state is not None:
            env.streams[s].set_state(seed.env_state.to(env.streams[s].get_state().device))

    stack = StackedMetaLSTM.from_nets([s.net for s in seeds], device)
    optim = _rmsprop(stack, hyper)
    for p in stack.parameters():  # seeds without saved state start from zeros, as a fresh RMSProp does
        optim.state[p] = {"step": torch.tensor(0.0), "square_avg": torch.zeros_like(p.detach())}
    for s, seed in enumerate(seeds):
        # The saved optimizer's step count (it goes on in the seed's checkpoints; RMSProp's update
        # does not read it) and squared-gradient averages, into the seed's slice.
        seed.updates_at_load, seed.optim_step0 = seed.counts["updates"], 0.0
        slices = _optim_slices(seed.optim_state, len(PARAM_NAMES))
        if slices is not None:
            seed.optim_step0 = slices[0]
            with torch.no_grad():
                for p, square_avg in zip(stack.parameters(), slices[1]):
                    optim.state[p]["square_avg"][s] = square_avg.to(p.device)

    unit, total = budget_total(config)
    every = runs[0].checkpoint_every
    for seed in seeds:
        seed.log.started(device=device, versions=package_versions(VERSIONED))
        seed.window = Window()

    def save(seed: _Seed, s: int) -> None:
        """Seed s's checkpoint, in the solo trainer's format."""
        net = MetaLSTM(env.obs_dim, env.n_actions, hyper.hidden_size)
        net.load_state_dict(stack.state_dict_of(s))
        net.to(device)
        solo_optim = torch.optim.RMSprop(net.parameters(), lr=hyper.learning_rate, alpha=hyper.rmsprop_alpha,
                                         eps=hyper.rmsprop_eps)
        if seed.optim_step0 or seed.counts["updates"] > seed.updates_at_load:
            step = seed.optim_step0 + seed.counts["updates"] - seed.updates_at_load
            for p, stacked in zip(net.parameters(), stack.parameters()):
                solo_optim.state[p] = {"step": torch.tensor(float(step)),
                                       "square_avg": optim.state[stacked]["square_avg"][s].detach().clone()}
        state = {
            "net": net.state_dict(), "optim": solo_optim.state_dict(), "counts": dict(seed.counts),
            "rng": seed.action_gen.get_state() if seed.action_gen.device.type == "cpu" else seed.rng,
            "env_rng": env.streams[s].get_state(),
            "obs_dim": env.obs_dim, "n_actions": env.n_actions, "hyper": hyper.model_dump(),
        }
        seed.log.checkpoint(seed.counts[unit], lambda tmp: torch.save(state, tmp))

    # Seeds already at their budget (resumed from their last checkpoint) end at once.
    done = [s for s, seed in enumerate(seeds) if seed.counts[unit] >= total]
    for s in done:
        seeds[s].log.finish("completed")
    seeds, stack, optim = _keep(seeds, stack, optim, env, [s for s in range(len(seeds)) if s not in done])

    while seeds:
        S = len(seeds)
        befores = [seed.counts[unit] for seed in seeds]
        steps, trials, per_seed, grad_norms = update_group(stack, optim, env, n, [seed.action_gen for seed in seeds], hyper)

        stats = _seed_stats(steps, trials, env.trials_per_episode)
        ended = []
        for s, seed in enumerate(seeds):
            counts, window, log = seed.counts, seed.window, seed.log
            n_steps = stats["steps"][s]
            counts["steps"] += n_steps
            counts["trials"] += stats["trials"][s]
            counts["episodes"] += n
            counts["updates"] += 1
            window.steps += n_steps
            window.episodes += n
            window.add("train/episode_reward", stats["reward"][s], n)
            for key, values in {**per_seed, "loss/grad_norm": grad_norms}.items():
                window.add(key, values[s], 1)
            window.add("perf/trial_performance", stats["known_correct"][s], stats["known"][s])
            if "positions" in stats and env.trials_per_episode <= MAX_POSITIONS:
                for k in range(1, env.trials_per_episode + 1):
                    window.add(f"perf/accuracy_trial_{k}", stats["pos_correct"][k - 1][s], stats["positions"][k - 1][s])
            log.step = counts[unit]
            if window.episodes >= hyper.log_every_episodes or counts[unit] >= total:
                log.metrics(counts[unit], {**window.values(), "train/episodes": counts["episodes"], "train/trials": counts["trials"]})
                seed.window = Window()
            if counts[unit] >= total:
                ended.append(s)
        # As solo: a checkpoint at each boundary, at the end, and on a stop request (the worker
        # sets it on every seed's log; any one stops the group).
        stop = any(seed.log.stop_requested for seed in seeds)
        for s, seed in enumerate(seeds):
            if seed.counts[unit] // every > befores[s] // every or seed.counts[unit] >= total or stop:
                save(seed, s)
        for s in ended:
            seeds[s].log.finish("completed")
        if stop:  # SIGTERM: every unfinished seed has just saved; the worker finishes their logs
            return
        if ended:
            seeds, stack, optim = _keep(seeds, stack, optim, env, [s for s in range(S) if s not in ended])


def _rmsprop(stack, hyper) -> torch.optim.RMSprop:
    return torch.optim.RMSprop(stack.parameters(), lr=hyper.learning_rate, alpha=hyper.rmsprop_alpha,
                               eps=hyper.rmsprop_eps)


def update_group(stack, optim, env, n: int, generators: list[torch.Generator], hyper):
    """One update of every seed in the stack: unroll n episodes each, the summed solo losses'
    backward, each seed's gradient clipped by its own norm, one RMSProp step. Returns the unroll's
    steps and trials, the per-seed losses and the per-seed gradient norms."""
    steps, trials = _unroll(stack, env, n, generators, hyper.gamma)
    loss, per_seed = _losses(steps, hyper)
    for p in stack.parameters():
        p.grad = None
    loss.backward()
    grad_norms = _clip_per_seed(stack.parameters(), hyper.max_grad_norm)
    optim.step()
    return steps, trials, per_seed, grad_norms


def _keep(seeds, stack, optim, env, keep: list[int]):
    """The group without the seeds that ended: stacks, optimizer state and env streams sliced."""
    if len(keep) == len(seeds):
        return seeds, stack, optim
    if not keep:
        return [], stack, optim
    new_stack = stack.keep(keep)
    new_optim = torch.optim.RMSprop(new_stack.parameters(), **{k: optim.param_groups[0][k] for k in ("lr", "alpha", "eps")})
    index = torch.as_tensor(keep, device=stack.parameters()[0].device)
    for old, new in zip(stack.parameters(), new_stack.parameters()):
        st = optim.state[old]
        new_optim.state[new] = {"step": st["step"].clone(), "square_avg": st["square_avg"][index].clone()}
    env.keep_streams(keep)
    return [seeds[s] for s in keep], new_stack, new_optim


def _unroll(stack, env, n: int, generators: list[torch.Generator], gamma: float):
    """All seeds' episodes of one update: per-step tensors (T, S, n) and trial events.

    Per step only the network's forward joins the autograd graph: the sampling reads its logits
    detached, and log-probabilities, entropies and masks are computed once over the whole unroll
    (T, S, n, A). The arithmetic is the per-step one; a dozen fewer graph nodes per step make an
    update about 1.15x faster at 16 seeds x 16 episodes (each op on such small tensors costs
    mostly its dispatch, in the forward and again in the backward)."""
    S = len(generators)
    obs = env.reset()
    device = obs.device
    state = stack.initial_state(n, device)
    alive = torch.ones(S, n, dtype=torch.bool, device=device)
    logits_t, values, actions, rewards, alives = [], [], [], [], []
    ends, corrects, positions = [], [], []
    step = stack.stepper()
    for _ in range(env.episode_steps):
        logits, value, state = step(obs.view(S, n, -1), state)
        # As Categorical(logits=...) does: normalised logits and their softmax. Its sample() is
        # torch.multinomial(probs, 1, True), which for one draw is argmax(probs / q) with q ~ Exp(1)
        # drawn as `empty_like(probs).exponential_(generator)`: the same q drawn per seed from its
        # stream, then one argmax for all seeds, is the same draw (tested) at an eighth of the cost.
        with torch.no_grad():
            probs = torch.softmax(logits - logits.logsumexp(dim=-1, keepdim=True), dim=-1)
        action = draw_actions(probs, generators)
        obs, reward, done, info = env.step(action.reshape(-1))
        logits_t.append(logits)
        values.append(value)
        actions.append(action)
        rewards.append(reward.view(S, n))
        alives.append(alive)
        ended = info["trial_end"].view(S, n) & alive
        if ended.any():
            ends.append(ended)
            corrects.append(info["correct"].view(S, n))
            if "position" in info:
                positions.append(info["position"].view(S, n))
        alive = alive & ~done.view(S, n)
        if not alive.any():
            break
    mask = torch.stack(alives).float()
    logits = torch.stack(logits_t)
    logits = logits - logits.logsumexp(dim=-1, keepdim=True)
    min_real = torch.finfo(logits.dtype).min
    entropy = -(torch.clamp(logits, min=min_real) * torch.softmax(logits, dim=-1)).sum(-1)
    logp = logits.gather(-1, torch.stack(actions).unsqueeze(-1)).squeeze(-1)
    rewards_t = torch.stack(rewards) * mask
    returns = torch.zeros_like(rewards_t)
    running = torch.zeros(S, n, device=device)
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards_t[t] + gamma * running
        returns[t] = running
    steps = {"logp": logp * mask, "value": torch.stack(values) * mask, "entropy": entropy * mask,
             "reward": rewards_t, "return": returns, "mask": mask}
    trials = {"end": torch.stack(ends) if ends else None, "correct": torch.stack(corrects) if corrects else None,
              "position": torch.stack(positions) if positions and len(positions) == len(ends) else None}
    return steps, trials


def draw_actions(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """(S, n, A) probabilities -> (S, n) actions, seed s's drawn from generators[s] exactly as
    `torch.multinomial(probs[s], 1, True, generator=...)` (Categorical.sample) draws them."""
    q = torch.empty_like(probs)
    for s, g in enumerate(generators):
        q[s].exponential_(generator=g)
    return (probs / q).argmax(dim=-1)


def _losses(steps: dict, hyper) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """The solo loss of each seed (sums over time and episodes, / n), summed over seeds."""
    mask = steps["mask"]
    advantage = (steps["return"] - steps["value"]).detach() * mask
    n = mask.shape[2]
    policy = -(steps["logp"] * advantage).sum(dim=(0, 2)) / n
    value = 0.5 * ((steps["return"] - steps["value"]) ** 2 * mask).sum(dim=(0, 2)) / n
    entropy = steps["entropy"].sum(dim=(0, 2)) / n
    loss = policy + hyper.value_coef * value - hyper.entropy_coef * entropy
    per_seed = {"loss/policy": policy.tolist(), "loss/value": value.tolist(), "loss/entropy": entropy.tolist()}
    return loss.sum(), per_seed


def _clip_per_seed(params: list[torch.Tensor], max_norm: float) -> list[float]:
    """clip_grad_norm_ for each seed's slice: its own total norm, its own scale."""
    norms = torch.stack([p.grad.flatten(1).norm(dim=1) for p in params]).norm(dim=0)  # (S,)
    scale = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
    return norms.tolist()


def _seed_stats(steps: dict, trials: dict, trials_per_episode: int) -> dict:
    """Per-seed sums for the metric windows, as Python numbers (one transfer each)."""
    out = {"steps": [int(v) for v in steps["mask"].sum(dim=(0, 2)).tolist()],
           "reward": steps["reward"].sum(dim=(0, 2)).tolist()}
    end, correct = trials["end"], trials["correct"]
    S = steps["mask"].shape[1]
    if end is None:
        zeros = [0] * S
        out.update(trials=zeros, known=zeros, known_correct=[0.0] * S)
        return out
    out["trials"] = [int(v) for v in end.sum(dim=(0, 2)).tolist()]
    known = end & ~torch.isnan(correct)
    out["known"] = [int(v) for v in known.sum(dim=(0, 2)).tolist()]
    out["known_correct"] = torch.where(known, correct, 0.0).sum(dim=(0, 2)).tolist()
    position = trials["position"]
    if position is not None:
        at = [(end & (position == k)) for k in range(1, trials_per_episode + 1)]
        out["positions"] = [[int(v) for v in a.sum(dim=(0, 2)).tolist()] for a in at]
        out["pos_correct"] = [torch.where(a, correct, 0.0).sum(dim=(0, 2)).tolist() for a in at]
    return out
