"""Actors and critics of the firefly TD3 agents (Zhang et al., "Inductive biases of neural
network modularity in spatial navigation").

The paper's question is whether *where* the action enters the critic, and whether the
recurrent belief is separated from the policy/value readout, changes how fast an agent learns.
So the five critics differ only in wiring, and the names match the paper's so that run
directories and figures can say "Actor3Critic5":

    Actor1  (holistic)  LSTM(220) -> Linear -> tanh
    Actor2              2-layer LSTM(128) -> Linear -> tanh
    Actor3  (modular)   LSTM(128) -> FC300 ReLU -> FC300 ReLU -> Linear -> tanh

    Critic1 (holistic)  LSTM(220) over [state, action] -> Linear
    Critic2             2-layer LSTM(128) over [state, action] -> Linear
    Critic3             LSTM(128) over [state, action] -> FC300 -> FC300 -> Linear
    Critic4             LSTM(128) over state -> LSTM(128) over [h, action] -> Linear
    Critic5 (modular)   LSTM(128) over state, then [h, action] -> FC300 -> FC300 -> Linear

(ReLU between FC layers.) In Critic1-4 the action passes through a recurrence, so the action
taken at step t also colours Q at later steps; in Critic5 it does not: Q_t is a feed-forward
function of (belief_t, a_t), the "modular" separation of belief from evaluation.

Everything recurrent is time-major, (T, B, features), because training replays whole
trajectories batched by equal length (no padding), and the TD target warms the target
networks on the first step and carries their state on; hence every forward takes and returns
the recurrent state, and `state=None` means zeros.

Each critic module is a TD3 twin: two independent Q networks, each with its own recurrent
state. `forward` gives both Q values (for the critic loss and the clipped double-Q target);
`q1` runs only the first (the actor loss is -mean Q1(s, pi(s)), as in TD3).

The EKF agents replace the learned recurrence by an extended Kalman filter's belief (13
numbers: 5 means, the 6-entry upper triangle of the position covariance, 2 velocity
variances), so their networks are plain MLPs (2 x 300 ReLU).

Initialisation follows the reference: every Linear weight N(0, 0.1) with zero bias, every LSTM
weight matrix Xavier-uniform with zero biases (kept as the reference has them, e.g. no
forget-gate bias of 1, so that learning curves are comparable with the paper's).

Every actor, and each Q network of every critic, has about 200k parameters (the 220-unit
holistic LSTM is sized for that), so the comparison is of wiring, not of capacity.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.nn import functional as F

OBS_DIM = 6  # [observed (v, w), previous action (2), observed target xy (2)]
ACTION_DIM = 2  # joystick (linear, angular), in [-1, 1]
EKF_BELIEF_DIM = 13  # mean (5) + upper triangle of 3x3 position covariance (6) + 2 velocity variances
RNN_SIZE = 128
HOLISTIC_RNN_SIZE = 220  # one wider LSTM matches the others' ~200k parameters
FC_SIZE = 300

LSTMState = tuple[torch.Tensor, torch.Tensor]


def _lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> LSTMState:
    """nn.LSTM's cell from its summed gate pre-activations (i, f, g, o), in few ops: one sigmoid
    over all four (g then takes tanh of its own slice)."""
    H = c.shape[-1]
    gate = torch.sigmoid(gates)
    c = gate[..., H:2 * H] * c + gate[..., :H] * torch.tanh(gates[..., 2 * H:3 * H])
    return gate[..., 3 * H:] * torch.tanh(c), c


# ------------------------------------------------------------------- S seeds' nets as one


class SeedLinear(nn.Module):
    """S nn.Linear layers of one shape as one: x (S, ..., in) -> (S, ..., out), seed s through
    its own weight (S, out, in) and bias (S, out), in one batched product."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S, out = self.weight.shape[:2]
        if x.dim() < 2 or x.shape[0] != S:  # a reshape would silently spread one seed's rows over all
            raise ValueError(f"expected a leading seed dimension of {S}; got {tuple(x.shape)}")
        y = torch.baddbmm(self.bias.unsqueeze(1), x.reshape(S, -1, x.shape[-1]), self.weight.transpose(1, 2))
        return y.view(*x.shape[:-1], out)


