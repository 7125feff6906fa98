"""Seed groups of the firefly TD3 trainer: S seeds of one config trained in one process as one
batched computation.

The seeds' actors, critics and target nets are each one seed-stacked net (nets/firefly.py
`stack_nets`: batched products over weights with a leading seed dimension), so every forward
and backward runs once for the group; the seeds due an update are picked out of the stacked
weights (`functional_call`). Everything else a seed has stays its own, as `TD3Backend.train`
keeps it: its replay, its random streams (`torch.manual_seed(seed)` for the nets,
a generator seeded `seed + 1` for exploration, replay draws and target smoothing, in solo's
order), its environment and EKF filter, its phase, its run log and checkpoints (in solo's
format, so a grouped seed resumes alone and a solo checkpoint resumes in a group).

Per-seed Adam: the first and second moments are stacked too, and each seed has its own step
count and learning rate (phase III lowers it per seed); the arithmetic is torch.optim.Adam's.
In a round, seeds owe different numbers of updates (their trials' lengths differ, warm-up and
phases end apart): an update moves the seeds due it and leaves the others exactly as they
were. The due seeds' trajectory batches, of different lengths, are padded with zeros to the
longest: the nets are causal, so padding after a trajectory's end changes none of its outputs,
the zero next-input at its last real step is solo's, and the losses average over real steps.

A grouped seed equals the same seed trained alone up to float rounding (batched matrix
products sum in another order); tests/test_seed_groups_td3.py measures how close.
"""

from __future__ import annotations

import torch
from torch import nn

from neurorl_cli.engines.base import package_versions, resolve_device
from neurorl_cli.engines.native.td3 import (
    TD3, VERSIONED, Hyper, Inputs, SeedRun, TD3Backend, explore, smooth_with, standard_normal, validate)
from neurorl_cli.interfaces import RunConfig
from neurorl_cli.runlog import RunLog

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which the solo trainer uses


class _Q1(nn.Module):
    """A critic's first Q network as its forward, for `functional_call`."""

    def __init__(self, critic: nn.Module):
        super().__init__()
        self.inner = critic

    def forward(self, *args):
        return self.inner.q1(*args)


