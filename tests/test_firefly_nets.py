"""The firefly actors and critics against the reference architectures (Zhang et al.):
shapes, layer structure, where the action enters the critic, initialisation, state carrying."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from neurorl_cli.nets import firefly
from neurorl_cli.nets.firefly import (
    ACTORS,
    CRITICS,
    ActorEKF,
    MLPActor,
    MLPCritic,
    make_actor,
    make_critic,
    parameter_count,
)

T, B, OBS, ACT = 7, 3, 6, 2


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def seqs(t=T, b=B):
    return torch.randn(t, b, OBS), torch.rand(t, b, ACT) * 2 - 1


def layers(module: nn.Module) -> list[tuple]:
    """The LSTM and Linear layers in registration (= forward) order, as comparable tuples."""
    out = []
    for m in module.modules():
        if isinstance(m, nn.LSTM):
            out.append(("LSTM", m.input_size, m.hidden_size, m.num_layers))
        elif isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features))
    return out


# The reference: state = 6 (obs 2 + previous action 2 + target 2), action = 2.
ACTOR_LAYERS = {
    "Actor1": [("LSTM", 6, 220, 1), ("Linear", 220, 2)],
    "Actor2": [("LSTM", 6, 128, 2), ("Linear", 128, 2)],
    "Actor3": [("LSTM", 6, 128, 1), ("Linear", 128, 300), ("Linear", 300, 300), ("Linear", 300, 2)],
}
Q_LAYERS = {  # one Q network; each critic holds two
    "Critic1": [("LSTM", 8, 220, 1), ("Linear", 220, 1)],
    "Critic2": [("LSTM", 8, 128, 2), ("Linear", 128, 1)],
    "Critic3": [("LSTM", 8, 128, 1), ("Linear", 128, 300), ("Linear", 300, 300), ("Linear", 300, 1)],
    "Critic4": [("LSTM", 6, 128, 1), ("LSTM", 130, 128, 1), ("Linear", 128, 1)],
    "Critic5": [("LSTM", 6, 128, 1), ("Linear", 130, 300), ("Linear", 300, 300), ("Linear", 300, 1)],
}


@pytest.mark.parametrize("name", list(ACTORS))
def test_actor_shapes_range_and_layers(name):
    actor = make_actor(name, OBS, ACT)
    obs, _ = seqs()
    actions, (h, c) = actor(obs)
    assert actions.shape == (T, B, ACT)
    assert actions.abs().max() < 1  # tanh
    n_layers = 2 if name == "Actor2" else 1
    hidden = 220 if name == "Actor1" else 128
    assert h.shape == c.shape == (n_layers, B, hidden)
    assert layers(actor) == ACTOR_LAYERS[name]


@pytest.mark.parametrize("name", list(CRITICS))
def test_critic_shapes_and_twin_layers(name):
    critic = make_critic(name, OBS, ACT)
    obs, act = seqs()
    q1, q2, (s1, s2) = critic(obs, act)
    assert q1.shape == q2.shape == (T, B)
    q1_only, s1_only = critic.q1(obs, act)
    torch.testing.assert_close(q1_only, q1)
    assert not torch.allclose(q1, q2)  # independent twins, independently initialised
    assert layers(critic.q1_net) == layers(critic.q2_net) == Q_LAYERS[name]
    assert layers(critic) == Q_LAYERS[name] * 2  # nothing else besides the two Q networks
    ids1 = {id(p) for p in critic.q1_net.parameters()}
    assert ids1.isdisjoint(id(p) for p in critic.q2_net.parameters())
    if name == "Critic4":  # both LSTMs' states, per Q network
        (h_a, _), (h_b, _) = s1
        assert h_a.shape == h_b.shape == (1, B, 128)
    else:
        h, c = s1
        assert h.shape == c.shape == ({"Critic2": 2}.get(name, 1), B, 220 if name == "Critic1" else 128)


@pytest.mark.parametrize("name", list(CRITICS))
def test_where_the_action_enters(name):
    """Critic5 reads the action after its LSTM: changing a_t changes Q only at t. The others
    feed it through a recurrence, so Q at later steps moves too. Earlier steps never move."""
    critic = make_critic(name)
    obs, act = seqs()
    t = 2
    act2 = act.clone()
    act2[t] = -act2[t]
    for qa, qb in zip(critic(obs, act)[:2], critic(obs, act2)[:2]):
        diff = (qa - qb).abs().amax(dim=1)
        assert diff[:t].max() == 0
        assert diff[t] > 1e-6
        if name == "Critic5":
            assert diff[t + 1:].max() == 0
        else:
            assert (diff[t + 1:] > 1e-7).all()


@pytest.mark.parametrize("actor_name,critic_name", list(itertools.product(ACTORS, CRITICS)))
def test_every_pair_gives_a_differentiable_actor_loss(actor_name, critic_name):
    actor, critic = make_actor(actor_name), make_critic(critic_name)
    obs, _ = seqs()
    actions, _ = actor(obs)
    q1, _ = critic.q1(obs, actions)
    loss = -q1.mean()
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in actor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # The actor loss uses Q1 only, so Q2 gets no gradient.
    assert all(p.grad is None for p in critic.q2_net.parameters())


ALL_NETS = {**{n: (lambda n=n: make_actor(n)) for n in ACTORS},
            **{n: (lambda n=n: make_critic(n)) for n in CRITICS},
            "MLPActor": MLPActor, "MLPCritic": MLPCritic}


@pytest.mark.parametrize("name", list(ALL_NETS))
def test_initialisation_matches_reference(name):
    net = ALL_NETS[name]()
    linear_w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, nn.Linear)])
    n = linear_w.numel()  # Critic1 has only 2 x 220 of them: allow 4 standard errors
    assert abs(linear_w.mean().item()) < 4 * 0.1 / math.sqrt(n)
    assert linear_w.std().item() == pytest.approx(0.1, rel=4 / math.sqrt(2 * n))
    for m in net.modules():
        if isinstance(m, nn.Linear):
            assert (m.bias == 0).all()
        if isinstance(m, nn.LSTM):
            for pname, p in m.named_parameters():
                if pname.startswith("bias"):
                    assert (p == 0).all()
                else:  # Xavier-uniform over the (4H, in) matrix
                    bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                    assert p.abs().max() <= bound
                    if p.numel() > 10_000:  # enough samples to tell it from torch's default
                        assert p.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


@pytest.mark.parametrize("name", list(ACTORS))
def test_actor_state_carried_across_calls_equals_one_call(name):
    actor = make_actor(name)
    obs, _ = seqs()
    whole, s_whole = actor(obs)
    first, s = actor(obs[:3])
    second, s = actor(obs[3:], s)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(s, s_whole)


@pytest.mark.parametrize("name", list(CRITICS))
def test_critic_state_carried_across_calls_equals_one_call(name):
    critic = make_critic(name)
    obs, act = seqs()
    q1, q2, s_whole = critic(obs, act)
    a1, a2, s = critic(obs[:1], act[:1])  # the TD target warms on the first step, as here
    b1, b2, s = critic(obs[1:], act[1:], s)
    torch.testing.assert_close(torch.cat([a1, b1]), q1)
    torch.testing.assert_close(torch.cat([a2, b2]), q2)
    torch.testing.assert_close(s, s_whole)
    # q1 takes the first Q network's own state.
    c1, s1 = critic.q1(obs[:1], act[:1])
    d1, _ = critic.q1(obs[1:], act[1:], s1)
    torch.testing.assert_close(torch.cat([c1, d1]), q1)


def test_ekf_mlp_shapes_and_layers():
    actor, critic, actor_ekf = MLPActor(), MLPCritic(), ActorEKF()
    assert layers(actor) == layers(actor_ekf) == [
        ("Linear", 13, 300), ("Linear", 300, 300), ("Linear", 300, 2)]
    assert layers(critic) == [("Linear", 15, 300), ("Linear", 300, 300), ("Linear", 300, 1)] * 2
    for lead in [(B,), (T, B)]:  # transitions, and time-major sequences for holistic-EKF
        belief = torch.randn(*lead, 13)
        a = actor(belief)
        assert a.shape == (*lead, 2) and a.abs().max() < 1
        q1, q2 = critic(belief, a)
        assert q1.shape == q2.shape == lead
        torch.testing.assert_close(critic.q1(belief, a), q1)
    assert isinstance(actor_ekf, MLPActor)


def test_holistic_ekf_pair_trains_actor_through_critic1():
    """ActorEKF reads the belief; Critic1 reads the raw observations and the actor's actions."""
    actor, critic = ActorEKF(), make_critic("Critic1")
    obs, _ = seqs()
    beliefs = torch.randn(T, B, 13)
    q1, _ = critic.q1(obs, actor(beliefs))
    (-q1.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())