class SeedLSTM(nn.Module):
    """S nn.LSTM layers of one shape as one, parameters named as nn.LSTM's with a leading seed
    dimension: x (S, T, B, in) -> (S, T, B, H), state (h, c) each (S, num_layers, B, H)."""

    def __init__(self, layers: list[nn.LSTM]):
        super().__init__()
        self.num_layers, self.hidden_size = layers[0].num_layers, layers[0].hidden_size
        for name, _ in layers[0].named_parameters():
            setattr(self, name, nn.Parameter(torch.stack([getattr(layer, name).detach() for layer in layers])))

    def forward(self, x: torch.Tensor, state: LSTMState | None = None):
        S, T, B, _ = x.shape
        if state is None:
            zeros = x.new_zeros(S, self.num_layers, B, self.hidden_size)
            state = (zeros, zeros)
        hs, cs = list(state[0].unbind(1)), list(state[1].unbind(1))
        for layer in range(self.num_layers):
            # The input's product for the whole sequence at once, then per step only the
            # recurrent one, time-major so that each step's slice is contiguous.
            bias = getattr(self, f"bias_ih_l{layer}") + getattr(self, f"bias_hh_l{layer}")
            w_ih = getattr(self, f"weight_ih_l{layer}")
            projected = torch.baddbmm(bias.unsqueeze(1), x.reshape(S, T * B, -1), w_ih.transpose(1, 2))
            projected = projected.view(S, T, B, -1).transpose(0, 1).contiguous()
            w_hh = getattr(self, f"weight_hh_l{layer}").transpose(1, 2)
            h, c = hs[layer], cs[layer]
            outputs = []
            for p_t in projected.unbind(0):
                h, c = _lstm_cell(torch.baddbmm(p_t, h, w_hh), c)
                outputs.append(h)
            hs[layer], cs[layer] = h, c
            x = torch.stack(outputs, dim=1)
        return x, (torch.stack(hs, dim=1), torch.stack(cs, dim=1))


def stack_nets(nets: list[nn.Module]) -> nn.Module:
    """S nets of one architecture as one net of the same class whose calls take and give a
    leading seed dimension (S, ...), recurrent states included: each Linear and LSTM becomes its
    seed-stacked form, parameter names unchanged. Seed groups train this one net; batched
    products instead of `torch.func.vmap`, whose unfused LSTM backward cost more per seed than
    training the seeds one by one."""
    stacked = copy.deepcopy(nets[0])
    for name, module in list(stacked.named_modules()):
        if isinstance(module, (nn.Linear, nn.LSTM)):
            layers = [net.get_submodule(name) for net in nets]
            parent, _, attr = name.rpartition(".")
            setattr(stacked.get_submodule(parent), attr, (SeedLinear if isinstance(module, nn.Linear) else SeedLSTM)(layers))
    for module in stacked.modules():
        module.seed_dims = 1
    return stacked