def _pad(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(T_i, B_i, ...) tensors zero-padded to one (K, T, B, ...)."""
    t = max(x.shape[0] for x in tensors)
    b = max(x.shape[1] for x in tensors)
    if all(x.shape[:2] == (t, b) for x in tensors):
        return torch.stack(tensors)
    out = tensors[0].new_zeros((len(tensors), t, b, *tensors[0].shape[2:]))
    for k, x in enumerate(tensors):
        out[k, :x.shape[0], :x.shape[1]] = x
    return out


class GroupTD3:
    """The nets and optimizer state of S seeds' TD3 agents, stacked. `agents` are the seeds' solo
    `TD3` objects (initialised or loaded as solo does); they serve as the templates a seed's
    state is written back into for checkpoints and validation (`sync`)."""

    def __init__(self, agents: list):
        from neurorl_cli.nets.firefly import stack_nets

        self.agents = agents
        self.S = len(agents)
        self.device = agents[0].device
        self.hyper = hyper = agents[0].hyper
        self.actor_reads, self.critic_reads = hyper.reads("actor"), hyper.reads("critic")
        self.modules = {name: stack_nets([getattr(a, name) for a in agents])
                        for name in ("actor", "critic", "actor_target", "critic_target")}
        self.q1 = _Q1(self.modules["critic"])
        self.nets: dict[str, dict[str, torch.Tensor]] = {}
        for name, module in self.modules.items():
            if name.endswith("_target"):
                module.requires_grad_(False)
            self.nets[name] = dict(module.named_parameters())
        # Adam per net: moments stacked, steps and learning rates per seed (read from the solo optimizers).
        self.moments: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
        self.steps: dict[str, list[int]] = {}
        self.lr: dict[str, list[float]] = {}
        for name in ("actor", "critic"):
            optims = [getattr(a, f"{name}_optim") for a in agents]
            modules = [getattr(a, name) for a in agents]
            first, second, steps = {}, {}, []
            for optim, module in zip(optims, modules):
                state = [optim.state.get(p, {}) for p in module.parameters()]
                steps.append(int(state[0]["step"]) if state and "step" in state[0] else 0)
            for k, (pname, _) in enumerate(modules[0].named_parameters()):
                def moment(key, k=k):
                    rows = []
                    for optim, module in zip(optims, modules):
                        p = list(module.parameters())[k]
                        st = optim.state.get(p, {})
                        rows.append(st[key].detach().clone() if key in st else torch.zeros_like(p.detach()))
                    return torch.stack(rows)
                first[pname], second[pname] = moment("exp_avg"), moment("exp_avg_sq")
            self.moments[name] = {"exp_avg": first, "exp_avg_sq": second}
            self.steps[name] = steps
            self.lr[name] = [float(o.param_groups[0]["lr"]) for o in optims]
        self.eps = float(agents[0].actor_optim.param_groups[0]["eps"])
        self.updates = [a.updates for a in agents]

    # -- bookkeeping
    def set_learning_rate(self, seed: int, lr: float) -> None:
        for name in ("actor", "critic"):
            self.lr[name][seed] = lr

    def sync(self, seed: int, optimizers: bool = True) -> object:
        """Write seed `seed`'s state into its solo TD3 object (for a checkpoint or validation)."""
        agent = self.agents[seed]
        with torch.no_grad():
            for name, params in self.nets.items():
                module = getattr(agent, name)
                for pname, p in module.named_parameters():
                    p.copy_(params[pname][seed])
        if optimizers:
            for name in ("actor", "critic"):
                optim = getattr(agent, f"{name}_optim")
                saved = optim.state_dict()
                step = self.steps[name][seed]
                names = [n for n, _ in getattr(agent, name).named_parameters()]
                saved["state"] = {} if step == 0 else {
                    k: {"step": torch.tensor(float(step)),
                        "exp_avg": self.moments[name]["exp_avg"][n][seed].clone(),
                        "exp_avg_sq": self.moments[name]["exp_avg_sq"][n][seed].clone()}
                    for k, n in enumerate(names)}
                for group in saved["param_groups"]:
                    group["lr"] = self.lr[name][seed]
                optim.load_state_dict(saved)
            agent.updates = self.updates[seed]
        return agent

    # -- acting
    def actor_params(self, seeds: list[int]) -> dict[str, torch.Tensor]:
        return self._subset("actor", None if seeds == list(range(self.S)) else torch.tensor(seeds), detach=True)

    def act(self, params: dict, x: torch.Tensor, state):
        """One step of the seeds' actors: x (K, n, d) -> actions (K, n, 2), stacked state."""
        from torch.func import functional_call

        action, state = functional_call(self.modules["actor"], params, (x[:, None], state))
        return action[:, 0], state

    # -- learning
    def _subset(self, name: str, index, detach: bool = False) -> dict[str, torch.Tensor]:
        """A net's stacked parameters for the seeds in `index` (None: all)."""
        params = self.nets[name]
        if detach:
            params = {k: v.detach() for k, v in params.items()}
        return params if index is None else {k: v[index] for k, v in params.items()}

    def _call(self, name: str, params: dict, *args):
        from torch.func import functional_call

        return functional_call(self.q1 if name == "q1" else self.modules[name], params, args)

    def update(self, batches: list[dict | None], noises: list[torch.Tensor | None]) -> list[dict | None]:
        """One TD3 update for every seed with a batch (the others are left as they are):
        `batches[i]` seed i's replay sample (T, B, ...), `noises[i]` its target-smoothing noise
        (randn * target_noise, drawn after the sample as solo does), both wherever they were
        made. Per seed, the metrics solo's `TD3.update` returns."""
        out: list[dict | None] = [None] * self.S
        if all(b is None for b in batches):
            return out
        due, critic, q1, acting, actor = self.learn(batches, noises)
        values = torch.cat([critic, q1, actor]).tolist()  # one transfer from the device
        n = len(due)
        for k, i in enumerate(due):
            out[i] = {"loss/critic": values[k], "value/q1": values[n + k]}
        for k, i in enumerate(acting):
            out[i]["loss/actor"] = values[2 * n + k]
        return out

    def learn(self, batches: list[dict | None], noises: list[torch.Tensor | None]):
        """`update`'s work, its metrics left on the device: (the seeds updated, their critic
        losses, their mean Q1, the seeds whose actors stepped, their actor losses)."""
        h, dev = self.hyper, self.device
        due = [i for i, b in enumerate(batches) if b is not None]
        index = None if len(due) == self.S else torch.tensor(due, device=dev)
        rows = [{k: v.to(dev) for k, v in batches[i].items()} for i in due]
        shapes = [(b["reward"].shape[0], b["reward"].shape[1]) for b in rows]

        def stacked(key):
            return _pad([b[key] for b in rows])

        def now_and_next(key):
            x = stacked(key)
            if f"next_{key}" in rows[0]:
                return x, stacked(f"next_{key}")
            return x, torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)

        act, rew, done = stacked("action"), stacked("reward"), stacked("done")
        valid = _pad([torch.ones(t, b, device=dev) for t, b in shapes])
        count = torch.tensor([float(t * b) for t, b in shapes], device=dev)
        actor_in, actor_next = now_and_next(self.actor_reads)
        critic_in, critic_next = now_and_next(self.critic_reads)

        def per_seed(x, valid=valid, count=count):  # (K, T, B) -> (K,): the mean over each seed's real steps
            return (x * valid).sum(dim=(1, 2)) / count

        with torch.no_grad():
            actor_target, critic_target = self._subset("actor_target", index), self._subset("critic_target", index)
            _, state = self._call("actor_target", actor_target, actor_in[:, :1])
            next_act = smooth_with(self._call("actor_target", actor_target, actor_next, state)[0],
                                    _pad([noises[i].to(dev) for i in due]), h.target_noise_clip)
            _, _, state = self._call("critic_target", critic_target, critic_in[:, :1], act[:, :1])
            q1_next, q2_next, _ = self._call("critic_target", critic_target, critic_next, next_act, state)
            y = rew + (1 - done) * h.gamma * torch.minimum(q1_next, q2_next)
        q1, q2, _ = self._call("critic", self._subset("critic", index), critic_in, act)
        losses = per_seed((q1 - y) ** 2) + per_seed((q2 - y) ** 2)
        critic_params = self.nets["critic"]
        grads = torch.autograd.grad(losses.sum(), list(critic_params.values()))
        mask = torch.zeros(self.S, dtype=torch.bool, device=dev)
        mask[due] = True
        self._adam("critic", dict(zip(critic_params, grads)), mask, due)
        critic_values, q1_values = losses.detach(), per_seed(q1.detach())
        for i in due:
            self.updates[i] += 1
        acting = [k for k, i in enumerate(due) if self.updates[i] % h.policy_delay == 0]
        seeds = [due[k] for k in acting]
        actor_losses = critic_values.new_zeros(0)
        if acting:
            sub = None if len(acting) == len(due) else torch.tensor(acting, device=dev)
            pick = (lambda x: x) if sub is None else (lambda x: x[sub])
            seed_index = None if len(seeds) == self.S else torch.tensor(seeds, device=dev)
            # The critic frozen (detached) for the actor's loss, as solo's requires_grad_(False).
            frozen = {f"inner.{k}": v for k, v in self._subset("critic", seed_index, detach=True).items()}
            action = self._call("actor", self._subset("actor", seed_index), pick(actor_in))[0]
            q1 = self._call("q1", frozen, pick(critic_in), action)[0]
            actor_losses = -per_seed(q1, pick(valid), pick(count))
            actor_params = self.nets["actor"]
            grads = torch.autograd.grad(actor_losses.sum(), list(actor_params.values()))
            amask = torch.zeros(self.S, dtype=torch.bool, device=dev)
            amask[seeds] = True
            self._adam("actor", dict(zip(actor_params, grads)), amask, seeds)
            with torch.no_grad():
                for net, target_name in (("actor", "actor_target"), ("critic", "critic_target")):
                    for k, p in self.nets[net].items():
                        tp = self.nets[target_name][k]
                        moved = tp.lerp(p.detach(), h.tau)
                        tp.copy_(moved if len(seeds) == self.S else torch.where(amask.view(-1, *[1] * (tp.dim() - 1)), moved, tp))
            actor_losses = actor_losses.detach()
        return due, critic_values, q1_values, seeds, actor_losses

    def _adam(self, name: str, grads: dict[str, torch.Tensor], mask: torch.Tensor, seeds: list[int]) -> None:
        """torch.optim.Adam's step (single-tensor path) for the seeds in `mask`, each with its own
        step count and learning rate; the others keep parameters and moments unchanged."""
        beta1, beta2 = ADAM_BETAS
        steps = self.steps[name]
        for i in seeds:
            steps[i] += 1
        every = len(seeds) == self.S
        step_size = torch.tensor([self.lr[name][i] / (1 - beta1 ** steps[i]) if steps[i] else 0.0 for i in range(self.S)],
                                 device=self.device)
        bc2_sqrt = torch.tensor([(1 - beta2 ** steps[i]) ** 0.5 if steps[i] else 1.0 for i in range(self.S)], device=self.device)
        first, second = self.moments[name]["exp_avg"], self.moments[name]["exp_avg_sq"]
        with torch.no_grad():
            for k, p in self.nets[name].items():
                g = grads[k]
                shape = (self.S,) + (1,) * (p.dim() - 1)
                m_new = first[k].lerp(g, 1 - beta1)
                v_new = second[k].mul(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v_new.sqrt() / bc2_sqrt.view(shape)).add_(self.eps)
                p_new = p + (-step_size.view(shape)) * m_new / denom
                if every:
                    first[k].copy_(m_new)
                    second[k].copy_(v_new)
                    p.copy_(p_new)
                else:
                    keep = mask.view(shape)
                    first[k].copy_(torch.where(keep, m_new, first[k]))
                    second[k].copy_(torch.where(keep, v_new, second[k]))
                    p.copy_(torch.where(keep, p_new, p))


