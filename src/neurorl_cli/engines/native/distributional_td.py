"""Distributional TD(lambda) on cue-reward schedules (the drl_sim model), vectorised over predictors.

N independent value predictors see the same trials. Each has its own learning rates for
positive and negative TD errors (alpha+, alpha-), discount gamma and trace decay lambda, all
per-second values used as `rate ** dt` per step. Per trial of type s, with the weights from
the trial's start:

    V_t     = w_s . x_s[:, t]
    delta_t = r_t + gamma^dt V_{t+1} - V_t                       t = 0 .. steps-2
    e_t     = lambda^dt e_{t-1} + x_s[:, t]
    w_s    += sum_t alpha_(+ if delta_t > 0 else -)^dt delta_t e_t / max(1, sum_k e_t[k])

Asymmetric rates make each predictor converge to an expectile of the return, at asymmetry
tau = alpha+^dt / (alpha+^dt + alpha-^dt).

`simulate` runs all predictors at once in torch; `simulate_loop` is the same rule written as
plain loops, the reference for tests and the benchmark.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Union

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from neurorl_cli import atomic
from neurorl_cli.analysis.prose import and_list
from neurorl_cli.families.conditioning.schedule import Schedule, Trials, build, nominal_reward_index
from neurorl_cli.runlog import RunLog
from neurorl_cli.engines.base import package_versions, resolve_device
from neurorl_cli.interfaces import RunConfig

SIMULATION = "simulation.npz"
PARAM_KEYS = ("alpha_plus", "alpha_minus", "tau", "gamma", "lambda")
VERSIONED = ["neurorl-cli", "torch", "numpy", "pydantic"]
# Below this many multiply-adds per trial (predictors x steps^2) one CPU thread is faster: the
# per-trial ops are too small to split. On 2 cores, 2 threads were 3.5x slower at 200
# predictors and 4x at 4000 (70 steps), and stalled for seconds right after numpy's BLAS ran.
SMALL_TRIAL_WORK = 50_000_000


# -- hyper-parameters -----------------------------------------------------------------------


class Range(BaseModel):
    """Each predictor draws its value uniformly from [low, high]."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        return self


# A float is shared by all predictors, {low, high} is a uniform range, a list is a set of choices.
Spread = Union[float, Range, list[float]]


class Hyper(BaseModel):
    """The model's `[hyper]` table."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    predictors: int = Field(ge=1)
    alpha: Spread = Field(description="float: symmetric rate; range or list: the asymmetry tau")
    gamma: Spread = Field(description="per-second discount")
    lambda_: Spread = Field(alias="lambda", description="per-second trace decay")
    # What alpha's rates are per. "second" (drl_sim's): used per step as alpha ** dt, which at a
    # small dt pulls every predictor's effective asymmetry close to 0.5 (drawn tau 0.3-0.8 is
    # 0.50-0.53 at dt 0.1 s). "step": used as drawn, so the predictors' expectiles spread as tau
    # does. Left out: "second", as every config stored before the setting existed computed.
    alpha_per: Literal["second", "step"] | None = None

    @property
    def alpha_exponent(self) -> float | None:
        """The power alpha's rates are raised to per step: None for dt (per second), 1 per step."""
        return 1.0 if self.alpha_per == "step" else None

    @model_validator(mode="after")
    def _in_bounds(self) -> Hyper:
        if isinstance(self.alpha, float):
            _check_bounds("alpha", [self.alpha], 0, 1, open_low=True)
        else:
            _check_bounds("alpha (the asymmetry tau)", _extremes(self.alpha), 0, 1, open_low=True, open_high=True)
        _check_bounds("gamma", _extremes(self.gamma), 0, 1)
        _check_bounds("lambda", _extremes(self.lambda_), 0, 1)
        return self


def _extremes(spread: Spread) -> list[float]:
    if isinstance(spread, Range):
        return [spread.low, spread.high]
    return [spread] if isinstance(spread, float) else list(spread)


