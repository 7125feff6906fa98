"""The firefly task against its equations (noise off), its noise and target statistics, the
stop rule, perturbations, the mirror, the EKF belief and the gymnasium id."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

from neurorl_cli.families.firefly.env import DT, LINEAR_SCALE, MAX_ANGULAR, MAX_LINEAR, PULSE_SHAPE, Firefly
from neurorl_cli.families.firefly.ekf import FireflyEKF

FAR = (0.0, 10.0)  # a target no test trajectory reaches


def quiet(n: int, **kw) -> Firefly:
    return Firefly(n, seed=0, process_noise=0.0, observation_noise=0.0, **kw)


def simulate(actions, gain=1.0):
    """The reference's equations, one trial, in plain floats: states after each step."""
    px, py, h, v, w = 0.0, 0.0, math.pi / 2, 0.0, 0.0
    out = []
    for av, aw in actions:
        px, py, h = px + v * math.cos(h) * DT, py + v * math.sin(h) * DT, h + w * DT
        v, w = gain * MAX_LINEAR * av, gain * MAX_ANGULAR * aw
        out.append((px, py, h, v, w))
    return out


def ecdf_gap(values: torch.Tensor) -> float:
    """Largest gap between the empirical CDF of values in [0, 1] and the uniform CDF."""
    v = values.sort().values.double()
    k = torch.arange(1, len(v) + 1, dtype=torch.float64) / len(v)
    return float(torch.maximum((k - v).abs(), (k - 1 / len(v) - v).abs()).max())


# -- reset, dynamics, observations ---------------------------------------------------------


def test_reset_starts_at_origin_facing_forward_with_the_target_in_view():
    env = Firefly(5, seed=3)
    obs = env.reset()
    assert obs.shape == (5, env.obs_dim) == (5, 6) and env.action_dim == 2 and env.max_steps == 35
    expected = torch.tensor([0.0, 0.0, math.pi / 2, 0.0, 0.0]).expand(5, 5)
    assert torch.equal(env.state, expected)
    assert torch.equal(obs[:, :4], torch.zeros(5, 4))  # exact zero velocities, no previous action
    assert torch.equal(obs[:, 4:], env.target)
    assert env.active.all()


def test_dynamics_match_hand_computed_trajectories():
    env = quiet(3)
    env.reset(target=torch.tensor([FAR] * 3))
    # Hand-computed: (1, 1) twice, then (1, 0): position integrates the previous velocities.
    env.step(torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.5, -0.5]]))
    assert torch.allclose(env.state[0], torch.tensor([0.0, 0.0, math.pi / 2, 0.5, math.pi / 2]))
    env.step(torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.5, -0.5]]))
    assert torch.allclose(env.state[0], torch.tensor([0.0, 0.05, math.pi / 2 + math.pi / 20, 0.5, math.pi / 2]), atol=1e-6)
    env.step(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.5, -0.5]]))
    h = math.pi / 2 + math.pi / 20
    expected = torch.tensor([0.05 * math.cos(h), 0.05 + 0.05 * math.sin(h), h + math.pi / 20, 0.5, 0.0])
    assert torch.allclose(env.state[0], expected, atol=1e-6)
    assert torch.allclose(env.state[1, :2], torch.tensor([0.0, 0.1]), atol=1e-6)  # 2 x 0.5 units/s x 0.1 s
    assert env.state[1, 1] * LINEAR_SCALE == pytest.approx(40.0)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_dynamics_match_the_equations_over_whole_trials(gain):
    g = torch.Generator().manual_seed(1)
    n, steps = 4, 30
    actions = 2 * torch.rand(steps, n, 2, generator=g) - 1
    actions[..., 0] = actions[..., 0].abs().clamp(min=0.2)  # never a stop
    env = quiet(n, gain=gain)
    env.reset(target=torch.tensor([FAR] * n))
    for t in range(steps):
        obs, reward, done, info = env.step(actions[t])
        for i in range(n):
            truth = simulate(actions[: t + 1, i].tolist(), gain)[-1]
            assert torch.allclose(env.state[i], torch.tensor(truth), atol=1e-5)
        assert torch.allclose(obs[:, :2], env.state[:, 3:])  # noise off: exact velocities
        assert torch.equal(obs[:, 2:4], actions[t])  # the previous action
        assert torch.equal(reward, torch.zeros(n)) and not done.any()
        assert torch.equal(info["steps"], torch.full((n,), t + 1))
        assert torch.allclose(info["position"], env.state[:, :2]) and torch.allclose(info["heading"], env.state[:, 2])


