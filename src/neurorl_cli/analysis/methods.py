"""A methods paragraph written from what the registry holds about an experiment.

It is meant to be pasted into a paper, so it is prose throughout: values are written as a
reader would (never as Python or JSON), the evaluation is described by what was actually
run (the stored evaluation rows), and only the software that shaped the results is named.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

# Distribution names as a paper writes them; the lookup keys are normalised (PEP 503).
_DISPLAY = {"neurorl-cli": "neurorl", "torch": "PyTorch", "stable-baselines3": "Stable-Baselines3",
            "sb3-contrib": "sb3-contrib", "sample-factory": "Sample Factory", "neurogym": "NeuroGym",
            "vizdoom": "ViZDoom"}
_TASK_LIBRARIES = {"neurogym": ["neurogym"], "doom": ["vizdoom"]}  # other families' environments are neurorl's own


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "unset"
    if isinstance(value, dict):
        return f"({_pairs(value)})"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _pairs(mapping: dict) -> str:
    return ", ".join(f"{k} = {_value(v)}" for k, v in sorted(mapping.items()))


def _with(mapping: dict, empty: str = "its default settings") -> str:
    return _pairs(mapping) if mapping else empty


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _seeds(seeds: list[int]) -> str:
    if not seeds:
        return "no seeds"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})"
    return f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))})"


# ----------------------------------------------------------------------------- software


def _libraries(config: dict) -> list[str]:
    """neurorl, PyTorch, and the libraries of the engine and of the task's environments."""
    model = config["model"]
    engine = {"sb3": ["stable-baselines3"], "sample-factory": ["sample-factory"]}.get(model.get("engine"), [])
    if model.get("algo") == "RecurrentPPO":
        engine = ["sb3-contrib", *engine]
    return ["neurorl-cli", "torch", *engine, *_TASK_LIBRARIES.get(config["task"].get("family", "neurogym"), [])]


def _versions(config: dict, version_sets: Iterable[dict]) -> str:
    """The libraries' versions; where runs differ, every version seen is listed. Every installed
    package stays in the run's record (`neurorl runs show RUN --json`)."""
    wanted = _libraries(config)
    seen: dict[str, set[str]] = {}
    for versions in version_sets:
        versions = versions or {}
        # A worker records every installed package under "packages"; the launcher records
        # neurorl's own version at the top as "neurorl" before the run starts.
        found = {_normal(k): v for k, v in versions.items() if isinstance(v, str)}
        found.setdefault("neurorl-cli", found.get("neurorl"))
        found.update({_normal(k): v for k, v in (versions.get("packages") or {}).items()})
        for name in wanted:
            if isinstance(found.get(name), str):
                seen.setdefault(name, set()).add(found[name])
    if not seen:
        return "Software versions were not recorded."
    named = [f"{_DISPLAY[name]} {' / '.join(sorted(seen[name]))}" + (" (the runs differed)" if len(seen[name]) > 1 else "")
             for name in wanted if name in seen]
    return f"Software: {', '.join(named)}."


# ----------------------------------------------------------------------------- evaluation


def _amount(trials: int, episodes, family: str) -> str:
    if family == "doom":  # a Doom protocol counts whole episodes (its rows are episodes)
        return _plural(trials, "episode")
    return _plural(trials, "trial") + ("" if _missing(episodes) else f" ({_plural(int(episodes), 'episode')})")


def _counts(rows: list[dict], family: str) -> str:
    """How much each checkpoint was evaluated on, saying so when checkpoints differed."""
    groups = Counter((int(r["trials"]), None if _missing(r.get("episodes")) else int(r["episodes"])) for r in rows)
    if len(groups) == 1:
        (trials, episodes), = groups
        return _amount(trials, episodes, family) + (" each" if len(rows) > 1 else "")
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or 0))
    return _and([f"{_amount(t, e, family)} for {_plural(k, 'checkpoint')}" for (t, e), k in ordered])


def _protocol_name(name: str, protocol: dict) -> str:
    settings = [_pairs(protocol["kwargs"])] if protocol.get("kwargs") else []
    if protocol.get("actions") == "sampled":
        settings.append("actions sampled from the policy")
    return name + (f" ({'; '.join(settings)})" if settings else "")