def _check_bounds(name: str, values: list[float], lo: float, hi: float, open_low=False, open_high=False) -> None:
    if not values:
        raise ValueError(f"{name}: an empty list of choices")
    for v in values:
        if v < lo or v > hi or (open_low and v == lo) or (open_high and v == hi):
            bounds = f"{'(' if open_low else '['}{lo}, {hi}{')' if open_high else ']'}"
            raise ValueError(f"{name} = {v} is outside {bounds}")


def draw_spread(spread: Spread, n: int, generator: torch.Generator) -> torch.Tensor:
    if isinstance(spread, Range):
        return spread.low + (spread.high - spread.low) * torch.rand(n, generator=generator, dtype=torch.float64)
    if isinstance(spread, list):
        choices = torch.tensor(spread, dtype=torch.float64)
        return choices[torch.randint(len(spread), (n,), generator=generator)]
    return torch.full((n,), float(spread), dtype=torch.float64)


def draw_asymmetric_rates(tau: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """drl_sim's draw: alpha- ~ U(0, 1), alpha+ = tau alpha- / (1 - tau), alpha- redrawn until alpha+ <= 1."""
    alpha_minus = torch.zeros_like(tau)
    todo = torch.ones_like(tau, dtype=torch.bool)
    while todo.any():
        alpha_minus[todo] = torch.rand(int(todo.sum()), generator=generator, dtype=torch.float64)
        alpha_plus = tau * alpha_minus / (1 - tau)
        todo = (alpha_plus > 1) | (alpha_minus == 0)  # a zero pair would leave tau undefined
    return alpha_plus, alpha_minus


def draw_params(hyper: dict, n: int | None, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-predictor float64 tensors alpha_plus, alpha_minus, tau, gamma, lambda (all per second).

    `n` defaults to hyper["predictors"]. tau = alpha+ / (alpha+ + alpha-) is the drawn asymmetry;
    the per-step asymmetry is alpha+^dt / (alpha+^dt + alpha-^dt)."""
    h = Hyper.model_validate(hyper)
    n = h.predictors if n is None else n
    if isinstance(h.alpha, float):
        alpha_plus = alpha_minus = torch.full((n,), h.alpha, dtype=torch.float64)
    else:
        alpha_plus, alpha_minus = draw_asymmetric_rates(draw_spread(h.alpha, n, generator), generator)
    return {
        "alpha_plus": alpha_plus,
        "alpha_minus": alpha_minus,
        "tau": alpha_plus / (alpha_plus + alpha_minus),
        "gamma": draw_spread(h.gamma, n, generator),
        "lambda": draw_spread(h.lambda_, n, generator),
    }


# -- the simulation, vectorised over predictors ------------------------------------------------


def trace_matrix(lambda_dt: torch.Tensor, steps: int) -> torch.Tensor:
    """L[n, t, j] = lambda_n^(dt (t - j)) for j <= t, else 0; shape (N, steps-1, steps).

    The trace is e_t = sum_j L[t, j] x[:, j], so the update sum_t c_t e_t equals x (c L)^T, which
    needs no per-type copy of the traces."""
    t = torch.arange(steps - 1, device=lambda_dt.device).unsqueeze(1)
    j = torch.arange(steps, device=lambda_dt.device).unsqueeze(0)
    lag = (t - j).clamp_min(0).to(lambda_dt.dtype)
    powers = lambda_dt[:, None, None] ** lag  # 0 ** 0 == 1 keeps the current step when lambda is 0
    return powers * (j <= t).to(lambda_dt.dtype)


def trace_norm(L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """max(1, sum_k e_t[k]) for every predictor, type and step: shape (N, types, steps-1)."""
    active = x.sum(dim=1)  # (types, steps): how many features are on at each time
    return torch.einsum("ntj,sj->nst", L, active).clamp_min(1.0)


def per_step_rates(params: dict, dt: float, device, dtype, alpha_exponent: float | None = None) -> dict[str, torch.Tensor]:
    """Rates per step: per-second values to the power dt (alpha to `alpha_exponent` when given)."""
    power = {"alpha_plus": alpha_exponent or dt, "alpha_minus": alpha_exponent or dt, "gamma": dt, "lambda": dt}
    return {k: params[k].to(device, dtype) ** p for k, p in power.items()}


def simulate(trials: Trials, params: dict, dt: float, w0: torch.Tensor | None = None, start: int = 0,
             stop: int | None = None, alpha_exponent: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run trials[start:stop] for all predictors from weights `w0` (zeros when None).

    Returns V (N, trials, steps), deltas (N, trials, steps-1) and the final weights w
    (N, types, steps), on the trials' device and dtype."""
    x, r, types = trials.x, trials.r, trials.types
    stop = trials.n_trials if stop is None else stop
    n_types, steps = x.shape[0], x.shape[1]
    rates = per_step_rates(params, dt, x.device, x.dtype, alpha_exponent)
    n = rates["gamma"].shape[0]
    w = torch.zeros(n, n_types, steps, device=x.device, dtype=x.dtype) if w0 is None else w0.to(x.device, x.dtype).clone()
    L = trace_matrix(rates["lambda"], steps)
    norm = trace_norm(L, x)
    gamma = rates["gamma"].unsqueeze(1)
    alpha_plus, alpha_minus = rates["alpha_plus"].unsqueeze(1), rates["alpha_minus"].unsqueeze(1)
    V = torch.empty(n, stop - start, steps, device=x.device, dtype=x.dtype)
    deltas = torch.empty(n, stop - start, steps - 1, device=x.device, dtype=x.dtype)
    with cpu_threads(1 if x.device.type == "cpu" and n * steps * steps < SMALL_TRIAL_WORK else None):
        for row, s in enumerate(types[start:stop].tolist()):
            xs = x[s]
            value = w[:, s] @ xs
            delta = r[start + row, :-1] + gamma * value[:, 1:] - value[:, :-1]
            scaled = torch.where(delta > 0, alpha_plus, alpha_minus) * delta / norm[:, s]
            w[:, s] += torch.bmm(scaled.unsqueeze(1), L).squeeze(1) @ xs.T
            V[:, row] = value
            deltas[:, row] = delta
    return V, deltas, w


def simulate_group(trials: list[Trials], params: list[dict], dt: float, w0: list, start: int = 0,
                   stop: int | None = None, alpha_exponent: float | None = None) -> list[tuple]:
    """`simulate` for several seeds of one schedule at once (each its own trials and predictors,
    the same features): one (V, deltas, w) per seed, equal to `simulate` on it to float rounding."""
    x = trials[0].x
    stop = trials[0].n_trials if stop is None else stop
    n_seeds, steps = len(trials), x.shape[1]
    rates = [per_step_rates(p, dt, x.device, x.dtype, alpha_exponent) for p in params]
    n = rates[0]["gamma"].shape[0]
    w = torch.stack([torch.zeros(n, x.shape[0], steps, device=x.device, dtype=x.dtype) if w is None
                     else w.to(x.device, x.dtype).clone() for w in w0])  # (S, N, types, steps)
    L = torch.stack([trace_matrix(r["lambda"], steps) for r in rates])  # (S, N, steps-1, steps)
    norm = torch.stack([trace_norm(Ls, x) for Ls in L])  # (S, N, types, steps-1)
    gamma, alpha_plus, alpha_minus = (torch.stack([r[k] for r in rates]).unsqueeze(2)
                                      for k in ("gamma", "alpha_plus", "alpha_minus"))
    types = torch.stack([t.types[start:stop] for t in trials], dim=1)  # (rows, S)
    r = torch.stack([t.r[start:stop] for t in trials])  # (S, rows, steps)
    seeds = torch.arange(n_seeds, device=x.device)
    V = torch.empty(n_seeds, n, stop - start, steps, device=x.device, dtype=x.dtype)
    deltas = torch.empty(n_seeds, n, stop - start, steps - 1, device=x.device, dtype=x.dtype)
    small = x.device.type == "cpu" and n_seeds * n * steps * steps < SMALL_TRIAL_WORK
    with cpu_threads(1 if small else None):
        for row in range(stop - start):
            s = types[row]
            xs = x[s]  # (S, features, steps)
            value = torch.bmm(w[seeds, :, s], xs)  # (S, N, steps)
            delta = r[:, row, None, :-1] + gamma * value[..., 1:] - value[..., :-1]
            scaled = torch.where(delta > 0, alpha_plus, alpha_minus) * delta / norm[seeds, :, s]
            w[seeds, :, s] += torch.bmm(torch.matmul(scaled.unsqueeze(2), L).squeeze(2), xs.transpose(1, 2))
            V[:, :, row] = value
            deltas[:, :, row] = delta
    return [(V[k], deltas[k], w[k]) for k in range(n_seeds)]


@contextmanager
def cpu_threads(threads: int | None):
    """Run the block with `threads` torch CPU threads (None: leave them), then restore."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def simulate_loop(trials: Trials, params: dict, dt: float, w0=None, start: int = 0,
                  stop: int | None = None, alpha_exponent: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same rule, one predictor, trial and step at a time, in numpy float64."""
    x = trials.x.cpu().double().numpy()
    r = trials.r.cpu().double().numpy()
    types = trials.types.cpu().numpy()
    stop = trials.n_trials if stop is None else stop
    p = {k: params[k].cpu().double().numpy() for k in ("alpha_plus", "alpha_minus", "gamma", "lambda")}
    n, n_types, steps = len(p["gamma"]), x.shape[0], x.shape[1]
    V = np.zeros((n, stop - start, steps))
    deltas = np.zeros((n, stop - start, steps - 1))
    w_all = np.zeros((n, n_types, steps)) if w0 is None else np.array(w0, dtype=np.float64)
    for i in range(n):
        a_plus, a_minus = p["alpha_plus"][i] ** (alpha_exponent or dt), p["alpha_minus"][i] ** (alpha_exponent or dt)
        gamma, lam = p["gamma"][i] ** dt, p["lambda"][i] ** dt
        w = w_all[i]
        for row, trial in enumerate(range(start, stop)):
            s = types[trial]
            value = np.array([w[s] @ x[s][:, t] for t in range(steps)])
            e = np.zeros(steps)
            dw = np.zeros(steps)
            for t in range(steps - 1):
                e = lam * e + x[s][:, t]
                delta = r[trial, t] + gamma * value[t + 1] - value[t]
                rate = a_plus if delta > 0 else a_minus
                dw += rate * delta * e / max(1.0, e.sum())
                deltas[i, row, t] = delta
            w[s] += dw
            V[i, row] = value
    return V, deltas, w_all


# -- files ---------------------------------------------------------------------------------------


def save_snapshot(fh, w: torch.Tensor, params: dict, trial: int, dt: float, seed: int) -> None:
    np.savez_compressed(
        fh, w=w.cpu().numpy(), trial=np.int64(trial), dt=np.float64(dt), seed=np.int64(seed),
        **{k: params[k].cpu().numpy() for k in PARAM_KEYS},
    )


def load_snapshot(path: Path) -> dict:
    """A checkpoint as a dict of numpy values: w (N, types, steps), trial (trials done), dt, seed,
    and the per-predictor alpha_plus, alpha_minus, tau, gamma, lambda (N,)."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# -- the backend ---------------------------------------------------------------------------------


def chunk_metrics(V: torch.Tensor, deltas: torch.Tensor, types: torch.Tensor, cue_index: list[int],
                  reward_index: list[int | None]) -> dict[str, float]:
    """Means over predictors and the chunk's trials: value at the cue, value at the (first,
    nominal) reward step, |TD error|; and the spread of cue values across predictors."""
    rows = torch.arange(types.shape[0], device=types.device)
    cue = V[:, rows, torch.tensor(cue_index, device=types.device)[types]]
    out = {
        "perf/cue_value_mean": cue.mean().item(),
        "perf/cue_value_sd_across_predictors": cue.mean(dim=1).std(unbiased=False).item(),
        "perf/abs_td_error_mean": deltas.abs().mean().item(),
    }
    rewarded = [i for i, k in enumerate(reward_index) if k is not None]
    if rewarded:
        index = torch.tensor([k if k is not None else 0 for k in reward_index], device=types.device)
        keep = torch.isin(types, torch.tensor(rewarded, device=types.device))
        if keep.any():
            out["perf/reward_value_mean"] = V[:, rows[keep], index[types[keep]]].mean().item()
    return out


def params_seed(seed: int) -> int:
    """The predictors' parameters come from their own stream, not the trials' stream."""
    return int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])


def _spread(spread) -> str:
    """A distributional-TD hyper-parameter as drawn per predictor."""
    if spread is None:  # a model file that leaves it to the trainer
        return "at the trainer's default"
    if isinstance(spread, dict):
        return f"drawn uniformly from [{spread['low']:g}, {spread['high']:g}] per predictor"
    if isinstance(spread, list):
        return f"drawn per predictor from the values {and_list([f'{v:g}' for v in spread])}"
    return f"{spread:g} for all predictors"



class _Seed:
    """One run's side of training: its trials and predictors, its metrics and checkpoints per
    chunk of `checkpoint_every` trials, and its simulation file at the end."""

    def __init__(self, run: RunConfig, log: RunLog):
        self.run, self.log = run, log
        device = resolve_device(run.device)
        log.started(device=device, versions=package_versions(VERSIONED))
        config = run.config
        self.schedule = Schedule.model_validate(config["task"]["schedule"])
        self.n_trials = int(config["budget"]["trials"])
        self.every = int(config["budget"].get("checkpoint_every") or self.n_trials)
        self.trials = build(self.schedule, self.n_trials, run.seed, device=device)
        self.params = draw_params(config["model"]["hyper"], None, torch.Generator().manual_seed(params_seed(run.seed)))
        self.exponent = Hyper.model_validate(config["model"]["hyper"]).alpha_exponent
        self.resumed = load_snapshot(Path(run.resume_from)) if run.resume_from else None
        self.reward_index = nominal_reward_index(self.schedule)
        self.V_parts, self.delta_parts = [], []

    def chunks(self):
        return [(start, min(start + self.every, self.n_trials)) for start in range(0, self.n_trials, self.every)]

    def w0(self, w, start: int):
        """The weights a chunk starts from: a resumed attempt recomputes the chunks its previous
        attempt logged (so that simulation.npz is whole), then continues from that attempt's saved weights."""
        if self.resumed is not None and start == int(self.resumed["trial"]) and start > 0:
            return torch.as_tensor(self.resumed["w"], device=self.trials.x.device, dtype=self.trials.x.dtype)
        return w

    def chunk_done(self, start: int, stop: int, V, deltas, w, began: float) -> bool:
        """Keep the chunk; log and checkpoint it unless a previous attempt did. True when asked to stop."""
        self.V_parts.append(V.cpu().numpy())
        self.delta_parts.append(deltas.cpu().numpy())
        if self.resumed is not None and stop <= int(self.resumed["trial"]):
            return False
        metrics = chunk_metrics(V, deltas, self.trials.types[start:stop], self.trials.cue_index, self.reward_index)
        metrics["train/trials_per_s"] = (stop - start) / max(time.perf_counter() - began, 1e-9)
        self.log.metrics(stop, metrics)

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file handle: np.savez would append .npz to the name
                save_snapshot(fh, w, self.params, stop, self.schedule.dt, self.run.seed)

        self.log.checkpoint(stop, save)
        return self.log.stop_requested

    def write_simulation(self, w) -> None:
        trials = self.trials
        arrays = {
            "V": np.concatenate(self.V_parts, axis=1), "deltas": np.concatenate(self.delta_parts, axis=1),
            "r": trials.r.cpu().numpy(), "types": trials.types.cpu().numpy(), "T": trials.T.cpu().numpy(),
            "x": trials.x.cpu().numpy(), "w": w.cpu().numpy(), "cue_index": np.array(trials.cue_index),
            "dt": np.float64(self.schedule.dt), **{k: self.params[k].numpy() for k in PARAM_KEYS},
            "alpha_exponent": np.float64(self.exponent or self.schedule.dt),  # what alpha was raised to per step
        }

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

        atomic.write_with(Path(self.run.run_dir) / SIMULATION, write, suffix=".npz")
        self.log.artifact("simulation", SIMULATION)


class DistributionalTDBackend:
    name = "distributional-td"

    def methods(self, model: dict) -> str:
        """The methods' sentence on the predictors: how many, and how their rates were drawn."""
        hyper = model.get("hyper", {})
        alpha = hyper.get("alpha")
        rates = (f"a symmetric learning rate {alpha:g}" if isinstance(alpha, int | float)
                 else f"asymmetric learning rates whose asymmetry tau = alpha+/(alpha+ + alpha-) was {_spread(alpha)}")
        if hyper.get("alpha_per") == "step":
            rates += " (rates per step, used as drawn)"
        predictors = f"{hyper['predictors']} predictors" if "predictors" in hyper else "predictors"
        return (f"The model {model['name']} ({model.get('algo', model.get('engine', ''))}) had {predictors} "
                f"learning by TD(lambda) with {rates}; discount gamma (per second) {_spread(hyper.get('gamma'))}; "
                f"trace decay lambda (per second) {_spread(hyper.get('lambda'))}.")

    def train(self, run: RunConfig, log: RunLog) -> None:
        seed = _Seed(run, log)
        w = None
        for start, stop in seed.chunks():
            began = time.perf_counter()
            V, deltas, w = simulate(seed.trials, seed.params, seed.schedule.dt, w0=seed.w0(w, start), start=start,
                                    stop=stop, alpha_exponent=seed.exponent)
            if seed.chunk_done(start, stop, V, deltas, w, began):
                return  # asked to stop, with this checkpoint; the resumed attempt writes simulation.npz
        seed.write_simulation(w)

    def train_group(self, runs: list[RunConfig], logs: list[RunLog]) -> None:
        """Seeds of one config in one batched simulation (`simulate_group`): each draws its own
        trials and predictors and logs, checkpoints and writes its simulation as alone."""
        seeds = [_Seed(run, log) for run, log in zip(runs, logs)]
        ws = [None] * len(seeds)
        for start, stop in seeds[0].chunks():
            began = time.perf_counter()
            out = simulate_group([s.trials for s in seeds], [s.params for s in seeds], seeds[0].schedule.dt,
                                 [s.w0(w, start) for s, w in zip(seeds, ws)], start, stop, seeds[0].exponent)
            ws = [w for _, _, w in out]
            stopped = [s.chunk_done(start, stop, V, deltas, w, began) for s, (V, deltas, w) in zip(seeds, out)]
            if any(stopped):
                return
        for seed, w in zip(seeds, ws):
            seed.write_simulation(w)
            seed.log.finish("completed")

    def evaluate(self, config: dict, checkpoint: Path, protocol: dict, device: str = "cpu"):
        """A snapshot's weights, frozen, on the protocol's own fresh trials: how well they predict."""
        device = resolve_device(device)
        snap = load_snapshot(checkpoint)
        schedule = Schedule.model_validate(config["task"]["schedule"])
        trials = build(schedule, int(protocol["trials"]), int(protocol["seed"]), device=device)
        frozen = {k: torch.as_tensor(snap[k]) for k in PARAM_KEYS}
        frozen["alpha_plus"] = torch.zeros_like(frozen["alpha_plus"])  # no learning while measured
        frozen["alpha_minus"] = torch.zeros_like(frozen["alpha_minus"])
        w0 = torch.as_tensor(snap["w"], device=device, dtype=trials.x.dtype)
        V, deltas, _ = simulate(trials, frozen, schedule.dt, w0=w0)
        measured = chunk_metrics(V, deltas, trials.types, trials.cue_index, nominal_reward_index(schedule))
        metrics = {k.removeprefix("perf/"): v for k, v in measured.items()}
        metrics["trials"] = int(protocol["trials"])
        return metrics, []  # no per-trial choices to store: the model takes no actions

    def load_policy(self, config: dict, checkpoint: Path, device: str):
        from neurorl_cli.errors import UserError

        raise UserError(
            "distributional-td predicts values and takes no actions: `neurorl watch` shows its "
            "value/TD-error animation instead, and load_snapshot reads its checkpoints"
        )