def test_gain_scales_velocities_and_paths():
    paths = []
    for gain in (1.0, 1.5, 2.0):
        env = quiet(1, gain=gain)
        env.reset(target=torch.tensor([FAR]))
        for _ in range(10):
            env.step(torch.tensor([[0.8, 0.0]]))
        assert env.state[0, 3] == pytest.approx(gain * MAX_LINEAR * 0.8)
        paths.append(float(env.state[0, 1]))
    assert paths[1] == pytest.approx(1.5 * paths[0]) and paths[2] == pytest.approx(2 * paths[0])
    env = quiet(1, gain=2.0)
    env.reset()
    env.step(torch.tensor([[0.0, 1.0]]))
    assert env.state[0, 4] == pytest.approx(math.radians(180))  # 2 x 90 deg/s


def test_target_visible_for_the_first_300_ms_only():
    env = Firefly(8, seed=2)
    seen = [bool((env.reset()[:, 4:] == env.target).all())]
    for _ in range(10):
        obs, *_ = env.step(torch.full((8, 2), 0.5))
        seen.append(bool((obs[:, 4:] == env.target).all()))
        assert seen[-1] or bool((obs[:, 4:] == 0).all())
    # observations at 0, 100, 200, 300 ms carry the target (the reference switches it off at t = 3)
    assert seen == [True] * 4 + [False] * 7
    env = Firefly(2, seed=2, target_visible_steps=None)
    env.reset()
    for _ in range(10):
        obs, *_ = env.step(torch.full((2, 2), 0.5))
    assert torch.equal(obs[:, 4:], env.target)


# -- stop rule, rewards, batch bookkeeping ---------------------------------------------------


def test_stop_rule_needs_an_earlier_crossing_and_rewards_the_stop_position():
    env = quiet(4)
    target = torch.tensor([[0.0, 0.2], [0.0, 0.2 + 100 / LINEAR_SCALE], FAR, FAR])
    env.reset(target=target)
    go, stop = torch.tensor([1.0, 0.0]), torch.tensor([0.05, -0.05])
    # trials 0-1: 5 steps forward then a stop; 2: stops from the start (never crossed); 3: small actions then go
    plan = {0: [go] * 5 + [stop], 1: [go] * 5 + [stop], 2: [stop] * 35, 3: [stop, torch.tensor([0.09, 0.09]), go, stop]}
    ended_at, rewards = {}, torch.zeros(4)
    for t in range(35):
        a = torch.stack([plan[i][t] if t < len(plan[i]) else stop for i in range(4)])
        _, reward, done, info = env.step(a)
        rewards += reward
        for i in range(4):
            if bool(info["trial_end"][i]):
                ended_at[i] = t + 1
                if i < 2:  # position at the stop: 4 steps of 0.5 units/s (the first step moves nothing)
                    assert torch.allclose(info["position"][i], torch.tensor([0.0, 0.2]), atol=1e-6)
    assert ended_at == {0: 6, 1: 6, 2: 35, 3: 4}
    assert rewards[0] == pytest.approx(10.0)  # inside the goal radius
    sigma = 65.0 / 1.5
    assert rewards[1] == pytest.approx(10 * math.exp(-0.5 * (100 / sigma) ** 2), rel=1e-4)
    assert rewards[2] == 0.0  # never crossed the threshold: not a stop, times out unrewarded
    assert rewards[3] == pytest.approx(10 * 0.001)  # stopped at (0, 0.05), far from the target: the floor
    assert info["stopped"].tolist() == [True, True, False, True]
    assert info["rewarded"].tolist() == [True, False, False, False]
    assert info["steps"].tolist() == [6, 6, 35, 4]
    assert info["distance_cm"][1] == pytest.approx(100.0, abs=1e-3)
    assert info["overshoot_cm"][1] == pytest.approx(-100.0, abs=1e-3)  # short of the target


