"""`neurorl tasks` and `neurorl models`: what can be trained, and which pairs fit."""

from __future__ import annotations

import typer
from rich.table import Table

from .. import catalog
from ..errors import UserError
from .common import print_json


def _fits(task: catalog.TaskSpec, models: list[catalog.ModelSpec]) -> list[str]:
    from ..envs import neurogym_env

    obs_kind, act_kind, _, _ = neurogym_env.spaces(task.env.model_dump())
    return [m.name for m in models if obs_kind in m.observations and act_kind in m.actions]


def register(app: typer.Typer) -> None:
    @app.command()
    def tasks(
        as_json: bool = typer.Option(False, "--json", help="Machine-readable listing."),
        neurogym: bool = typer.Option(False, "--neurogym", help="Also list every registered NeuroGym id (use as neurogym:<Id>)."),
    ):
        """The task catalog: budgets, evaluation protocols and the models that fit."""
        from .app import out
        from .common import home

        h = home()
        models = [catalog.load_model(n, h) for n in catalog.model_names(h)]
        rows = []
        for name in catalog.task_names(h):
            spec = catalog.load_task(name, h)
            rows.append({
                "name": name, "family": spec.family, "env": spec.env.id or spec.env.entry_point,
                "description": spec.description, "steps": spec.budget.steps,
                "checkpoint_every": spec.budget.checkpoint_every, "units": spec.budget.units,
                "protocols": {k: v.model_dump() for k, v in spec.protocols.items()},
                "models": _fits(spec, models),
            })
        extra = []
        if neurogym:
            from ..envs import neurogym_env

            extra = [f"neurogym:{i}" for i in neurogym_env.registered_ids()]
        if as_json:
            print_json({"tasks": rows, "neurogym": extra} if neurogym else rows)
            return
        table = Table("task", "env", "budget", "protocols (select)", "models that fit", title="tasks")
        for r in rows:
            protocols = ", ".join(f"{k} ({v['select']})" for k, v in r["protocols"].items())
            table.add_row(r["name"], r["env"], f"{r['steps']:,} {'/'.join(r['units'])}", protocols, ", ".join(r["models"]))
        out.print(table)
        if extra:
            out.print("NeuroGym ids (train any as neurogym:<Id>): " + ", ".join(extra))
        else:
            out.print("Any registered NeuroGym task also trains as neurogym:<Id> (list them: neurorl tasks --neurogym).")

    @app.command()
    def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable listing.")):
        """The model catalog: engine, algorithm, hyper-parameters."""
        from .app import out
        from .common import home

        h = home()
        specs = [catalog.load_model(n, h) for n in catalog.model_names(h)]
        if as_json:
            print_json([s.model_dump() for s in specs])
            return
        table = Table("model", "engine", "algo / policy", "spaces", "hyper-parameters", title="models")
        for s in specs:
            hyper = ", ".join(f"{k}={v}" for k, v in {**s.hyper, **s.policy_kwargs}.items())
            table.add_row(s.name, s.engine, f"{s.algo} / {s.policy}", f"{'/'.join(s.observations)} -> {'/'.join(s.actions)}", hyper)
        out.print(table)
