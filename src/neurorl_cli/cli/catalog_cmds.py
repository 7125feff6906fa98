"""`neurorl tasks` and `neurorl models`: what can be trained, and which pairs fit."""

from __future__ import annotations

import typer

from neurorl_cli import catalog
from neurorl_cli.cli.common import print_json, table as new_table


def _fits(task, models) -> list[str]:
    return [m.name for m in models if catalog.pair_problem(catalog.resolve(task, m)[0]) is None]


def _source(task) -> str:
    if task.family == "neurogym":
        return task.env.id or task.env.entry_point
    if task.family == "meta-rl":
        return f"{task.kind} (batched torch)"
    if task.family == "doom":
        return f"ViZDoom {task.scenario} ({task.width}x{task.height}, frame skip {task.frame_skip})"
    if task.family == "firefly":
        return "firefly navigation (batched torch)"
    return f"{task.family} schedule"


def _readable(names: list[str], load, h) -> tuple[list, int]:
    """(name, spec) of the specs that load; each file that does not is reported in one line and skipped, so one
    broken file of the user's does not hide the whole catalog."""
    from neurorl_cli.errors import UserError
    from neurorl_cli.cli.common import _warn

    specs, broken = [], 0
    for name in names:
        try:
            specs.append((name, load(name, h)))
        except UserError as exc:
            _warn(f"{exc}; skipped")
            broken += 1
    return specs, broken


def _fail_if_broken(broken: int, kind: str) -> None:
    if broken:
        from neurorl_cli.errors import WorkFailed

        raise WorkFailed(f"{broken} {kind} file(s) could not be read (see warnings above); the others are listed")


def register(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n"
                        "neurorl tasks\n"
                        "neurorl tasks --json\n"
                        "neurorl tasks --neurogym")
    def tasks(
        as_json: bool = typer.Option(False, "--json", help="Machine-readable listing."),
        neurogym: bool = typer.Option(False, "--neurogym", help="Also list every registered NeuroGym id (use as neurogym:<Id>)."),
    ):
        """The task catalog: budgets, evaluation protocols and the models that fit."""
        from neurorl_cli.cli.app import out
        from neurorl_cli.home import find_home

        h = find_home()
        named_models, broken_models = _readable(catalog.model_names(h), catalog.load_model, h)
        models = [m for _, m in named_models]
        specs, broken = _readable(catalog.task_names(h), catalog.load_task, h)
        rows = []
        for name, spec in specs:
            rows.append({
                "name": name, "family": spec.family, "env": _source(spec),
                "description": spec.description, "budget": {u: getattr(spec.budget, u) for u in spec.budget.units},
                "checkpoint_every": spec.budget.checkpoint_every, "units": spec.budget.units,
                "protocols": {k: v.model_dump() for k, v in spec.protocols.items()},
                "models": _fits(spec, models),
            })
        extra = []
        if neurogym:
            from neurorl_cli.envs import neurogym_env

            extra = [f"neurogym:{i}" for i in neurogym_env.registered_ids()]
        if as_json:
            print_json({"tasks": rows, "neurogym": extra} if neurogym else rows)
            _fail_if_broken(broken + broken_models, "spec")
            return
        table = new_table("task", "env", "budget", "protocols (select)", "models that fit", title="tasks")
        for r in rows:
            protocols = ", ".join(f"{k} ({v['select']})" for k, v in r["protocols"].items())
            budget = ", ".join(f"{v:,} {u}" for u, v in r["budget"].items() if v)
            table.add_row(r["name"], r["env"], budget, protocols, ", ".join(r["models"]))
        out.print(table)
        if extra:
            out.print("NeuroGym ids (train any as neurogym:<Id>): " + ", ".join(extra))
        else:
            out.print("Any registered NeuroGym task also trains as neurogym:<Id> (list them: neurorl tasks --neurogym).")
        _fail_if_broken(broken + broken_models, "spec")

    @app.command(epilog="Examples:\n\n"
                        "neurorl models\n"
                        "neurorl models --json")
    def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable listing.")):
        """The model catalog: engine, algorithm, hyper-parameters."""
        from neurorl_cli.cli.app import out
        from neurorl_cli.home import find_home

        h = find_home()
        named, broken = _readable(catalog.model_names(h), catalog.load_model, h)
        specs = [spec for _, spec in named]
        if as_json:
            print_json([s.model_dump() for s in specs])
            _fail_if_broken(broken, "model")
            return
        table = new_table("model", "engine", "algorithm", "trains on", "hyper-parameters", title="models")
        for s in specs:
            hyper = ", ".join(f"{k}={v}" for k, v in {**s.hyper, **getattr(s, "policy_kwargs", {})}.items())
            algo = f"{s.algo} / {s.policy}" if s.engine == "sb3" else s.algo
            encoder = getattr(s, "encoder", None)
            if encoder:  # a retinal encoder: its name (sample-factory) or table (sb3)
                algo += f" + {encoder if isinstance(encoder, str) else encoder['name']}"
            fits = "/".join(s.families) + (f" ({'/'.join(s.observations)} -> {'/'.join(s.actions)})" if s.engine == "sb3" else "")
            table.add_row(s.name, s.engine, algo, fits, hyper)
        out.print(table)
        _fail_if_broken(broken, "model")