def test_parameter_counts_are_comparable_across_architectures():
    # The paper compares wiring at roughly equal size (~200k per actor / per Q network).
    counts = [parameter_count(make_actor(n)) for n in ACTORS]
    counts += [parameter_count(make_critic(n)) // 2 for n in CRITICS]
    assert all(190_000 < c < 210_000 for c in counts), counts
    lin = nn.Linear(4, 3)
    assert parameter_count(lin) == 15


def test_unknown_names_raise_with_known_names():
    with pytest.raises(ValueError, match="Actor1, Actor2, Actor3"):
        make_actor("Actor9")
    with pytest.raises(ValueError, match="Critic1, Critic2, Critic3, Critic4, Critic5"):
        make_critic("critic1")


def test_batch_major_input_is_rejected():
    with pytest.raises(ValueError, match="time-major"):
        make_actor("Actor1")(torch.randn(B, OBS))
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        make_critic("Critic5")(torch.randn(T, B, OBS), torch.randn(T, B + 1, ACT))


def test_module_constants():
    assert (firefly.OBS_DIM, firefly.ACTION_DIM, firefly.EKF_BELIEF_DIM) == (6, 2, 13)


@pytest.mark.parametrize("name", [*ACTORS, *CRITICS, "MLPActor", "MLPCritic"])
def test_seed_stacked_net_equals_each_seed_net(name):
    """stack_nets (the seed groups' and the batched evaluation's nets): seed s of the stacked net
    computes what net s computes alone, across a split sequence with the state carried, and its
    parameters keep the single net's names (checkpoints and optimizers are read by name)."""
    make = make_actor if name in ACTORS or name == "MLPActor" else make_critic
    nets = [make(name) for _ in range(3)]
    stacked = firefly.stack_nets(nets)
    assert [n for n, _ in stacked.named_parameters()] == [n for n, _ in nets[0].named_parameters()]
    dim = firefly.EKF_BELIEF_DIM if name.startswith("MLP") else OBS
    x, a = torch.randn(3, T, B, dim), torch.rand(3, T, B, ACT) * 2 - 1
    inputs = (lambda sl: (x[:, sl],)) if make is make_actor else (lambda sl: (x[:, sl], a[:, sl]))
    *first, state = stacked(*inputs(slice(0, 3)), None)
    *rest, _ = stacked(*inputs(slice(3, T)), state)
    for s, net in enumerate(nets):
        *alone, _ = net(*(v[s] for v in inputs(slice(None))), None)
        for whole, head, tail in zip(alone, first, rest):
            torch.testing.assert_close(torch.cat([head[s], tail[s]]), whole, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"\(S, T, B|leading seed dimension"):
        (stacked(x[0], None) if make is make_actor else stacked(x[0], a[0], None))
