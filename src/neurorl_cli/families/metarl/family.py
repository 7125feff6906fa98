"""The meta-RL family: Harlow's learning-to-learn task and the two-step task (Wang et al. 2018),
batched torch environments of our own with a gymnasium view of one episode for libraries."""

from __future__ import annotations

from typing import Any

from neurorl_cli.families.metarl.spec import MetaRLTask
from neurorl_cli.interfaces import FamilyBase, Offer, Recording, WatchRequest

WATCH_TRIALS = 6  # a whole Harlow episode, the first 6 two-step trials
FRAME_MS = 400

DESCRIPTIONS = {
    "harlow": "Harlow's learning-to-learn task (Wang et al. 2018): each episode shows two objects, one of them "
              "rewarded, over several trials with the sides balanced",
    "two-step": "the two-step task (Daw et al. 2011) as in Wang et al. 2018: a first-stage choice leads by a common "
                "or rare transition to a second-stage state whose reward probability switches",
}


class MetaRLFamily(FamilyBase):
    name = "meta-rl"
    task_spec = MetaRLTask
    set_paths = ("env.",)
    training_key = "train/episode_reward"

    def setting_defaults(self, task: dict, prefix: str) -> dict[str, Any]:
        if prefix != "env.":
            return {}
        from neurorl_cli.families.metarl import envs

        return envs.env_kwargs(task["kind"])

    def source(self, task) -> str:
        return f"{task.kind} (batched torch)"

    def offer(self, task: dict) -> Offer:
        return Offer(observations="vector", actions="discrete", observation_space="a vector", action_space="Discrete(2)",
                     single_env=True, batched=True)

    def single_env(self, task: dict, seed: int, **options):
        from neurorl_cli.families.metarl import envs

        return envs.single_env(task["kind"])(seed=seed, **task.get("env", {}))

    def batched_env(self, task: dict, n: int, seed: int, device: str = "cpu", extra_kwargs: dict | None = None):
        from neurorl_cli.families.metarl import envs

        return envs.make(task, n, seed, device, extra_kwargs)

    def rollout(self, policy, task: dict, protocol: dict):
        from neurorl_cli.families.metarl.rollout import evaluate_batched

        return evaluate_batched(policy, task, protocol, protocol.get("actions", "greedy") == "greedy")

    def gym_ids(self) -> dict[str, tuple[str, dict]]:
        return {"Harlow-v0": ("neurorl_cli.families.metarl.envs:HarlowEnv", {}),
                "TwoStep-v0": ("neurorl_cli.families.metarl.envs:TwoStepEnv", {})}

    def protocol_sections(self, ctx, protocol: str) -> list:
        from neurorl_cli.families.metarl.report import protocol_sections

        return protocol_sections(ctx, protocol)

    def methods(self, task: dict) -> str:
        from neurorl_cli.analysis.prose import with_settings

        return (f"Agents were trained on the meta-RL task {task['name']}, {DESCRIPTIONS[task['kind']]} "
                f"(environment settings: {with_settings(task.get('env', {}), 'the defaults')}).")

    def watch(self, request: WatchRequest) -> Recording:
        """The first trials of one episode of the protocol's environment, step by step."""
        from neurorl_cli.families.metarl import analysis

        task, trials, spec, env_seed = request.config["task"], request.trials or WATCH_TRIALS, request.spec, request.env_seed
        episode = analysis.record_episode(request.policy(), task, env_seed, spec.get("kwargs") or None,
                                          deterministic=spec.get("actions", "greedy") == "greedy")
        episode = episode[episode["trial"] <= trials]
        run, step = request.run, request.checkpoint.step
        title = f"run r{run.id} (seed {run.seed}), step {step}, {request.protocol}, env seed {env_seed}"
        return Recording(analysis.render_frames(episode, task, title), FRAME_MS, f"watch-run{run.id}-step{step}.gif",
                         ["--seed", str(env_seed), "--trials", str(trials)])


family = MetaRLFamily()
