"""The A2C-LSTM meta-learner's network (Wang et al. 2018; awjuliani's Meta-RL).

One LSTM cell reads the observation (which, on meta-RL tasks, already carries the previous
action, the previous reward and the time step); a softmax policy head and a value head read
its hidden state. Both heads start from "normalised columns" (each unit's incoming weights
scaled to a fixed norm) without bias: the policy head tiny (0.01), so the first policy is
close to uniform, the value head at 1.
"""

from __future__ import annotations

import torch
from torch import nn


def normalised_columns_(weight: torch.Tensor, std: float) -> None:
    with torch.no_grad():
        weight.normal_()
        weight.mul_(std / weight.pow(2).sum(dim=1, keepdim=True).sqrt())


class MetaLSTM(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden_size: int = 48):
        super().__init__()
        self.cell = nn.LSTMCell(obs_dim, hidden_size)
        self.policy = nn.Linear(hidden_size, n_actions, bias=False)
        self.value = nn.Linear(hidden_size, 1, bias=False)
        normalised_columns_(self.policy.weight, 0.01)
        normalised_columns_(self.value.weight, 1.0)

    def initial_state(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(n, self.cell.hidden_size, device=device)
        return zeros, zeros.clone()

    def forward(self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        h, c = self.cell(obs, state)
        return self.policy(h), self.value(h).squeeze(-1), (h, c)


# -- seed groups: S networks as one, with a leading seed dimension ---------------------------

# MetaLSTM's parameters in `parameters()` order (the order of its optimizer's state).
PARAM_NAMES = ("cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh", "policy.weight", "value.weight")


class StackedMetaLSTM:
    """S MetaLSTMs stepped as one: each parameter stacked along a leading seed dimension
    (`params[name]` is (S, *shape), a leaf tensor), the LSTM cell and heads written with batched
    matrix products over the seeds. Inputs and states are (S, n, .); seed s reads only its own
    slice, so one backward of the summed losses gives each seed its own gradient.

    Hand-batched rather than `torch.func.vmap(functional_call(...))`: the same arithmetic with
    fewer dispatched ops per step (bench/seed_groups_metarl.py --nets measures both)."""

    def __init__(self, params: dict[str, torch.Tensor]):
        self.params = params
        self.hidden_size = params["cell.weight_hh"].shape[-1]

    @classmethod
    def from_nets(cls, nets: list[MetaLSTM], device=None) -> StackedMetaLSTM:
        states = [net.state_dict() for net in nets]
        return cls({k: torch.stack([s[k] for s in states]).to(device).requires_grad_() for k in PARAM_NAMES})

    @property
    def seeds(self) -> int:
        return self.params["cell.weight_ih"].shape[0]

    def parameters(self) -> list[torch.Tensor]:
        return [self.params[k] for k in PARAM_NAMES]

    def state_dict_of(self, s: int) -> dict[str, torch.Tensor]:
        """Seed s's weights as a MetaLSTM state dict (what a solo checkpoint stores)."""
        return {k: self.params[k][s].detach().clone() for k in PARAM_NAMES}

    def keep(self, keep: list[int]) -> StackedMetaLSTM:
        """A new stack of the seeds `keep` (new leaf tensors)."""
        index = torch.as_tensor(keep, device=self.params[PARAM_NAMES[0]].device)
        return StackedMetaLSTM({k: self.params[k].detach()[index].clone().requires_grad_() for k in PARAM_NAMES})

    def initial_state(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(self.seeds, n, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def __call__(self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """obs (S, n, obs_dim), state ((S, n, H), (S, n, H)) -> logits (S, n, A), value (S, n), state."""
        return self.stepper()(obs, state)

    def stepper(self):
        """The step function for one unroll: the cell's two products fused into one (inputs and
        hidden state side by side against both weight matrices, the two biases summed), made
        once per unroll, so each time step dispatches one matrix product for the gates (and its
        backward two)."""
        p = self.params
        H = self.hidden_size
        # LSTMCell's gate rows are (input, forget, cell, output); reordered to (i, f, o, cell) so
        # that one sigmoid covers the three gates.
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        order = order.to(p["cell.weight_ih"].device)
        weight = torch.cat([p["cell.weight_ih"], p["cell.weight_hh"]], dim=2)[:, order].transpose(1, 2)  # (S, D + H, 4H)
        bias = (p["cell.bias_ih"] + p["cell.bias_hh"])[:, order].unsqueeze(1)  # (S, 1, 4H)
        heads = torch.cat([p["policy.weight"], p["value.weight"]], dim=1).transpose(1, 2)  # (S, H, A + 1)

        def step(obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
            h, c = state
            gates = torch.baddbmm(bias, torch.cat([obs, h], dim=2), weight)
            i, f, o = torch.sigmoid(gates[..., :3 * H]).chunk(3, dim=-1)
            c = f * c + i * torch.tanh(gates[..., 3 * H:])
            h = o * torch.tanh(c)
            out = torch.bmm(h, heads)
            return out[..., :-1], out[..., -1], (h, c)

        return step


def vmapped_forward(nets: list[MetaLSTM]):
    """The alternative to StackedMetaLSTM, for the benchmark that chose between them: torch.func's
    stacked module state and vmap. vmap has no batching rule for nn.LSTMCell's fused kernel
    (aten::lstm_cell), so the cell is written out with F.linear, as functional_call would need."""
    from torch.func import stack_module_state, vmap
    from torch.nn.functional import linear

    params, _ = stack_module_state(nets)

    def one(p, obs, h, c):
        gates = linear(obs, p["cell.weight_ih"], p["cell.bias_ih"]) + linear(h, p["cell.weight_hh"], p["cell.bias_hh"])
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return linear(h, p["policy.weight"]), linear(h, p["value.weight"]).squeeze(-1), h, c

    batched = vmap(one)

    def forward(obs, state):
        logits, value, h, c = batched(params, obs, *state)
        return logits, value, (h, c)

    return params, forward