def init_weights_(module: nn.Module) -> None:
    """Reference initialisation, applied to one module (use with `Module.apply`)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.1)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LSTM):
        for name, param in module.named_parameters():
            if name.startswith("bias"):
                nn.init.zeros_(param)
            elif name.startswith("weight"):
                # Xavier over each full (4H, in) gate matrix, as the reference does.
                nn.init.xavier_uniform_(param)
            else:  # projections (proj_size) are not part of these architectures
                raise ValueError(f"unexpected LSTM parameter {name!r}")


def parameter_count(module: nn.Module) -> int:
    """Number of scalar parameters (all of them, trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def _check_seq(x: torch.Tensor, dim: int, what: str, seed_dims: int = 0) -> None:
    # A (B, features) tensor would silently be read as T=B, B=features by nn.LSTM.
    if x.dim() != 3 + seed_dims or x.shape[-1] != dim:
        shape = "(S, T, B" if seed_dims else "(T, B"
        raise ValueError(f"{what} must be time-major {shape}, {dim}); got {tuple(x.shape)}")


def _mlp(in_dim: int, sizes: tuple[int, ...]) -> nn.ModuleList:
    layers, d = [], in_dim
    for s in sizes:
        layers.append(nn.Linear(d, s))
        d = s
    return nn.ModuleList(layers)


def _relu_stack(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = F.relu(layer(x))
    return x


# ----------------------------------------------------------------------------------- actors


class RecurrentActor(nn.Module):
    """LSTM (rnn_size, num_layers) -> ReLU FC layers (fc_sizes, maybe none) -> Linear -> tanh.

    forward(obs_seq (T, B, obs_dim), state=None) -> (actions (T, B, action_dim), state),
    state = the LSTM's (h, c), each (num_layers, B, rnn_size).
    """

    rnn_size: int = RNN_SIZE
    num_layers: int = 1
    seed_dims = 0  # 1 in the seed-stacked copy (stack_nets)
    fc_sizes: tuple[int, ...] = ()

    def __init__(self, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM):
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        # Registered in forward order, so listing the children reads as the architecture.
        self.rnn = nn.LSTM(obs_dim, self.rnn_size, num_layers=self.num_layers)
        self.fc = _mlp(self.rnn_size, self.fc_sizes)
        self.out = nn.Linear(self.fc_sizes[-1] if self.fc_sizes else self.rnn_size, action_dim)
        self.apply(init_weights_)

    def forward(self, obs_seq: torch.Tensor, state: LSTMState | None = None):
        _check_seq(obs_seq, self.obs_dim, "obs_seq", self.seed_dims)
        h, state = self.rnn(obs_seq, state)
        return torch.tanh(self.out(_relu_stack(self.fc, h))), state


class Actor1(RecurrentActor):
    """Holistic actor: LSTM(220) -> Linear -> tanh."""

    rnn_size = HOLISTIC_RNN_SIZE


class Actor2(RecurrentActor):
    """Two-layer LSTM(128) -> Linear -> tanh."""

    num_layers = 2


class Actor3(RecurrentActor):
    """Modular actor: LSTM(128) (belief) -> FC300 ReLU -> FC300 ReLU -> Linear -> tanh (policy)."""

    fc_sizes = (FC_SIZE, FC_SIZE)


# ------------------------------------------------------------------------ single Q networks


class _ActionInLSTMQ(nn.Module):
    """Q over LSTM([state, action]) -> ReLU FCs -> Linear (Critic1-3's Q network)."""

    def __init__(self, obs_dim, action_dim, rnn_size, num_layers, fc_sizes):
        super().__init__()
        self.rnn = nn.LSTM(obs_dim + action_dim, rnn_size, num_layers=num_layers)
        self.fc = _mlp(rnn_size, fc_sizes)
        self.out = nn.Linear(fc_sizes[-1] if fc_sizes else rnn_size, 1)

    def forward(self, obs, action, state=None):
        h, state = self.rnn(torch.cat([obs, action], dim=-1), state)
        return self.out(_relu_stack(self.fc, h)).squeeze(-1), state


class _StackedLSTMQ(nn.Module):
    """Critic4's Q network: LSTM over state, then a second LSTM over [h, action] -> Linear.

    Its recurrent state is (state of the first LSTM, state of the second)."""

    def __init__(self, obs_dim, action_dim, rnn_size):
        super().__init__()
        self.rnn = nn.LSTM(obs_dim, rnn_size)
        self.rnn_action = nn.LSTM(rnn_size + action_dim, rnn_size)
        self.out = nn.Linear(rnn_size, 1)

    def forward(self, obs, action, state=None):
        s1, s2 = (None, None) if state is None else state
        h, s1 = self.rnn(obs, s1)
        h, s2 = self.rnn_action(torch.cat([h, action], dim=-1), s2)
        return self.out(h).squeeze(-1), (s1, s2)


class _LateActionQ(nn.Module):
    """Critic5's Q network: LSTM over state only; the action joins after it, so Q_t depends on
    a_t but not on earlier actions except through the state (which holds the previous action
    as an observation)."""

    def __init__(self, obs_dim, action_dim, rnn_size, fc_sizes):
        super().__init__()
        self.rnn = nn.LSTM(obs_dim, rnn_size)
        self.fc = _mlp(rnn_size + action_dim, fc_sizes)
        self.out = nn.Linear(fc_sizes[-1], 1)

    def forward(self, obs, action, state=None):
        h, state = self.rnn(obs, state)
        return self.out(_relu_stack(self.fc, torch.cat([h, action], dim=-1))).squeeze(-1), state


# --------------------------------------------------------------------------- twin critics


class TwinCritic(nn.Module, ABC):
    """Two independent Q networks built by `_make_q` (TD3's clipped double Q).

    forward(obs_seq (T, B, obs_dim), action_seq (T, B, action_dim), state=None)
        -> (q1 (T, B), q2 (T, B), (state1, state2))
    q1(obs_seq, action_seq, state=None) -> (q1 (T, B), state1)

    `state` for forward is the pair of the two networks' recurrent states (None = zeros);
    `state` for q1 is the first network's own state alone, i.e. forward(...)[2][0].
    """

    seed_dims = 0  # 1 in the seed-stacked copy (stack_nets)

    def __init__(self, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM):
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.q1_net = self._make_q(obs_dim, action_dim)
        self.q2_net = self._make_q(obs_dim, action_dim)
        self.apply(init_weights_)  # separate draws, so the twins start different

    @abstractmethod
    def _make_q(self, obs_dim: int, action_dim: int) -> nn.Module:
        """One Q network; each critic class wires it its own way."""

    def _check(self, obs_seq, action_seq):
        _check_seq(obs_seq, self.obs_dim, "obs_seq", self.seed_dims)
        _check_seq(action_seq, self.action_dim, "action_seq", self.seed_dims)
        if obs_seq.shape[:-1] != action_seq.shape[:-1]:
            raise ValueError(
                f"obs_seq {tuple(obs_seq.shape)} and action_seq {tuple(action_seq.shape)} "
                "differ in (T, B)"
            )

    def forward(self, obs_seq: torch.Tensor, action_seq: torch.Tensor, state=None):
        self._check(obs_seq, action_seq)
        s1, s2 = (None, None) if state is None else state
        q1, s1 = self.q1_net(obs_seq, action_seq, s1)
        q2, s2 = self.q2_net(obs_seq, action_seq, s2)
        return q1, q2, (s1, s2)

    def q1(self, obs_seq: torch.Tensor, action_seq: torch.Tensor, state=None):
        self._check(obs_seq, action_seq)
        return self.q1_net(obs_seq, action_seq, state)


class Critic1(TwinCritic):
    """Holistic critic: LSTM(220) over [state, action] -> Linear."""

    def _make_q(self, obs_dim, action_dim):
        return _ActionInLSTMQ(obs_dim, action_dim, HOLISTIC_RNN_SIZE, 1, ())


class Critic2(TwinCritic):
    """Two-layer LSTM(128) over [state, action] -> Linear."""

    def _make_q(self, obs_dim, action_dim):
        return _ActionInLSTMQ(obs_dim, action_dim, RNN_SIZE, 2, ())


class Critic3(TwinCritic):
    """LSTM(128) over [state, action] -> FC300 ReLU -> FC300 ReLU -> Linear."""

    def _make_q(self, obs_dim, action_dim):
        return _ActionInLSTMQ(obs_dim, action_dim, RNN_SIZE, 1, (FC_SIZE, FC_SIZE))


class Critic4(TwinCritic):
    """LSTM(128) over state -> LSTM(128) over [h, action] -> Linear.

    Each Q network's state is (first LSTM's (h, c), second LSTM's (h, c))."""

    def _make_q(self, obs_dim, action_dim):
        return _StackedLSTMQ(obs_dim, action_dim, RNN_SIZE)


class Critic5(TwinCritic):
    """Modular critic: LSTM(128) over state; [h, action] -> FC300 ReLU -> FC300 ReLU -> Linear."""

    def _make_q(self, obs_dim, action_dim):
        return _LateActionQ(obs_dim, action_dim, RNN_SIZE, (FC_SIZE, FC_SIZE))


ACTORS: dict[str, type[RecurrentActor]] = {"Actor1": Actor1, "Actor2": Actor2, "Actor3": Actor3}
CRITICS: dict[str, type[TwinCritic]] = {
    "Critic1": Critic1,
    "Critic2": Critic2,
    "Critic3": Critic3,
    "Critic4": Critic4,
    "Critic5": Critic5,
}


def _unknown(kind: str, name: str, *tables: dict) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; known: {', '.join(k for t in tables for k in t)}")


def make_actor(name: str, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM) -> RecurrentActor:
    if name in BELIEF_ACTORS:
        return SequenceActor(BELIEF_ACTORS[name](EKF_BELIEF_DIM, action_dim))
    if name not in ACTORS:
        raise _unknown("actor", name, ACTORS, BELIEF_ACTORS)
    return ACTORS[name](obs_dim, action_dim)


def make_critic(name: str, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM) -> TwinCritic:
    if name in BELIEF_CRITICS:
        return SequenceCritic(BELIEF_CRITICS[name](EKF_BELIEF_DIM, action_dim))
    if name not in CRITICS:
        raise _unknown("critic", name, CRITICS, BELIEF_CRITICS)
    return CRITICS[name](obs_dim, action_dim)


# ------------------------------------------------------------------------------ EKF agents


class MLPActor(nn.Module):
    """EKF agent's actor: belief (13) -> FC300 ReLU -> FC300 ReLU -> Linear -> tanh.

    forward(belief (..., belief_dim)) -> action (..., action_dim); any leading shape, so it
    serves single transitions (B, 13) and time-major sequences (T, B, 13) alike. No state:
    the EKF is the memory.
    """

    def __init__(self, belief_dim: int = EKF_BELIEF_DIM, action_dim: int = ACTION_DIM,
                 fc_size: int = FC_SIZE):
        super().__init__()
        self.belief_dim, self.action_dim = belief_dim, action_dim
        self.fc = _mlp(belief_dim, (fc_size, fc_size))
        self.out = nn.Linear(fc_size, action_dim)
        self.apply(init_weights_)

    def forward(self, belief: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(_relu_stack(self.fc, belief)))


class ActorEKF(MLPActor):
    """The holistic-EKF agent's actor: the same MLP over the EKF belief (13) as `MLPActor`.

    In that agent only the actor sees the belief; its critic is the recurrent `Critic1`,
    reading the raw 6-d observation sequence plus this actor's actions, so the pair asks
    whether a holistic critic can train a policy that is given a perfect-filter belief.
    The trainer therefore feeds the actor (T, B, 13) beliefs and the critic (T, B, 6)
    observations of the same trajectories.
    """


class MLPCritic(nn.Module):
    """EKF agent's twin critic: [belief, action] -> FC300 ReLU -> FC300 ReLU -> Linear, twice.

    forward(belief (..., 13), action (..., 2)) -> (q1 (...), q2 (...)); q1(belief, action) -> q1.
    """

    def __init__(self, belief_dim: int = EKF_BELIEF_DIM, action_dim: int = ACTION_DIM,
                 fc_size: int = FC_SIZE):
        super().__init__()
        self.belief_dim, self.action_dim = belief_dim, action_dim
        self.q1_fc = _mlp(belief_dim + action_dim, (fc_size, fc_size))
        self.q1_out = nn.Linear(fc_size, 1)
        self.q2_fc = _mlp(belief_dim + action_dim, (fc_size, fc_size))
        self.q2_out = nn.Linear(fc_size, 1)
        self.apply(init_weights_)

    def forward(self, belief: torch.Tensor, action: torch.Tensor):
        x = torch.cat([belief, action], dim=-1)
        q1 = self.q1_out(_relu_stack(self.q1_fc, x)).squeeze(-1)
        q2 = self.q2_out(_relu_stack(self.q2_fc, x)).squeeze(-1)
        return q1, q2

    def q1(self, belief: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([belief, action], dim=-1)
        return self.q1_out(_relu_stack(self.q1_fc, x)).squeeze(-1)


# The EKF agents' nets by name, for the trainer: they read the belief (13), not the observation.
BELIEF_ACTORS: dict[str, type[MLPActor]] = {"MLPActor": MLPActor, "ActorEKF": ActorEKF}
BELIEF_CRITICS: dict[str, type[MLPCritic]] = {"MLPCritic": MLPCritic}


class SequenceActor(nn.Module):
    """An MLP actor behind the recurrent actors' call, `(x, state) -> (action, state)`, so the
    trainer and the evaluation treat every actor alike; the state stays None."""

    def __init__(self, mlp: MLPActor):
        super().__init__()
        self.mlp = mlp

    def forward(self, x: torch.Tensor, state=None):
        return self.mlp(x), None


class SequenceCritic(nn.Module):
    """An MLP twin critic behind the recurrent critics' calls."""

    def __init__(self, mlp: MLPCritic):
        super().__init__()
        self.mlp = mlp

    def forward(self, x: torch.Tensor, action: torch.Tensor, state=None):
        q1, q2 = self.mlp(x, action)
        return q1, q2, None

    def q1(self, x: torch.Tensor, action: torch.Tensor, state=None):
        return self.mlp.q1(x, action), None
