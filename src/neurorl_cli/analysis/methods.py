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


def methods_paragraph(config: dict, seeds: list[int], versions: Iterable[dict]) -> str:
    """Plain text; `config` is an experiment's frozen config, `versions` its runs' `versions`."""
    task, model, budget = config["task"], config["model"], config["budget"]
    env = task.get("env", {})
    wrappers = [w["name"] + (f" ({_pairs(w['kwargs'])})" if w.get("kwargs") else "") for w in env.get("wrappers", [])]
    parts = [
        f"Agents were trained on the task {task['name']} "
        f"(environment {env.get('id') or env.get('entry_point')} with {_pairs(env.get('kwargs', {}))}; "
        f"wrappers: {', '.join(wrappers) or 'none'}"
        + (f"; episodes of {env['trials_per_episode']} trials" if env.get("trials_per_episode") else "")
        + ").",
        f"The model {model['name']} ({model.get('algo', model.get('engine', ''))}, policy {model.get('policy', 'n/a')}; "
        f"policy settings: {_pairs(model.get('policy_kwargs', {}))}"
        + (f"; {model['n_envs']} parallel environments" if model.get("n_envs") else "")
        + f") was trained with hyper-parameters {_pairs(model.get('hyper', {}))}.",
        f"Each run lasted {budget['steps']} agent steps, with a checkpoint every {budget['checkpoint_every']} steps, "
        f"for {_seeds(sorted(seeds))}.",
    ]
    if config.get("overrides"):
        parts.append(f"Settings changed from the catalog: {_pairs(config['overrides'])}.")
    protocols = task.get("protocols", {})
    if protocols:
        described = "; ".join(
            f"{name}: {p.get('trials', '?')} trials, best checkpoint by {p.get('select', '?')}" for name, p in sorted(protocols.items())
        )
        parts.append(f"Checkpoints were evaluated under the protocols {described}.")
    parts.append(f"Software: {_versions(versions)}.")
    return " ".join(parts)