# -- collecting --------------------------------------------------------------------------------


def collect_group(group: GroupTD3, seeds: list[int], envs: list, noises: list[float], generators: list,
                  device, belief: bool) -> list[tuple[list[dict], dict]]:
    """`td3.collect` for several seeds at once: their actors act in one batched call per step,
    each seed's exploration draws and environment steps are its own (a seed whose trials have
    all ended draws and steps no more, as solo breaks out there)."""
    reads = group.actor_reads
    params = group.actor_params(seeds)
    inputs = [Inputs(env, belief=belief or reads == "belief") for env in envs]
    now = [inp.reset() for inp in inputs]
    L = len(seeds)
    n = now[0]["obs"].shape[0]
    state = None
    steps: list[list[dict]] = [[] for _ in range(L)]
    active = [torch.ones(n, dtype=torch.bool, device=device) for _ in range(L)]
    lengths = [torch.zeros(n, dtype=torch.long, device=device) for _ in range(L)]
    outcomes: list[dict] = [{} for _ in range(L)]
    running = [True] * L
    with torch.no_grad():
        for _ in range(envs[0].max_steps):
            chosen_all, state = group.act(params, torch.stack([now[j][reads] for j in range(L)]), state)
            for j in range(L):
                if not running[j]:
                    continue
                chosen = chosen_all[j]
                action = explore(chosen, noises[j], generators[j])
                nxt, reward, done, info = inputs[j].step(action, raw_action=chosen)
                steps[j].append({**now[j], "action": action, "reward": reward})
                lengths[j] += active[j].long()
                ended = done & active[j]
                outcome = outcomes[j]
                for key in ("rewarded", "distance_cm", "stopped"):
                    outcome.setdefault(key, torch.zeros(n, device=device))
                    outcome[key] = torch.where(ended, info[key].float(), outcome[key])
                active[j] = active[j] & ~done
                now[j] = nxt
                if not active[j].any():
                    running[j] = False
            if not any(running):
                break
    results = []
    for j in range(L):
        trajectories = []
        for i in range(n):
            length = int(lengths[j][i])
            traj = {k: torch.stack([s[k][i] for s in steps[j][:length]]) for k in steps[j][0]}
            done = torch.zeros(length, device=device)
            done[-1] = 1.0
            traj["done"] = done
            trajectories.append({k: v.cpu() for k, v in traj.items()})
        outcomes[j]["steps"] = lengths[j].float()
        results.append((trajectories, outcomes[j]))
    return results


