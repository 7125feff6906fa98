"""Training throughput of neurorl's sample-factory run against sample-factory's own ViZDoom example.

    python bench/doom_fps.py [--steps 8192] [--runs 3] [--workers 2] [--envs 4] [--batch 512]
                             [--their-encoder retinal|sf]

"ours" is the whole user path: `neurorl train doom-health-gathering retinal-simple` (CLI, worker,
our DoomEnv, our hooks on sample-factory's runner, events, registry). "theirs" is sample-factory's
example `sf_examples.vizdoom.train_vizdoom` on `doom_health_gathering`: its Doom env and wrappers,
its config parser with its Doom defaults, its runner, run as its `main()` does (register, parse,
run_rl's body), in a process of its own.

Both get the same settings: workers, envs per worker, batch size, rollout/recurrence, 128x72
observations, frame skip 4, GRU of 64, the same PPO settings (neurorl's retinal-simple spec),
obs scaling and no input/return normalisation, agent steps counted without frame skip, CPU.
Both use the same encoder by default: retinal-simple registered as the example's encoder in
place of its VizdoomEncoder (`--their-encoder sf` keeps the example's own convnet_simple + 64 FC,
for a second figure). V-trace is off on both sides, because sample-factory 2.1.1's learner dies
with it (neurorl's backend patches that; the example cannot). Before any figure counts, the
benchmark asserts that the two runs' saved sample-factory configurations agree on every setting
above. What still differs, by construction: the scenario wrapper (neurorl's DoomEnv: INTER_AREA
resize, HEALTH shaping; the example: its VizdoomEnv, ResizeWrapper, gathering shaping) and the
action space (turn x move, Tuple of two Discrete(3), against the example's Discrete(5)).

Throughput is measured the same way on both sides: the learner's step count and the wall clock
at each training summary the runner receives (sample-factory's TRAIN_STATS messages); the
figure is the steps between the first summary past `--warmup` of the budget and the last one,
over the seconds between them (process start-up, identical in kind on both sides, is left out).
Runs alternate which side goes first. Printed: each run's steps/s, each side's median, and the
median of the per-round ratios ours/theirs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK, MODEL, SF_ENV = "doom-health-gathering", "retinal-simple", "doom_health_gathering"
# Settings whose equality the benchmark asserts (sample-factory's names, from each run's config.json).
SAME = ["num_workers", "num_envs_per_worker", "worker_num_splits", "batch_size", "num_batches_per_epoch",
        "num_epochs", "rollout", "recurrence", "rnn_size", "rnn_type", "rnn_num_layers", "use_rnn", "env_frameskip",
        "device", "async_rl", "serial_mode", "batched_sampling", "with_vtrace", "normalize_input",
        "normalize_returns", "obs_scale", "obs_subtract_mean", "summaries_use_frameskip", "learning_rate", "gamma",
        "ppo_clip_ratio", "ppo_clip_value", "value_loss_coeff", "exploration_loss", "exploration_loss_coeff",
        "reward_scale", "max_grad_norm", "adam_eps", "actor_critic_share_weights", "policy_workers_per_policy"]


def our_settings(args) -> list[str]:
    return ["--set", f"model.num_workers={args.workers}", "--set", f"model.num_envs_per_worker={args.envs}",
            "--set", f"model.batch_size={args.batch}", "--set", "model.with_vtrace=false"]


def their_argv(args, train_dir: Path) -> list[str]:
    """The example's command line: neurorl's sample-factory settings for the same spec, where the
    example's own Doom defaults differ."""
    from neurorl_cli import catalog
    from neurorl_cli.engines.sample_factory.trainer import FIXED, sf_settings

    config = catalog.resolve(catalog.load_task(TASK), catalog.load_model(MODEL),
                             [s for s in our_settings(args) if s != "--set"], steps=args.steps)[0]
    settings = sf_settings(config)
    settings.update(env=SF_ENV, experiment="theirs", train_dir=str(train_dir), device="cpu", seed=0,
                    train_for_env_steps=args.steps, res_w=128, res_h=72, wide_aspect_ratio=False)
    for key in ("save_every_sec", "keep_checkpoints", "save_best_every_sec", "save_best_after"):
        settings.pop(key)  # the example saves as it does by default
    assert set(FIXED) - set(settings) <= {"save_every_sec", "keep_checkpoints", "save_best_every_sec", "save_best_after"}
    return [f"--{k}={v}" for k, v in settings.items()]


# ----------------------------------------------------------------------------- the example's side


