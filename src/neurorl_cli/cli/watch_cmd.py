"""`neurorl watch`: a trained policy acting over a few trials, as a GIF or in a window."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from ..errors import UserError, WorkFailed
from .app import out


def register(app: typer.Typer) -> None:
    @app.command()
    def watch(
        ref: str = typer.Argument(..., help="Run: id or hash prefix."),
        checkpoint: str = typer.Option("best", "--checkpoint", help="best (needs an evaluation), latest, or a step."),
        gif: Path = typer.Option(None, "--gif", help="Write an animated GIF here (default watch-run<ID>-step<STEP>.gif)."),
        live: bool = typer.Option(False, "--live", help="Animate in a window (needs a display)."),
        trials: int = typer.Option(5, "--trials", min=1, max=200, help="How many trials to show."),
        protocol: str = typer.Option(None, "--protocol", help="Protocol that picks the best checkpoint and sets the environment."),
        seed: int = typer.Option(None, "--seed", help="Environment seed (default: the protocol's)."),
    ) -> None:
        """Run a checkpoint (recurrent state carried) and show what it sees and does."""
        from .. import api
        from ..analysis import panels, watch as watching
        from ..analysis.report import protocol_env
        from ..backends.base import backend_for
        from ..evaluation import verify_checkpoint
        from ..registry import queries
        from .common import registry as open_registry
        from ..registry.models import Artifact, Experiment

        if live and not watching.has_display():
            raise UserError("no display here (neither DISPLAY nor WAYLAND_DISPLAY is set): use --gif FILE")
        registry = api.Registry(open_registry()[1])
        with registry.session() as session:
            run = queries.run(session, ref)
            config = session.get_one(Experiment, run.experiment_id).config
            protocols = list(config["task"].get("protocols", {}))
            if protocol is not None and protocol not in protocols:
                raise UserError(f"--protocol {protocol}: the task has protocols {', '.join(protocols) or 'none'}")
            ckpt = watching.choose_checkpoint(session, run, checkpoint, protocol)
        try:
            path = verify_checkpoint(run.run_dir, ckpt.path, ckpt.sha256)
        except ValueError as exc:
            raise WorkFailed(str(exc)) from exc
        env_spec, env_seed = protocol_env(config, protocol or (protocols[0] if protocols else ""))
        env_seed = env_seed if seed is None else seed
        policy = backend_for(config).load_policy(config, path, "cpu")
        records = panels.record_trials(policy, env_spec, trials, env_seed)
        names = panels.observation_names(env_spec)
        title = f"run {run.id} (seed {run.seed}), checkpoint step {ckpt.step}, env seed {env_seed}"
        duration = watching.frame_duration_ms(env_spec)
        if gif is not None or not live:
            target = gif or Path(f"watch-run{run.id}-step{ckpt.step}.gif")
            watching.write_gif(watching.render_frames(records, names, title), target, duration)
            words = ["neurorl", "watch", ref, "--checkpoint", checkpoint, "--trials", str(trials), "--gif", str(target)]
            words += ["--protocol", protocol] if protocol else []
            words += ["--seed", str(seed)] if seed is not None else []
            with registry.session() as session:
                session.add(Artifact(kind="gif", path=str(target.resolve()), query=shlex.join(words), experiment_id=run.experiment_id, run_id=run.id))
                session.commit()
            out.print(str(target))
        if live:
            watching.show_live(records, names, title, duration)
