"""`neurorl watch`: a trained policy acting over a few trials, as a GIF or in a window.

What is shown is the task family's (Family.watch): this command chooses the run and checkpoint,
then writes the frames it gets as a GIF or plays them."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from neurorl_cli.cli.app import out
from neurorl_cli.errors import UserError, WorkFailed


def register(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n"
                        "neurorl watch r1 --gif run1.gif\n"
                        "neurorl watch r1 --checkpoint latest --trials 3\n"
                        "neurorl watch r1 --checkpoint 20000 --protocol default --seed 7")
    def watch(
        ref: str = typer.Argument(..., metavar="RUN", help="A run: r<id> or a hash prefix."),
        checkpoint: str = typer.Option("best", "--checkpoint", metavar="best|latest|STEP", help="best (needs an evaluation), latest, or a step."),
        gif: Path = typer.Option(None, "--gif", metavar="FILE", help="Write an animated GIF here (default watch-run<ID>-step<STEP>.gif; conditioning: watch-run<ID>-type<T>.gif)."),
        live: bool = typer.Option(False, "--live", help="Animate in a window (needs a display)."),
        trials: int = typer.Option(None, "--trials", min=1, max=200, metavar="N", help="How much to show: trials (default: a few; meta-RL a whole episode), conditioning runs at most this many frames (default 100), Doom runs episodes (default 1)."),
        trial_type: int = typer.Option(None, "--trial-type", min=0, metavar="N", help="Conditioning runs: the trial type to animate (default 0)."),
        protocol: str = typer.Option(None, "--protocol", metavar="NAME", help="Protocol that picks the best checkpoint and sets the environment."),
        seed: int = typer.Option(None, "--seed", metavar="N", help="Environment seed (default: the protocol's)."),
    ) -> None:
        """Run a checkpoint (recurrent state carried) and show what it sees and does.

        For a conditioning run: its predictors' values, rewards and TD errors, trial by trial."""
        from neurorl_cli import api, plugins
        from neurorl_cli.analysis import watch as watching
        from neurorl_cli.cli.common import registry as open_registry
        from neurorl_cli.interfaces import WatchRequest
        from neurorl_cli.registry import queries
        from neurorl_cli.registry.models import Experiment
        from neurorl_cli.rollouts import verify_checkpoint

        if live and not watching.has_display():
            raise UserError("no display here (neither DISPLAY nor WAYLAND_DISPLAY is set): use --gif FILE")
        if gif is not None:
            from neurorl_cli.outputs import file_to_write

            file_to_write(gif, "--gif")
        registry = api.Registry(open_registry()[1])
        with registry.session() as session:
            run = queries.run(session, ref)
            config = session.get_one(Experiment, run.experiment_id).config
        family, engine = plugins.family_of(config), plugins.engine_of(config)
        protocols = list(config["task"].get("protocols", {}))
        if protocol is not None and protocol not in protocols:
            raise UserError(f"--protocol {protocol}: the task has protocols {', '.join(protocols) or 'none'}")
        request = WatchRequest(run=run, config=config, protocol=protocol or (protocols[0] if protocols else ""),
                               seed=seed, trials=trials, engine=engine,
                               options={} if trial_type is None else {"trial_type": trial_type})
        words = ["neurorl", "watch", ref]
        if family.plays_checkpoint:
            with registry.session() as session:
                request.checkpoint = choose_checkpoint(session, run, checkpoint, protocol)
            try:
                request.path = verify_checkpoint(run.run_dir, request.checkpoint.path, request.checkpoint.sha256)
            except ValueError as exc:
                raise WorkFailed(str(exc)) from exc
            request.policy = lambda: engine.load_policy(config, request.path, "cpu")
            words += ["--checkpoint", checkpoint, "--protocol", request.protocol]
        recording = family.watch(request)
        if gif is not None or not live:
            target = gif or Path(recording.default_name)
            watching.write_gif(recording.frames, target, recording.frame_ms)
            _record_gif(registry, run, target, words + recording.words + ["--gif", str(target)])
        if live:
            watching.show_frames_live(recording.frames, recording.frame_ms)


def choose_checkpoint(session, run, which: str, protocol: str | None = None):
    """`best` (by its evaluations), `latest`, or a checkpoint step."""
    from neurorl_cli.catalog import in_protocol_order
    from neurorl_cli.registry import queries
    from neurorl_cli.registry.models import Experiment

    available = queries.checkpoints(session, run.id)
    if not available:
        raise UserError(f"run r{run.id} has no checkpoint yet")
    if which == "latest":
        return available[-1]
    if which == "best":
        best = queries.best_checkpoint(session, [run.id], protocol)
        if not best:
            raise UserError(f"run r{run.id} has no evaluated checkpoint{f' under {protocol}' if protocol else ''}: run `neurorl eval r{run.id} --all-checkpoints` first")
        # Several protocols: the one named first in the task spec picks.
        task = session.get_one(Experiment, run.experiment_id).config["task"]
        first = in_protocol_order(task, {protocol for _, protocol in best})[0]
        return next(ck for (_, protocol), (_, ck) in best.items() if protocol == first)
    steps = [c.step for c in available]
    if not which.isdigit() or int(which) not in steps:
        raise UserError(f"--checkpoint {which}: run r{run.id} has checkpoints at steps {', '.join(map(str, steps))} (or use best / latest)")
    return available[steps.index(int(which))]


def _record_gif(registry, run, target: Path, words: list[str]) -> None:
    """The GIF as an artifact of its run, with the command that made it; then its path."""
    from neurorl_cli.registry import queries

    with registry.session() as session:
        queries.add_artifact(session, "gif", target, shlex.join(words), experiment_id=run.experiment_id, run_id=run.id)
        session.commit()
    out.print(str(target))
