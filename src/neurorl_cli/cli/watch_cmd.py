"""`neurorl watch`: a trained policy acting over a few trials, as a GIF or in a window."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from neurorl_cli.errors import UserError, WorkFailed
from neurorl_cli.cli.app import out

NEUROGYM_TRIALS = 5
EPISODE_TRIALS = 6  # meta-RL tasks: a whole Harlow episode, the first 6 two-step trials
MAX_FRAMES = 100  # analysis.conditioning.MAX_FRAMES; not imported so `--help` stays fast
DOOM_MAX_FRAMES = 1050  # Doom GIFs stop here (a 2100-tic episode at frame skip 4 is 525 frames)


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
        trials: int = typer.Option(None, "--trials", min=1, max=200, metavar="N", help=f"How many trials to show (default {NEUROGYM_TRIALS}; conditioning runs: at most this many frames, default {MAX_FRAMES}; Doom runs: episodes, default 1, at most {DOOM_MAX_FRAMES} frames)."),
        trial_type: int = typer.Option(0, "--trial-type", min=0, metavar="N", help="Conditioning runs: the trial type to animate."),
        protocol: str = typer.Option(None, "--protocol", metavar="NAME", help="Protocol that picks the best checkpoint and sets the environment."),
        seed: int = typer.Option(None, "--seed", metavar="N", help="Environment seed (default: the protocol's)."),
    ) -> None:
        """Run a checkpoint (recurrent state carried) and show what it sees and does.

        For a conditioning run: its predictors' values, rewards and TD errors, trial by trial."""
        from neurorl_cli import api
        from neurorl_cli.analysis import panels, watch as watching
        from neurorl_cli.analysis.report import protocol_env
        from neurorl_cli.backends.base import backend_for
        from neurorl_cli.evaluation import verify_checkpoint
        from neurorl_cli.registry import queries
        from neurorl_cli.cli.common import registry as open_registry
        from neurorl_cli.registry.models import Experiment

        if live and not watching.has_display():
            raise UserError("no display here (neither DISPLAY nor WAYLAND_DISPLAY is set): use --gif FILE")
        if gif is not None:
            from neurorl_cli.outputs import file_to_write

            file_to_write(gif, "--gif")
        registry = api.Registry(open_registry()[1])
        with registry.session() as session:
            run = queries.run(session, ref)
            config = session.get_one(Experiment, run.experiment_id).config
        if config["task"].get("family") == "conditioning":
            return _watch_conditioning(registry, run, ref, gif, live, trials, trial_type)
        if config["task"]["family"] != "doom":  # Doom: episodes, 1 unless asked
            trials = trials or (EPISODE_TRIALS if config["task"]["family"] == "meta-rl" else NEUROGYM_TRIALS)
        with registry.session() as session:
            protocols = list(config["task"].get("protocols", {}))
            if protocol is not None and protocol not in protocols:
                raise UserError(f"--protocol {protocol}: the task has protocols {', '.join(protocols) or 'none'}")
            ckpt = watching.choose_checkpoint(session, run, checkpoint, protocol)
        try:
            path = verify_checkpoint(run.run_dir, ckpt.path, ckpt.sha256)
        except ValueError as exc:
            raise WorkFailed(str(exc)) from exc
        if config["task"]["family"] == "firefly":
            return _watch_firefly(registry, run, ref, config, ckpt, path, protocol or protocols[0], seed, gif, live, checkpoint, trials)
        policy = backend_for(config).load_policy(config, path, "cpu")
        if config["task"]["family"] == "doom":
            return _watch_doom(registry, run, ref, config, ckpt, policy, protocol or protocols[0], seed, gif, live,
                               checkpoint, trials)
        if config["task"]["family"] == "meta-rl":
            return _watch_episode(registry, run, ref, config, ckpt, policy, protocol or protocols[0], seed, gif, live, checkpoint, trials)
        env_spec, env_seed = protocol_env(config, protocol or (protocols[0] if protocols else ""))
        env_seed = env_seed if seed is None else seed
        records = panels.record_trials(policy, env_spec, trials, env_seed)
        names = panels.observation_names(env_spec)
        title = f"run r{run.id} (seed {run.seed}), checkpoint step {ckpt.step}, env seed {env_seed}"
        duration = watching.frame_duration_ms(env_spec)
        if gif is not None or not live:
            target = gif or Path(f"watch-run{run.id}-step{ckpt.step}.gif")
            watching.write_gif(watching.render_frames(records, names, title), target, duration)
            words = ["neurorl", "watch", ref, "--checkpoint", checkpoint, "--trials", str(trials), "--gif", str(target)]
            words += ["--protocol", protocol] if protocol else []
            words += ["--seed", str(seed)] if seed is not None else []
            _record_gif(registry, run, target, words)
        if live:
            watching.show_live(records, names, title, duration)


def _record_gif(registry, run, target: Path, words: list[str]) -> None:
    """The GIF as an artifact of its run, with the command that made it; then its path."""
    from neurorl_cli.registry.models import Artifact

    with registry.session() as session:
        session.add(Artifact(kind="gif", path=str(target.resolve()), query=shlex.join(words),
                             experiment_id=run.experiment_id, run_id=run.id))
        session.commit()
    out.print(str(target))