def test_the_threshold_is_judged_on_the_raw_action_when_given():
    env = quiet(1)
    env.reset(target=torch.tensor([FAR]))
    env.step(torch.tensor([[0.5, 0.0]]), raw_action=torch.tensor([[0.05, 0.0]]))  # noise pushed it over
    _, _, done, _ = env.step(torch.zeros(1, 2))
    assert not done.any()  # the policy itself never crossed: no stop
    env.step(torch.tensor([[0.5, 0.0]]))
    _, _, done, info = env.step(torch.zeros(1, 2))
    assert done.all() and info["stopped"].all()


def test_timeout_gives_no_reward_and_ended_trials_stay_frozen():
    env = Firefly(3, seed=4)
    env.reset()
    total = torch.zeros(3)
    for t in range(35):
        a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0] if t < 3 else [0.0, 0.0]])
        _, reward, done, info = env.step(a)
        total += reward
        assert done.tolist() == [t == 34, t == 34, t >= 3]
    assert total[:2].tolist() == [0.0, 0.0] and total[2] > 0
    assert info["steps"].tolist() == [35, 35, 4] and not info["stopped"][:2].any()
    frozen = (env.state.clone(), env.obs.clone(), info["distance_cm"].clone())
    obs, reward, done, info = env.step(torch.ones(3, 2))
    assert done.all() and torch.equal(reward, torch.zeros(3)) and not info["trial_end"].any()
    assert torch.equal(env.state, frozen[0]) and torch.equal(obs, frozen[1]) and torch.equal(info["distance_cm"], frozen[2])
    assert torch.equal(info["steps"], torch.tensor([35, 35, 4]))
    env.reset()
    assert env.active.all() and torch.equal(env.steps, torch.zeros(3, dtype=torch.long))


def test_reward_modes():
    env = quiet(4)
    env.reset(target=torch.zeros(4, 2))
    d = torch.tensor([64.0, 66.0, 100.0, 400.0]) / LINEAR_SCALE
    pos = torch.stack([torch.zeros(4), d], dim=1)
    sigma = 65.0 / 1.5 / LINEAR_SCALE
    mixed = [10.0] + [10 * max(math.exp(-0.5 * (x / sigma) ** 2), 0.001) for x in d[1:].tolist()]
    assert torch.allclose(env.reward_at(pos), torch.tensor(mixed), rtol=1e-5)
    env.reward_mode = "const"
    assert env.reward_at(pos).tolist() == [10.0, 0.0, 0.0, 0.0]
    env.reward_mode = "gauss"
    assert env.reward_at(pos)[0] == pytest.approx(10 * math.exp(-0.5 * (64 / 32.5) ** 2), rel=1e-5)
    with pytest.raises(ValueError):
        Firefly(1, seed=0, reward_mode="nope")


# -- statistics ----------------------------------------------------------------------------


def test_targets_uniform_over_area_and_angle():
    t = Firefly(1, seed=5).sample_targets(40000) * LINEAR_SCALE
    r = t.norm(dim=1)
    angle = torch.rad2deg(torch.atan2(t[:, 0], t[:, 1]))  # from straight ahead, + to the right
    assert r.min() >= 100 - 1e-3 and r.max() <= 400 + 1e-3 and angle.abs().max() <= 35 + 1e-4
    assert ecdf_gap((r**2 - 100**2) / (400**2 - 100**2)) < 0.01  # r^2 uniform: uniform over the area
    assert ecdf_gap((angle + 35) / 70) < 0.01
    assert ecdf_gap((r - 100) / 300) > 0.05  # and r itself is not uniform


@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_process_and_observation_noise_sd_is_noise_times_gain(gain):
    n, steps, a = 4000, 10, torch.tensor([0.6, 0.4])
    env = Firefly(n, seed=6, gain=gain, process_noise=0.2, observation_noise=0.3)
    env.reset()
    proc, obs_err = [], []
    for _ in range(steps):
        obs, *_ = env.step(a.expand(n, 2))
        proc.append(env.state[:, 3:] - env.gains * a)
        obs_err.append(obs[:, :2] - env.state[:, 3:])
    g = torch.tensor([gain * MAX_LINEAR, gain * MAX_ANGULAR])
    proc, obs_err = torch.cat(proc), torch.cat(obs_err)
    assert torch.allclose(proc.std(dim=0), 0.2 * g, rtol=0.03) and torch.allclose(proc.mean(dim=0), torch.zeros(2), atol=0.01 * gain)
    assert torch.allclose(obs_err.std(dim=0), 0.3 * g, rtol=0.03)
    assert abs(float(torch.corrcoef(proc.T)[0, 1])) < 0.03  # independent components