def _selection(protocol: dict, rows: list[dict]) -> str:
    select = protocol.get("select") or rows[0]["select"]
    higher = protocol["mode"] != "min" if "mode" in protocol else bool(rows[0].get("higher_is_better", True))
    return f"the {'highest' if higher else 'lowest'} {select}"


def _evaluation(task: dict, rows: list[dict]) -> str:
    if not rows:
        return "No checkpoint had been evaluated."
    family = task.get("family", "neurogym")
    defined = task.get("protocols", {})
    order = list(defined)
    by_protocol: dict[str, list[dict]] = {}
    for row in rows:
        by_protocol.setdefault(row["protocol"], []).append(row)
    names = sorted(by_protocol, key=lambda p: (order.index(p) if p in order else len(order), p))
    described = {p: (_protocol_name(p, defined.get(p, {})), _counts(by_protocol[p], family),
                     _selection(defined.get(p, {}), by_protocol[p])) for p in names}
    if all("checkpoint_id" in r for r in rows):
        checkpoints = len({r["checkpoint_id"] for r in rows})
    else:  # one row per checkpoint and protocol
        checkpoints = max(len(group) for group in by_protocol.values())
    lead = f"{_plural(checkpoints, 'checkpoint')} {'was' if checkpoints == 1 else 'were'} evaluated"
    if len({(counts, selection) for _, counts, selection in described.values()}) == 1:
        _, counts, selection = described[names[0]]
        protocols = _and([label for label, _, _ in described.values()])
        return (f"{lead} on {counts} under the protocol{'s' if len(names) > 1 else ''} {protocols}; "
                f"the best checkpoint of each seed is the one with {selection}.")
    each = "; ".join(f"{label} on {counts}, the best checkpoint by {selection}" for label, counts, selection in described.values())
    return f"{lead} under the protocol{'s' if len(names) > 1 else ''} {each}."


# ----------------------------------------------------------------------------- setup


def _budget(budget: dict) -> str:
    if budget.get("steps") is not None:
        return f"{budget['steps']:,} agent steps, with a checkpoint every {budget['checkpoint_every']:,} steps"
    return f"{budget['trials']:,} trials, with a checkpoint every {budget['checkpoint_every']:,} trials"


def _spread(spread) -> str:
    """A distributional-TD hyper-parameter as drawn per predictor."""
    if spread is None:  # a model file that leaves it to the trainer
        return "at the trainer's default"
    if isinstance(spread, dict):
        return f"drawn uniformly from [{spread['low']:g}, {spread['high']:g}] per predictor"
    if isinstance(spread, list):
        return f"drawn per predictor from the values {_and([f'{v:g}' for v in spread])}"
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
            f"{'reward ' + '; '.join(rewards) if rewards else 'no reward'}")


def _conditioning_setup(task: dict, model: dict) -> list[str]:
    schedule, hyper = task["schedule"], model.get("hyper", {})
    types = schedule["trial_types"]
    alpha = hyper.get("alpha")
    rates = (f"a symmetric learning rate {alpha:g}" if isinstance(alpha, int | float)
             else f"asymmetric learning rates whose asymmetry tau = alpha+/(alpha+ + alpha-) was {_spread(alpha)}")
    predictors = f"{hyper['predictors']} predictors" if "predictors" in hyper else "predictors"
    return [
        f"Value predictors were trained on the conditioning task {task['name']}: trials of {schedule['duration']:g} s "
        f"in steps of {schedule['dt']:g} s, cues coded as a complete serial compound, {_plural(len(types), 'trial type')} "
        f"({'; '.join(_trial_type(i, t) for i, t in enumerate(types))}).",
        f"The model {model['name']} ({model.get('algo', model.get('engine', ''))}) had {predictors} "
        f"learning by TD(lambda) with {rates}; discount gamma (per second) {_spread(hyper.get('gamma'))}; "
        f"trace decay lambda (per second) {_spread(hyper.get('lambda'))}.",
    ]