def _watch_episode(registry, run, ref: str, config: dict, ckpt, policy, protocol: str, seed: int | None,
                   gif: Path | None, live: bool, checkpoint: str, trials: int) -> None:
    """Harlow / two-step: the first `trials` trials of one episode of the protocol's environment, step by step."""
    from neurorl_cli.analysis import metarl, watch as watching

    spec = config["task"]["protocols"][protocol]
    env_seed = int(spec.get("seed", 0)) if seed is None else seed
    episode = metarl.record_episode(policy, config["task"], env_seed, spec.get("kwargs") or None,
                                    deterministic=spec.get("actions", "greedy") == "greedy")
    episode = episode[episode["trial"] <= trials]
    title = f"run r{run.id} (seed {run.seed}), step {ckpt.step}, {protocol}, env seed {env_seed}"
    frames = metarl.render_frames(episode, config["task"], title)
    if gif is not None or not live:
        target = gif or Path(f"watch-run{run.id}-step{ckpt.step}.gif")
        watching.write_gif(frames, target, 400)
        words = ["neurorl", "watch", ref, "--checkpoint", checkpoint, "--protocol", protocol, "--seed", str(env_seed),
                 "--trials", str(trials), "--gif", str(target)]
        _record_gif(registry, run, target, words)
    if live:
        watching.show_frames_live(frames, 400)


def _watch_firefly(registry, run, ref: str, config: dict, ckpt, path: Path, protocol: str, seed: int | None,
                   gif: Path | None, live: bool, checkpoint: str, trials: int) -> None:
    """Firefly: trials of the protocol seen from above, step by step (the EKF agents included,
    since the recording runs their filter)."""
    from neurorl_cli.analysis import firefly, watch as watching

    spec = dict(config["task"]["protocols"][protocol])
    env_seed = int(spec.get("seed", 0)) if seed is None else seed
    recording = firefly.record(config, path, {**spec, "seed": env_seed}, trials=trials)
    title = f"run r{run.id} (seed {run.seed}), step {ckpt.step}, {protocol}"
    frames = firefly.render_frames(recording, title, trials)
    if gif is not None or not live:
        target = gif or Path(f"watch-run{run.id}-step{ckpt.step}.gif")
        watching.write_gif(frames, target, 100)  # the task's 0.1 s steps, in real time
        words = ["neurorl", "watch", ref, "--checkpoint", checkpoint, "--protocol", protocol, "--seed", str(env_seed),
                 "--trials", str(trials), "--gif", str(target)]
        _record_gif(registry, run, target, words)
    if live:
        watching.show_frames_live(frames, 100)


def _watch_doom(registry, run, ref: str, config: dict, ckpt, policy, protocol: str, seed: int | None,
                gif: Path | None, live: bool, checkpoint: str, episodes: int | None) -> None:
    """Doom: what the agent sees (the full screen) with its health and action, over whole episodes
    of the protocol's environment (its frame skip; its greedy or sampled actions)."""
    from neurorl_cli.analysis import watch as watching
    from neurorl_cli.envs.doom import play

    spec = config["task"]["protocols"][protocol]
    env_seed = int(spec.get("seed", 0)) if seed is None else seed
    episodes = episodes or 1
    steps = []
    actions = "tuple" if config["model"]["engine"] == "sample-factory" else "multidiscrete"
    for step in play(policy, config["task"], env_seed, spec.get("kwargs") or None,
                     deterministic=spec.get("actions", "greedy") == "greedy", actions=actions):
        steps.append(step)
        if (step["done"] and step["episode"] + 1 >= episodes) or len(steps) >= DOOM_MAX_FRAMES:
            break
    frames = watching.doom_frames(steps, steps[0]["buttons"] if steps else None)
    frame_skip = int((spec.get("kwargs") or {}).get("frame_skip", config["task"].get("frame_skip", 4)))
    duration = max(20, round(frame_skip * watching.DOOM_TIC_MS))  # real time (GIF viewers floor shorter frames)
    if gif is not None or not live:
        target = gif or Path(f"watch-run{run.id}-step{ckpt.step}.gif")
        watching.write_gif(frames, target, duration)
        words = ["neurorl", "watch", ref, "--checkpoint", checkpoint, "--protocol", protocol, "--seed", str(env_seed),
                 "--trials", str(episodes), "--gif", str(target)]
        _record_gif(registry, run, target, words)
    if live:
        watching.show_frames_live(frames, duration)


def _watch_conditioning(registry, run, ref: str, gif: Path | None, live: bool, trials: int | None, trial_type: int) -> None:
    """The run's predictors over its trials of one type, from its stored simulation (no checkpoint is run)."""
    from neurorl_cli.analysis import conditioning

    try:
        sim = conditioning.load_simulation(run.run_dir)
    except FileNotFoundError:
        raise UserError(f"run r{run.id} has no simulation yet (status {run.status}): it is written when the run completes") from None
    max_frames = trials or MAX_FRAMES
    title = f"run r{run.id} (seed {run.seed})"
    try:
        conditioning.animation_trials(sim, trial_type, None, max_frames)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if gif is not None or not live:
        target = gif or Path(f"watch-run{run.id}-type{trial_type}.gif")
        conditioning.value_animation(sim, trial_type, target, max_frames=max_frames, title=title)
        words = ["neurorl", "watch", ref, "--trial-type", str(trial_type), "--gif", str(target)]
        words += ["--trials", str(trials)] if trials is not None else []
        _record_gif(registry, run, target, words)
    if live:
        conditioning.show_animation_live(sim, trial_type, max_frames=max_frames, title=title)