# -- perturbations ---------------------------------------------------------------------------


def test_perturbation_pulse_changes_velocity_only_in_its_window():
    env = quiet(2, perturbation="normal")
    peak, start = torch.tensor([[0.3, -1.0], [-0.2, 0.5]]), torch.tensor([4, 0])
    env.reset(target=torch.tensor([FAR, FAR]), perturbation=(peak, start))
    a = torch.tensor([0.5, 0.2])
    for t in range(30):
        _, _, _, info = env.step(a.expand(2, 2))
        extra = env.state[:, 3:] - env.gains * a
        for i in range(2):
            k = t - int(start[i])
            expected = peak[i] * PULSE_SHAPE[k] if 0 <= k < 11 else torch.zeros(2)
            assert torch.allclose(extra[i], expected, atol=1e-6), (t, i)
            assert torch.allclose(info["perturbation"][i], expected, atol=1e-6)
    assert PULSE_SHAPE[5] == 1.0 and len(PULSE_SHAPE) == 11  # peak in the middle of 1 s


@pytest.mark.parametrize("kind,v_range,w_range", [("normal", (-200, 200), (-120, 120)), ("large", (-200, 800), (-180, 180))])
def test_perturbation_draws(kind, v_range, w_range):
    env = Firefly(5000, seed=7, perturbation=kind)
    peaks, start = env.pulse_peak, env.pulse_start
    v, w = peaks[:, 0] * LINEAR_SCALE, torch.rad2deg(peaks[:, 1])
    assert v.min() >= v_range[0] and v.max() <= v_range[1] and v.min() < v_range[0] + 10 and v.max() > v_range[1] - 10
    assert w.min() >= w_range[0] and w.max() <= w_range[1]
    assert set(start.tolist()) == set(range(11))
    none = Firefly(3, seed=7)
    assert torch.equal(none.pulse_peak, torch.zeros(3, 2))


# -- mirror --------------------------------------------------------------------------------


