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
