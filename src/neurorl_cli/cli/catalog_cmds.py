"""`neurorl tasks` and `neurorl models`: what can be trained, and which pairs fit."""

from __future__ import annotations

import typer

from neurorl_cli import catalog
from neurorl_cli.cli.common import print_json, table as new_table


def _fits(task, models) -> list[str]:
    return [m.name for m in models if catalog.pair_problem(catalog.resolve(task, m)[0]) is None]


def _source(task) -> str:
    from neurorl_cli import plugins

    return plugins.family(task.family).source(task)


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
                        "neurorl tasks --all")
    def tasks(
        as_json: bool = typer.Option(False, "--json", help="Machine-readable listing."),
        every: bool = typer.Option(False, "--all", "--neurogym", help="Also list the tasks families make from a name (every registered NeuroGym id, as neurogym:<Id>)."),
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
        if every:
            from neurorl_cli import plugins

            extra = [name for family in plugins.families().values() for name in family.generated_names()]
        if as_json:
            print_json({"tasks": rows, "named": extra} if every else rows)
            _fail_if_broken(broken + broken_models, "spec")
            return
        table = new_table("task", "env", "budget", "protocols (select)", "models that fit", title="tasks")
        for r in rows:
            protocols = ", ".join(f"{k} ({v['select']})" for k, v in r["protocols"].items())
            budget = ", ".join(f"{v:,} {u}" for u, v in r["budget"].items() if v)
            table.add_row(r["name"], r["env"], budget, protocols, ", ".join(r["models"]))
        out.print(table)
        if extra:
            out.print("Tasks made from a name (train any of them by it): " + ", ".join(extra))
        else:
            out.print("Any registered NeuroGym task also trains as neurogym:<Id> (list them: neurorl tasks --all).")
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
        from neurorl_cli import plugins

        table = new_table("model", "engine", "algorithm", "trains on", "hyper-parameters", title="models")
        for s in specs:
            hyper = ", ".join(f"{k}={v}" for k, v in {**s.hyper, **getattr(s, "policy_kwargs", {})}.items())
            engine = plugins.engine(s.engine)
            table.add_row(s.name, s.engine, engine.label(s), engine.trains_on(s), hyper)
        out.print(table)
        _fail_if_broken(broken, "model")