# -- the training loop -------------------------------------------------------------------------


def train_group(runs: list[RunConfig], logs: list[RunLog]) -> None:
    """`TD3Backend.train` for every run of a seed group at once (see the module's docstring)."""
    hyper = Hyper(**runs[0].config["model"]["hyper"])
    device = torch.device(resolve_device(runs[0].device))
    seeds: list[SeedRun] = []
    agents, rngs = [], []
    for run, log in zip(runs, logs):
        torch.manual_seed(run.seed)
        seed = SeedRun(run, log, hyper, device)
        agent = TD3(hyper, device)
        rng = torch.get_rng_state()  # what solo's checkpoints store: nothing draws from it after the nets
        if run.resume_from:
            saved = seed.resume()
            agent.load_state_dict(saved["agent"])
            rng = saved["rng"]
        log.started(device=str(device), versions=package_versions(VERSIONED))
        if seed.counts["phase"] >= 3:
            agent.set_learning_rate(hyper.late_learning_rate)
        seed.begin()
        seeds.append(seed)
        agents.append(agent)
        rngs.append(rng)
    group = GroupTD3(agents)
    live = []
    for k, seed in enumerate(seeds):
        if seed.counts[seed.unit] >= seed.total:  # a resumed seed with nothing left to do
            seed.log.finish("completed")
        else:
            live.append(k)

    tenth = hyper.replay_draw == "tenth"
    while live:
        collected = collect_group(group, live, [seeds[k].env for k in live], [seeds[k].noise() for k in live],
                                  [seeds[k].generator for k in live], device, hyper.uses_belief)
        owed = [0] * group.S
        for k, (trajectories, outcome) in zip(live, collected):
            owed[k] = seeds[k].take(trajectories, outcome)
        # The round's updates: update j moves every seed that owes more than j.
        for j in range(max(owed)):
            batches: list[dict | None] = [None] * group.S
            noise: list[torch.Tensor | None] = [None] * group.S
            for k in live:
                if owed[k] > j:
                    s = seeds[k]
                    batches[k] = s.replay.sample(hyper.batch_size, tenth=tenth)
                    noise[k] = standard_normal((*batches[k]["reward"].shape, 2), s.generator, device) * hyper.target_noise
            for k, values in enumerate(group.update(batches, noise)):
                if values is not None:
                    seeds[k].record(values)
        for k in list(live):
            seed = seeds[k]
            if seed.end_round(lambda: validate(group.sync(k, optimizers=False), seed.config, hyper.validation_trials, device),
                              lambda lr: group.set_learning_rate(k, lr),
                              lambda step: seed.save(step, group.sync(k).state_dict(), rngs[k])):
                live.remove(k)


class GroupTD3Backend(TD3Backend):
    """The TD3 trainer with seed groups: the engine loads this one (td3.py stays the solo trainer,
    which this module builds on)."""

    # Grouped on request only, on a CPU: there a solo update already runs at 60-80 % of one
    # core's matrix-product peak (2.2 GFLOP in 28 ms at 30 steps; bench/td3_updates.py --flops),
    # so stacking seeds cannot gain, and padding the seeds' different trajectory lengths to the
    # longest costs (at S = 16: 0.7-0.8x solo's rate at equal lengths, 0.5x at mixed). A GPU,
    # where one update leaves the device mostly idle, takes the group.
    group_default = {"cpu": 1, "cuda": 64}

    def train_group(self, runs: list[RunConfig], logs: list[RunLog]) -> None:
        train_group(runs, logs)