def _engine(model: dict) -> str:
    """The model's algorithm, the library that trains it, and its network."""
    engine = model.get("engine")
    if engine == "sb3":
        library = "sb3-contrib" if model.get("algo") == "RecurrentPPO" else "Stable-Baselines3"
        encoder = model.get("encoder")
        parts = [f"{model['algo']} from {library}", f"policy {model['policy']}"
                 + (f" with {_pairs(model['policy_kwargs'])}" if model.get("policy_kwargs") else "")]
        if encoder:  # a retinal encoder as the features extractor: its name and settings
            settings = {k: v for k, v in encoder.items() if k != "name"}
            parts.append(f"encoder {encoder['name']}" + (f" ({_pairs(settings)})" if settings else ""))
        parts.append(_plural(model.get("n_envs", 1), "parallel environment"))
        return "; ".join(parts)
    if engine == "sample-factory":
        encoder = f"encoder {model['encoder']}" if model.get("encoder") else "its encoder"
        return f"{model.get('algo', 'APPO')} from Sample Factory, {encoder} with a recurrent core"
    return f"{model['algo']}, neurorl's own torch trainer"


def _model_sentence(model: dict, more: str = "") -> str:
    hyper = model.get("hyper", {})
    return (f"The model {model['name']} ({_engine(model)}{more}) was trained with "
            + (f"hyper-parameters {_pairs(hyper)}." if hyper else "its default hyper-parameters."))


def _doom_setup(task: dict, model: dict) -> list[str]:
    return [
        f"Agents were trained on the ViZDoom task {task['name']} (scenario {task['scenario']}, "
        f"{task['width']}x{task['height']} RGB observations, frame skip {task['frame_skip']}, turn x move actions"
        + ("; +1 whenever health rose was added to the training reward and reported apart from the true reward"
           if task.get("shape_reward") else "") + ").",
        _model_sentence(model),
    ]


def _firefly_setup(task: dict, model: dict) -> list[str]:
    return [
        f"Agents were trained on the firefly navigation task {task['name']} (dt 0.1 s, at most 35 steps; "
        f"environment settings: {_with(task.get('env', {}), 'the defaults')}).",
        _model_sentence(model, ", in the modularity study's three training phases"),
    ]


_META_RL = {
    "harlow": "Harlow's learning-to-learn task (Wang et al. 2018): each episode shows two objects, one of them "
              "rewarded, over several trials with the sides balanced",
    "two-step": "the two-step task (Daw et al. 2011) as in Wang et al. 2018: a first-stage choice leads by a common "
                "or rare transition to a second-stage state whose reward probability switches",
}


def _metarl_setup(task: dict, model: dict) -> list[str]:
    return [
        f"Agents were trained on the meta-RL task {task['name']}, {_META_RL[task['kind']]} "
        f"(environment settings: {_with(task.get('env', {}), 'the defaults')}).",
        _model_sentence(model),
    ]


def _neurogym_setup(task: dict, model: dict) -> list[str]:
    env = task.get("env", {})
    wrappers = [w["name"] + (f" ({_pairs(w['kwargs'])})" if w.get("kwargs") else "") for w in env.get("wrappers", [])]
    return [
        f"Agents were trained on the NeuroGym task {task['name']} "
        f"(environment {env.get('id') or env.get('entry_point')} with {_with(env.get('kwargs', {}))}; "
        + (f"wrappers {_and(wrappers)}" if wrappers else "no wrappers")
        + (f"; episodes of {env['trials_per_episode']} trials" if env.get("trials_per_episode") else "")
        + ").",
        _model_sentence(model),
    ]


_SETUP = {"conditioning": _conditioning_setup, "doom": _doom_setup, "firefly": _firefly_setup,
          "meta-rl": _metarl_setup, "neurogym": _neurogym_setup}


def methods_paragraph(config: dict, seeds: list[int], versions: Iterable[dict], evaluations: Iterable[dict] = ()) -> str:
    """Plain text. `config` is an experiment's frozen config, `versions` its runs' `versions`, and
    `evaluations` its rows of `api.Registry.evaluations` (as dicts: protocol, trials, select, ...)."""
    task, model, budget = config["task"], config["model"], config["budget"]
    parts = _SETUP[task.get("family", "neurogym")](task, model)
    parts.append(f"Each run lasted {_budget(budget)}, for {_seeds(sorted(seeds))}.")
    if config.get("overrides"):
        parts.append(f"Settings changed from the catalog: {_pairs(config['overrides'])}.")
    parts.append(_evaluation(task, list(evaluations)))
    parts.append(_versions(config, versions))
    return " ".join(parts)
