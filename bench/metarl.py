"""Meta-RL benchmarks: Harlow learning time, the two-step stay pattern, and training speed of
meta-a2c-lstm against sb3-contrib's RecurrentPPO on the same task and step budget.

    python bench/metarl.py speed  [--steps 50000] [--runs 3]
    python bench/metarl.py harlow [--seeds 0-2]
    python bench/metarl.py two-step [--seeds 0-2]

`speed` runs both sides in this process, alternating, one CPU thread each: ours is neurorl's
trainer (backends/meta_a2c.py) with the catalog's settings for Harlow; the other is
RecurrentPPO (MlpLstmPolicy, sb3-contrib's defaults as in models/recurrent-ppo.toml) on
`gym.make("neurorl/Harlow-v0")`, the same task with the same settings. Both are then scored by
the same held-out evaluation (1200 trials, greedy). The ratio is of training steps per second.

Recurrent-ppo learns more per step (10 epochs over each rollout), so the benchmark also trains
ours until it reaches recurrent-ppo's median held-out accuracy and compares the times.

`harlow` and `two-step` train through the CLI (one worker at a time, in a scratch registry),
evaluate every checkpoint and read the results from the registry.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def harlow_settings() -> dict:
    spec = tomllib.loads((REPO / "tasks" / "harlow.toml").read_text())
    return spec["env"]


def held_out(policy, env: dict) -> dict:
    from neurorl_cli.families.metarl.rollout import evaluate_batched

    metrics, _ = evaluate_batched(policy, {"kind": "harlow", "env": env}, {"trials": 1200, "seed": 100_000, "kwargs": {"pool": "test"}})
    return metrics


def ours_until(target: float, seed: int, scratch: Path, max_steps: int = 3_000_000, every: int = 18_432) -> dict:
    """Train ours until its held-out accuracy on trials 2-6 reaches `target`: steps and
    training seconds at the first checkpoint that does (checkpoint times from the run log)."""
    from neurorl_cli import catalog
    from neurorl_cli.interfaces import RunConfig
    from neurorl_cli.engines.native.meta_a2c import MetaA2CBackend
    from neurorl_cli.runlog import RunLog

    config = catalog.resolve(catalog.load_task("harlow"), catalog.load_model("meta-a2c-lstm"), steps=max_steps, checkpoint_every=every)[0]
    run_dir = scratch / f"until-{time.time_ns()}"
    log = RunLog(run_dir, heartbeat_every=0)
    run = RunConfig(run_id=0, seed=seed, attempt=1, config=config, run_dir=str(run_dir), device="cpu", threads=1)
    MetaA2CBackend().train(run, log)
    log.close()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    start = next(e["t"] for e in events if e["type"] == "status" and e.get("status") == "running")
    for event in (e for e in events if e["type"] == "checkpoint"):
        policy = MetaA2CBackend().load_policy(config, run_dir / event["path"])
        accuracy = held_out(policy, config["task"]["env"])["accuracy_later"]
        if accuracy >= target:
            return {"steps": event["step"], "seconds": event["t"] - start, "accuracy_later": accuracy}
    return {"steps": None, "seconds": None, "accuracy_later": accuracy}


def ours(steps: int, seed: int, scratch: Path) -> dict:
    import torch

    from neurorl_cli import catalog
    from neurorl_cli.interfaces import RunConfig
    from neurorl_cli.engines.native.meta_a2c import MetaA2CBackend
    from neurorl_cli.runlog import RunLog

    config = catalog.resolve(catalog.load_task("harlow"), catalog.load_model("meta-a2c-lstm"), steps=steps)[0]
    run_dir = scratch / f"ours-{time.time_ns()}"
    log = RunLog(run_dir, heartbeat_every=0)
    run = RunConfig(run_id=0, seed=seed, attempt=1, config=config, run_dir=str(run_dir), device="cpu", threads=1)
    start = time.perf_counter()
    MetaA2CBackend().train(run, log)
    elapsed = time.perf_counter() - start
    log.close()
    last = sorted((run_dir / "checkpoints").glob("*.zip"))[-1]
    done = torch.load(last, weights_only=False)["counts"]
    policy = MetaA2CBackend().load_policy(config, last)
    return {"steps": done["steps"], "episodes": done["episodes"], "seconds": elapsed,
            "config": config["task"]["env"], "accuracy_later": held_out(policy, config["task"]["env"])["accuracy_later"]}


def recurrent_ppo(steps: int, seed: int) -> dict:
    import gymnasium as gym
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from neurorl_cli.engines.sb3.trainer import SB3Policy

    torch.set_num_threads(1)
    env_kwargs = harlow_settings()
    spec = tomllib.loads((REPO / "models" / "recurrent-ppo.toml").read_text())
    venv = DummyVecEnv([lambda: gym.make("neurorl/Harlow-v0", seed=seed, **env_kwargs)])
    model = RecurrentPPO(spec["policy"], venv, seed=seed, device="cpu", verbose=0,
                         policy_kwargs=spec["policy_kwargs"], **spec["hyper"])
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    policy = SB3Policy(model, recurrent=True)
    return {"steps": model.num_timesteps, "episodes": model.num_timesteps // 18, "seconds": elapsed,
            "config": env_kwargs, "accuracy_later": held_out(policy, env_kwargs)["accuracy_later"]}


def speed(args) -> None:
    import torch

    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="bench-metarl-"))
    results: dict[str, list[dict]] = {"meta-a2c-lstm": [], "recurrent-ppo": []}
    for i in range(args.runs):  # alternate the two sides
        results["meta-a2c-lstm"].append(ours(args.steps, i, scratch))
        results["recurrent-ppo"].append(recurrent_ppo(args.steps, i))
        a, b = results["meta-a2c-lstm"][-1], results["recurrent-ppo"][-1]
        assert a["config"] == b["config"], "both sides must train on the same task settings"
        print(f"run {i}: ours {a['steps'] / a['seconds']:,.0f} steps/s ({a['steps']} steps, acc {a['accuracy_later']:.3f})"
              f" | recurrent-ppo {b['steps'] / b['seconds']:,.0f} steps/s ({b['steps']} steps, acc {b['accuracy_later']:.3f})", flush=True)
    # The same budget on both sides, up to the last update (ours: 512 episodes of 18 steps).
    for a, b in zip(*results.values()):
        assert abs(a["steps"] - b["steps"]) <= 512 * 18, (a["steps"], b["steps"])
    ratios = [(a["steps"] / a["seconds"]) / (b["steps"] / b["seconds"]) for a, b in zip(*results.values())]
    summary = {
        side: {"steps_per_s": statistics.median(r["steps"] / r["seconds"] for r in rs),
               "episodes_per_s": statistics.median(r["episodes"] / r["seconds"] for r in rs),
               "accuracy_later": [round(r["accuracy_later"], 3) for r in rs]}
        for side, rs in results.items()
    }
    # Equal accuracy: how long ours needs to reach what recurrent-ppo reached with its budget.
    target = statistics.median(r["accuracy_later"] for r in results["recurrent-ppo"])
    seconds_ppo = statistics.median(r["seconds"] for r in results["recurrent-ppo"])
    reach = [ours_until(target, i, scratch) for i in range(args.runs)]
    print(json.dumps({
        "steps": args.steps, "runs": args.runs, "median_speed_ratio": statistics.median(ratios), **summary,
        "equal_accuracy": {"target_accuracy_later": target, "recurrent_ppo_seconds": seconds_ppo,
                           "meta_a2c_lstm_to_target": reach,
                           "median_time_ratio": seconds_ppo / statistics.median(r["seconds"] for r in reach) if all(r["seconds"] for r in reach) else None},
    }, indent=1))


def _cli(home: Path, *args: str) -> None:
    env = {**os.environ, "NEURORL_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "neurorl_cli", *args], env=env, check=True, capture_output=True, text=True)


def _events(run_dir: str) -> list[dict]:
    return [json.loads(line) for line in Path(run_dir, "events.jsonl").read_text().splitlines() if line.strip()]


def harlow(args) -> None:
    """Per seed: held-out accuracy on trials 2-6 at each checkpoint; when it first reached 0.9."""
    home = Path(tempfile.mkdtemp(prefix="bench-harlow-"))
    _cli(home, "train", "harlow", "meta-a2c-lstm", "--seeds", args.seeds, "--checkpoint-every", str(args.every), "--trials", str(args.trials))
    _cli(home, "eval", "1", "--all-checkpoints", "--protocol", "held-out")
    con = sqlite3.connect(home / "registry.db")
    rows = con.execute(
        "SELECT r.seed, r.run_dir, c.step, e.metrics FROM evaluation e JOIN checkpoint c ON c.id = e.checkpoint_id "
        "JOIN run r ON r.id = c.run_id WHERE e.protocol = 'held-out' ORDER BY r.seed, c.step").fetchall()
    con.close()
    report = {}
    for seed in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == seed]
        events = _events(mine[0][1])
        start = next(e["t"] for e in events if e["type"] == "status" and e.get("status") == "running")
        at = {e["step"]: e["t"] - start for e in events if e["type"] == "checkpoint"}
        curve = [(step, json.loads(m)["accuracy_later"], at[step]) for _, _, step, m in mine]
        first = next(((s, a, t) for s, a, t in curve if a >= 0.9), None)
        report[seed] = {
            "final_accuracy_later": curve[-1][1], "final_trial_1": json.loads(mine[-1][3])["accuracy_trial_1"],
            "reached_0.9": None if first is None else {"episodes": first[0] // 6, "minutes": round(first[2] / 60, 2), "accuracy_later": first[1]},
            "curve": [(s // 6, round(a, 3), round(t, 1)) for s, a, t in curve],
        }
    print(json.dumps(report, indent=1))


def two_step(args) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-two-step-"))
    start = time.perf_counter()
    _cli(home, "train", "two-step", "meta-a2c-lstm", "--seeds", args.seeds)
    minutes = (time.perf_counter() - start) / 60
    _cli(home, "eval", "1", "--all-checkpoints")
    con = sqlite3.connect(home / "registry.db")
    rows = con.execute(
        "SELECT r.seed, c.step, e.metrics FROM evaluation e JOIN checkpoint c ON c.id = e.checkpoint_id "
        "JOIN run r ON r.id = c.run_id WHERE e.protocol = 'test' ORDER BY r.seed, c.step").fetchall()
    con.close()
    keys = ["reward_rate", "stay_rewarded_common", "stay_rewarded_rare", "stay_unrewarded_common",
            "stay_unrewarded_rare", "reward_effect", "model_based_index"]
    final = {seed: {k: round(json.loads(m)[k], 3) for k in keys} for seed, _, m in rows}  # the last checkpoint per seed
    mean = {k: round(float(np.mean([f[k] for f in final.values()])), 3) for k in keys}
    print(json.dumps({"training_minutes_all_seeds": round(minutes, 2), "final_checkpoint": final, "mean": mean}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=3)
    p = sub.add_parser("harlow")
    p.add_argument("--seeds", default="0-2")
    p.add_argument("--trials", type=int, default=1_536_000)
    p.add_argument("--every", type=int, default=61_440)  # 10,240 episodes between checkpoints
    p = sub.add_parser("two-step")
    p.add_argument("--seeds", default="0-2")
    args = parser.parse_args()
    {"speed": speed, "harlow": harlow, "two-step": two_step}[args.what](args)


if __name__ == "__main__":
    main()
