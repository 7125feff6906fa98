"""A methods paragraph written from what the registry holds about an experiment.

It is meant to be pasted into a paper, so it is prose throughout: values are written as a
reader would (never as Python or JSON), the evaluation is described by what was actually
run (the stored evaluation rows), and only the software that shaped the results is named.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from neurorl_cli import plugins
from neurorl_cli.analysis.prose import and_list, missing, pairs, plural

# The distributions every run uses, as a paper writes them (keys normalised as PEP 503); the
# engine and the task's family name their own libraries.
_CORE = {"neurorl-cli": "neurorl", "torch": "PyTorch"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _seeds(seeds: list[int]) -> str:
    if not seeds:
        return "no seeds"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})"
    return f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))})"


# ----------------------------------------------------------------------------- software


def _libraries(config: dict) -> dict[str, str]:
    """neurorl, PyTorch, and the libraries of the engine and of the task's environments, each with
    the name a paper gives it."""
    engine, family = plugins.engine_of(config), plugins.family_of(config)
    return {**_CORE, **engine.libraries(config["model"]), **family.libraries}


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
    named = [f"{wanted[name]} {' / '.join(sorted(seen[name]))}" + (" (the runs differed)" if len(seen[name]) > 1 else "")
             for name in wanted if name in seen]
    return f"Software: {', '.join(named)}."


# ----------------------------------------------------------------------------- evaluation


def _amount(trials: int, episodes, unit: str) -> str:
    if unit == "episode":  # a protocol of whole episodes (its rows are episodes)
        return plural(trials, "episode")
    return plural(trials, "trial") + ("" if missing(episodes) else f" ({plural(int(episodes), 'episode')})")


def _counts(rows: list[dict], unit: str) -> str:
    """How much each checkpoint was evaluated on, saying so when checkpoints differed."""
    groups = Counter((int(r["trials"]), None if missing(r.get("episodes")) else int(r["episodes"])) for r in rows)
    if len(groups) == 1:
        (trials, episodes), = groups
        return _amount(trials, episodes, unit) + (" each" if len(rows) > 1 else "")
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or 0))
    return and_list([f"{_amount(t, e, unit)} for {plural(k, 'checkpoint')}" for (t, e), k in ordered])


def _protocol_name(name: str, protocol: dict) -> str:
    settings = [pairs(protocol["kwargs"])] if protocol.get("kwargs") else []
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
    unit = plugins.family_of(task).evaluation_unit
    defined = task.get("protocols", {})
    order = list(defined)
    by_protocol: dict[str, list[dict]] = {}
    for row in rows:
        by_protocol.setdefault(row["protocol"], []).append(row)
    names = sorted(by_protocol, key=lambda p: (order.index(p) if p in order else len(order), p))
    described = {p: (_protocol_name(p, defined.get(p, {})), _counts(by_protocol[p], unit),
                     _selection(defined.get(p, {}), by_protocol[p])) for p in names}
    if all("checkpoint_id" in r for r in rows):
        checkpoints = len({r["checkpoint_id"] for r in rows})
    else:  # one row per checkpoint and protocol
        checkpoints = max(len(group) for group in by_protocol.values())
    lead = f"{plural(checkpoints, 'checkpoint')} {'was' if checkpoints == 1 else 'were'} evaluated"
    if len({(counts, selection) for _, counts, selection in described.values()}) == 1:
        _, counts, selection = described[names[0]]
        protocols = and_list([label for label, _, _ in described.values()])
        return (f"{lead} on {counts} under the protocol{'s' if len(names) > 1 else ''} {protocols}; "
                f"the best checkpoint of each seed is the one with {selection}.")
    each = "; ".join(f"{label} on {counts}, the best checkpoint by {selection}" for label, counts, selection in described.values())
    return f"{lead} under the protocol{'s' if len(names) > 1 else ''} {each}."


# ----------------------------------------------------------------------------- setup


def _budget(budget: dict) -> str:
    if budget.get("steps") is not None:
        return f"{budget['steps']:,} agent steps, with a checkpoint every {budget['checkpoint_every']:,} steps"
    return f"{budget['trials']:,} trials, with a checkpoint every {budget['checkpoint_every']:,} trials"


def methods_paragraph(config: dict, seeds: list[int], versions: Iterable[dict], evaluations: Iterable[dict] = ()) -> str:
    """Plain text. `config` is an experiment's frozen config, `versions` its runs' `versions`, and
    `evaluations` its rows of `api.Registry.evaluations` (as dicts: protocol, trials, select, ...)."""
    task, model, budget = config["task"], config["model"], config["budget"]
    parts = [plugins.family_of(task).methods(task), plugins.engine_of(model).methods(model)]
    parts.append(f"Each run lasted {_budget(budget)}, for {_seeds(sorted(seeds))}.")
    if config.get("overrides"):
        parts.append(f"Settings changed from the catalog: {pairs(config['overrides'])}.")
    parts.append(_evaluation(task, list(evaluations)))
    parts.append(_versions(config, versions))
    return " ".join(parts)
