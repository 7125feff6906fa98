"""A methods paragraph written from what the registry holds about an experiment."""

from __future__ import annotations

import json
from collections.abc import Iterable


def _value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _pairs(mapping: dict) -> str:
    return ", ".join(f"{k} = {_value(v)}" for k, v in sorted(mapping.items())) or "none"


def _seeds(seeds: list[int]) -> str:
    if not seeds:
        return "no seeds"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})"
    return f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))})"


def _versions(version_sets: Iterable[dict]) -> str:
    """Package versions; where runs differ, every version seen is listed."""
    seen: dict[str, set[str]] = {}
    for versions in version_sets:
        for name, version in (versions or {}).items():
            if version is not None:
                seen.setdefault(name, set()).add(str(version))
    return ", ".join(f"{name} {' / '.join(sorted(v))}" for name, v in sorted(seen.items())) or "not recorded"


def _budget(budget: dict) -> str:
    if budget.get("steps") is not None:
        return f"{budget['steps']} agent steps, with a checkpoint every {budget['checkpoint_every']} steps"
    return f"{budget['trials']} trials, with a checkpoint every {budget['checkpoint_every']} trials"


def _spread(spread) -> str:
    """A distributional-TD hyper-parameter as drawn per predictor."""
    if isinstance(spread, dict):
        return f"drawn uniformly from [{spread['low']:g}, {spread['high']:g}] per predictor"
    if isinstance(spread, list):
        return f"drawn per predictor from {{{', '.join(f'{v:g}' for v in spread)}}}"
    return f"{spread:g} for all predictors"


def _size(size: dict) -> str:
    if size["kind"] == "fixed":
        return f"{size['value']:g}"
    if size["kind"] == "normal":
        return f"~Normal({size['mean']:g}, {size['sd']:g})"
    pairs = ", ".join(f"{v:g} (p {p:g})" for v, p in zip(size["values"], size["probabilities"]))
    return f"one of {pairs}"


def _trial_type(i: int, trial_type: dict) -> str:
    rewards = [
        f"{_size(r['size'])} at {r['time']:g} s"
        + (f" with probability {r['probability']:g}" if r.get("probability", 1.0) != 1.0 else "")
        + (f" (time jitter {r['jitter']:g})" if r.get("jitter") else "")
        for r in trial_type.get("rewards", [])
    ]
    name = f" ({trial_type['name']})" if trial_type.get("name") else ""
    return (f"type {i}{name}, probability {trial_type['probability']:g}: cue at {trial_type['cue_time']:g} s, "
            f"reward {'; '.join(rewards) if rewards else 'none'}")


def _conditioning_setup(task: dict, model: dict) -> list[str]:
    schedule, hyper = task["schedule"], model.get("hyper", {})
    types = schedule["trial_types"]
    alpha = hyper.get("alpha")
    rates = (f"a symmetric learning rate {alpha:g}" if isinstance(alpha, int | float)
             else f"asymmetric learning rates whose asymmetry tau = alpha+/(alpha+ + alpha-) was {_spread(alpha)}")
    return [
        f"Value predictors were trained on the conditioning task {task['name']}: trials of {schedule['duration']:g} s "
        f"in steps of {schedule['dt']:g} s, cues coded as a complete serial compound, {len(types)} trial type(s) "
        f"({'; '.join(_trial_type(i, t) for i, t in enumerate(types))}).",
        f"The model {model['name']} ({model.get('algo', model.get('engine', ''))}) had {hyper.get('predictors', '?')} "
        f"predictors learning by TD(lambda) with {rates}; discount gamma (per second) {_spread(hyper.get('gamma'))}; "
        f"trace decay lambda (per second) {_spread(hyper.get('lambda'))}.",
    ]


def methods_paragraph(config: dict, seeds: list[int], versions: Iterable[dict]) -> str:
    """Plain text; `config` is an experiment's frozen config, `versions` its runs' `versions`."""
    task, model, budget = config["task"], config["model"], config["budget"]
    setup = {"conditioning": _conditioning_setup, "doom": _doom_setup, "firefly": _firefly_setup}
    parts = setup.get(task.get("family"), _neurogym_setup)(task, model)
    parts.append(f"Each run lasted {_budget(budget)}, for {_seeds(sorted(seeds))}.")
    if config.get("overrides"):
        parts.append(f"Settings changed from the catalog: {_pairs(config['overrides'])}.")
    protocols = task.get("protocols", {})
    if protocols:
        described = "; ".join(
            f"{name}: {_protocol_size(p)}, best checkpoint by {p.get('select', '?')}"
            + (f" ({_pairs(p['kwargs'])})" if p.get("kwargs") else "")
            for name, p in sorted(protocols.items())
        )
        parts.append(f"Checkpoints were evaluated under the protocols {described}.")
    parts.append(f"Software: {_versions(versions)}.")
    return " ".join(parts)


def _protocol_size(protocol: dict) -> str:
    if protocol.get("episodes") is not None:
        return f"{protocol['episodes']} episodes"
    return f"{protocol.get('trials', '?')} trials"


def _model_sentence(model: dict, what: str) -> str:
    return (f"The model {model['name']} ({model.get('algo', model.get('engine', ''))}{what}) was trained with "
            f"hyper-parameters {_pairs(model.get('hyper', {}))}.")


def _doom_setup(task: dict, model: dict) -> list[str]:
    encoder = model.get("encoder")
    if isinstance(encoder, dict):  # an sb3 model's [encoder] table: its name and settings
        encoder = f"{encoder['name']} ({_pairs({k: v for k, v in encoder.items() if k != 'name'})})"
    encoder = f", encoder {encoder}" if encoder else ""
    return [
        f"Agents were trained on the ViZDoom task {task['name']} (scenario {task['scenario']}, "
        f"{task['width']}x{task['height']} RGB observations, frame skip {task['frame_skip']}, turn x move actions"
        + ("; +1 whenever health rose was added to the training reward and reported apart from the true reward"
           if task.get("shape_reward") else "") + ").",
        _model_sentence(model, f"{encoder}, engine {model.get('engine', '?')}"),
    ]


def _firefly_setup(task: dict, model: dict) -> list[str]:
    return [
        f"Agents were trained on the firefly navigation task {task['name']} (dt 0.1 s, at most 35 steps; "
        f"environment settings: {_pairs(task.get('env', {}))}).",
        _model_sentence(model, ", native recurrent TD3 with the modularity study's three training phases"),
    ]


def _neurogym_setup(task: dict, model: dict) -> list[str]:
    env = task.get("env", {})
    wrappers = [w["name"] + (f" ({_pairs(w['kwargs'])})" if w.get("kwargs") else "") for w in env.get("wrappers", [])]
    return [
        f"Agents were trained on the task {task['name']} "
        f"(environment {env.get('id') or env.get('entry_point')} with {_pairs(env.get('kwargs', {}))}; "
        f"wrappers: {', '.join(wrappers) or 'none'}"
        + (f"; episodes of {env['trials_per_episode']} trials" if env.get("trials_per_episode") else "")
        + ").",
        f"The model {model['name']} ({model.get('algo', model.get('engine', ''))}, policy {model.get('policy', 'n/a')}; "
        f"policy settings: {_pairs(model.get('policy_kwargs', {}))}"
        + (f"; {model['n_envs']} parallel environments" if model.get("n_envs") else "")
        + f") was trained with hyper-parameters {_pairs(model.get('hyper', {}))}.",
    ]
