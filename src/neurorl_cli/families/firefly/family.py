"""The firefly family (the modularity study): steer to a briefly seen target with a joystick,
a batched torch environment whose motion model the EKF agents filter with."""

from __future__ import annotations

from typing import Any

from neurorl_cli.families.firefly.spec import FireflyTask
from neurorl_cli.interfaces import FamilyBase, NotOffered, Offer, Recording, WatchRequest

FRAME_MS = 100  # the task's 0.1 s steps, in real time
WATCH_TRIALS = 5


class FireflyFamily(FamilyBase):
    name = "firefly"
    task_spec = FireflyTask
    set_paths = ("env.",)
    training_key = "perf/reward_rate"

    def setting_defaults(self, task: dict, prefix: str) -> dict[str, Any]:
        if prefix != "env.":
            return {}
        from neurorl_cli.families.firefly.env import Firefly
        from neurorl_cli.specs import describe_signature

        return describe_signature(Firefly.__init__)

    def source(self, task) -> str:
        return "firefly navigation (batched torch)"

    def offer(self, task: dict) -> Offer:
        # Its gymnasium view exists (neurorl/Firefly-v0), but evaluations and analyses play trials
        # through the engine's own recorder (the EKF agents' belief), so library engines are not offered it.
        return Offer(observations="vector", actions="box", observation_space="a vector", action_space="Box(-1, 1, (2,))",
                     single_env=False, batched=True, features=frozenset({"motion-model"}))

    def batched_env(self, task: dict, n: int, seed: int, device: str = "cpu", extra_kwargs: dict | None = None):
        from neurorl_cli.families.firefly.env import Firefly

        return Firefly(n=n, seed=seed, device=device, **{**task.get("env", {}), **(extra_kwargs or {})})

    def rollout(self, policy, task: dict, protocol: dict):
        raise NotOffered("firefly trials are played by the engine that trained the agent (TD3's trials)")

    def gym_ids(self) -> dict[str, tuple[str, dict]]:
        return {"Firefly-v0": ("neurorl_cli.families.firefly.env:FireflyEnv", {})}

    def best_sections(self, ctx, protocol: str) -> list:
        from neurorl_cli.families.firefly.report import best_sections

        return best_sections(ctx, protocol)

    def methods(self, task: dict) -> str:
        from neurorl_cli.analysis.prose import with_settings

        return (f"Agents were trained on the firefly navigation task {task['name']} (dt 0.1 s, at most 35 steps; "
                f"environment settings: {with_settings(task.get('env', {}), 'the defaults')}).")

    def watch(self, request: WatchRequest) -> Recording:
        """Trials of the protocol seen from above, step by step (the EKF agents included, since the
        recording runs their filter)."""
        from neurorl_cli.errors import WorkFailed
        from neurorl_cli.families.firefly import analysis

        trials = request.trials or WATCH_TRIALS
        env_seed = request.env_seed
        try:
            recording = analysis.record(request.engine, request.config, request.path, {**request.spec, "seed": env_seed}, trials=trials)
        except ValueError as exc:
            raise WorkFailed(str(exc)) from exc
        run, step = request.run, request.checkpoint.step
        frames = analysis.render_frames(recording, f"run r{run.id} (seed {run.seed}), step {step}, {request.protocol}", trials)
        return Recording(frames, FRAME_MS, f"watch-run{run.id}-step{step}.gif", ["--seed", str(env_seed), "--trials", str(trials)])


family = FireflyFamily()