def test_mirror_is_an_involution():
    x = torch.randn(7, 3, 6)
    assert torch.equal(Firefly.mirror(Firefly.mirror(x)), x)
    assert torch.equal(Firefly.mirror(x)[..., [0, 2, 5]], x[..., [0, 2, 5]])
    assert torch.equal(Firefly.mirror(x)[..., [1, 3, 4]], -x[..., [1, 3, 4]])
    a = torch.randn(4, 2)
    assert torch.equal(Firefly.mirror_action(Firefly.mirror_action(a)), a)
    # Headings mirror as pi - h, which float32 undoes only to within an ulp of pi: an absolute
    # tolerance (a relative one fails whenever a random heading lands near 0).
    s = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(Firefly.mirror_state(Firefly.mirror_state(s)), s, rtol=0, atol=1e-6)
    s[:, 2] = torch.tensor([0.0, 1e-4, -1e-4, 3.0])
    assert torch.allclose(Firefly.mirror_state(Firefly.mirror_state(s)), s, rtol=0, atol=1e-6)
    b = torch.randn(4, 13, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(FireflyEKF.mirror_belief(FireflyEKF.mirror_belief(b)), b, rtol=0, atol=1e-6)


def test_mirrored_actions_give_the_mirrored_trial():
    n = 6
    env, twin = quiet(n), quiet(n)
    target = Firefly(n, seed=8).sample_targets()
    obs, obs_m = env.reset(target=target), twin.reset(target=Firefly.mirror_target(target))
    assert torch.allclose(Firefly.mirror(obs), obs_m)
    g = torch.Generator().manual_seed(9)
    ekf, ekf_m = FireflyEKF(n, process_noise=0.0, observation_noise=0.0), FireflyEKF(n, process_noise=0.0, observation_noise=0.0)
    b, b_m = ekf.reset(target), ekf_m.reset(Firefly.mirror_target(target))
    for t in range(35):
        a = 2 * torch.rand(n, 2, generator=g) - 1
        if t > 25:
            a = a * 0.05  # stop
        obs, r, d, info = env.step(a)
        obs_m, r_m, d_m, info_m = twin.step(Firefly.mirror_action(a))
        assert torch.allclose(Firefly.mirror(obs), obs_m, atol=1e-5)
        assert torch.allclose(Firefly.mirror_state(env.state), twin.state, atol=1e-5)
        assert torch.allclose(r, r_m, atol=1e-4) and torch.equal(d, d_m)
        assert torch.allclose(info["distance_cm"], info_m["distance_cm"], atol=1e-3)
        b, b_m = ekf.step(obs[:, :2], a), ekf_m.step(obs_m[:, :2], Firefly.mirror_action(a))
        assert torch.allclose(FireflyEKF.mirror_belief(b), b_m, atol=1e-5)
    assert d.all()


# -- EKF -----------------------------------------------------------------------------------


def test_ekf_belief_layout_and_noise_free_tracking():
    env = quiet(3)
    env.reset()
    ekf = FireflyEKF.from_env(env)
    b = ekf.reset(env.target)
    assert b.shape == (3, 13)
    assert torch.allclose(b[:, :2], -env.target) and torch.allclose(b[:, 2], torch.full((3,), math.pi / 2))
    assert torch.allclose(b[:, 5:], torch.tensor([1e-8, 0, 0, 1e-8, 0, 1e-8, 1e-8, 1e-8]).expand(3, 8))
    for _ in range(20):
        a = torch.tensor([[1.0, 0.3], [0.5, -0.5], [0.8, 0.0]])
        obs, *_ = env.step(a)
        b = ekf.step(obs[:, :2], a)
    assert torch.allclose(b[:, :2], env.state[:, :2] - env.target, atol=1e-5)
    assert torch.allclose(b[:, 2:5], env.state[:, 2:], atol=1e-5)
    assert torch.allclose(ekf.position(env.target), env.state[:, :2], atol=1e-5)


def test_ekf_beats_dead_reckoning_under_noise():
    n, steps = 4000, 25
    env = Firefly(n, seed=10)  # default noise: process 0.2 g, observation 0.1 g
    env.reset()
    ekf = FireflyEKF.from_env(env)
    ekf.reset(env.target)
    dr = torch.zeros(n, 3)  # dead reckoning: integrate the observed velocities
    dr[:, 2] = math.pi / 2
    dr_vel = torch.zeros(n, 2)
    g = torch.Generator().manual_seed(11)
    var_x = []
    for t in range(steps):
        a = torch.stack([0.5 + 0.5 * torch.rand(n, generator=g), torch.rand(n, generator=g) - 0.5], dim=1)
        obs, _, done, info = env.step(a)
        ekf.step(obs[:, :2], a, info["perturbation"])
        dr = torch.stack([dr[:, 0] + dr_vel[:, 0] * torch.cos(dr[:, 2]) * DT, dr[:, 1] + dr_vel[:, 0] * torch.sin(dr[:, 2]) * DT, dr[:, 2] + dr_vel[:, 1] * DT], dim=1)
        dr_vel = obs[:, :2]
    assert not done.any()
    truth = env.state[:, :2]
    ekf_err = (ekf.position(env.target) - truth).pow(2).sum(dim=1)
    dr_err = (dr[:, :2] - truth).pow(2).sum(dim=1)
    assert ekf_err.mean() < 0.9 * dr_err.mean()
    # and the filter is calibrated: its position variance matches its actual squared error
    predicted = (ekf.cov[:, 0, 0] + ekf.cov[:, 1, 1]).float()
    assert float(ekf_err.mean() / predicted.mean()) == pytest.approx(1.0, abs=0.15)


# -- gymnasium -----------------------------------------------------------------------------


def test_gym_id_runs_a_trial():
    env = gym.make("neurorl/Firefly-v0", process_noise=0.0, observation_noise=0.0)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (6,) and env.action_space.shape == (2,) and env.observation_space.shape == (6,)
    actions = [[1.0, 0.0]] * 5 + [[0.0, 0.0]]
    for k, a in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(a)
        assert terminated == (k == 5) and not truncated
    assert info["new_trial"] and info["stopped"] and info["steps"] == 6 and len(info["position"]) == 2
    env.reset()
    for k in range(35):
        *_, terminated, truncated, info = env.step([0.0, 0.0])
    assert truncated and not terminated and info["steps"] == 35