def run_theirs(argv: list[str], clock_file: str, their_encoder: str) -> None:
    """sample-factory's train_vizdoom main(), with a clock on the runner's training summaries."""
    from sample_factory.algo.utils.context import global_model_factory
    from sample_factory.algo.utils.misc import LEARNER_ENV_STEPS, TRAIN_STATS, ExperimentStatus
    from sample_factory.train import make_runner
    from sf_examples.vizdoom.train_vizdoom import parse_vizdoom_cfg, register_vizdoom_components

    register_vizdoom_components()
    cfg = parse_vizdoom_cfg(argv=argv)
    if their_encoder == "retinal":
        from neurorl_cli.engines.sample_factory.glue import make_sf_encoder
        from neurorl_cli.nets.retinal import DEFAULTS

        settings = {**DEFAULTS[MODEL], "hidden_size": cfg.rnn_size}
        global_model_factory().register_encoder_factory(functools.partial(make_sf_encoder, MODEL, settings))
    else:
        cfg.encoder_conv_mlp_layers = [cfg.rnn_size]  # the example's convnet, then an FC as wide as the GRU
    clock = open(clock_file, "w")

    def tick(runner, msg, policy_id):
        clock.write(json.dumps({"t": time.time(), "step": int(msg[LEARNER_ENV_STEPS])}) + "\n")
        clock.flush()

    cfg, runner = make_runner(cfg)
    runner.policy_msg_handlers[TRAIN_STATS].append(tick)
    status = runner.init()
    if status == ExperimentStatus.SUCCESS:
        status = runner.run()
    sys.exit(status)


# ----------------------------------------------------------------------------- measuring


def throughput(points: list[tuple[float, int]], total: int, warmup: float) -> float:
    """Steps per second between the first summary past the warm-up and the last one."""
    points = sorted(points, key=lambda p: p[1])
    start = next(p for p in points if p[1] >= warmup * total)
    end = points[-1]
    if end[0] <= start[0]:
        raise RuntimeError(f"too few training summaries to measure ({len(points)}): raise --steps")
    return (end[1] - start[1]) / (end[0] - start[0])


def ours(args, root: Path) -> tuple[float, dict]:
    home = root / "ours"
    env = {**os.environ, "NEURORL_HOME": str(home), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "neurorl_cli", "train", TASK, MODEL, "--steps", str(args.steps),
           "--checkpoint-every", str(args.steps), "--device", "cpu", *our_settings(args)]
    subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=root)
    run_dir, = list((home / "runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    points = [(e["t"], e["step"]) for e in events if e["type"] == "metric" and "loss/policy_loss" in e["values"]]
    cfg = json.loads((run_dir / "sample_factory" / "sf" / "config.json").read_text())
    config = json.loads((run_dir / "run.json").read_text())["config"]
    cfg["res"] = (config["task"]["width"], config["task"]["height"])
    return throughput(points, args.steps, args.warmup), cfg


def theirs(args, root: Path) -> tuple[float, dict]:
    train_dir, clock = root / "theirs", root / "theirs_clock.jsonl"
    cmd = [sys.executable, str(Path(__file__).resolve()), "_theirs", str(clock), args.their_encoder,
           *their_argv(args, train_dir)]
    # In the run's own folder: the example's games write their _vizdoom.ini where they run.
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"sample-factory's example failed:\n{proc.stderr[-3000:]}")
    points = [(p["t"], p["step"]) for p in map(json.loads, clock.read_text().splitlines())]
    cfg = json.loads((train_dir / "theirs" / "config.json").read_text())
    cfg["res"] = (cfg["res_w"], cfg["res_h"])
    return throughput(points, args.steps, args.warmup), cfg


def check_same(a: dict, b: dict) -> None:
    differ = {k: (a.get(k), b.get(k)) for k in [*SAME, "res"] if a.get(k) != b.get(k)}
    if differ:
        raise SystemExit(f"the two runs' configurations differ: {differ}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_theirs":
        return run_theirs(sys.argv[4:], sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8192, help="agent steps per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--envs", type=int, default=4, help="environments per worker")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--warmup", type=float, default=0.25, help="fraction of the budget left out of the figure")
    parser.add_argument("--their-encoder", choices=["retinal", "sf"], default="retinal")
    args = parser.parse_args()

    results: dict[str, list[float]] = {"ours": [], "theirs": []}
    sides = [("ours", ours), ("theirs", theirs)]
    for run in range(args.runs):
        cfgs = {}
        for name, fn in sides if run % 2 == 0 else sides[::-1]:
            with tempfile.TemporaryDirectory(prefix=f"doom_fps_{name}_") as tmp:
                fps, cfgs[name] = fn(args, Path(tmp))
            results[name].append(fps)
            print(f"run {run + 1} {name:6s} {fps:8.1f} agent steps/s", flush=True)
        check_same(cfgs["ours"], cfgs["theirs"])
    ratios = [o / t for o, t in zip(results["ours"], results["theirs"])]
    summary = {
        "steps": args.steps, "workers": args.workers, "envs_per_worker": args.envs, "batch_size": args.batch,
        "their_encoder": args.their_encoder, "ours_median": statistics.median(results["ours"]),
        "theirs_median": statistics.median(results["theirs"]), "ratio_median": statistics.median(ratios),
        "ratios": ratios, "ours": results["ours"], "theirs": results["theirs"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
