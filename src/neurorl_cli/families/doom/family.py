"""The Doom family: ViZDoom scenarios (neurorl's `retinal_<name>` or vizdoom's own) seen as
images, played with turn x move actions; its report holds retinal-rl's analyses."""

from __future__ import annotations

from neurorl_cli.families.doom.spec import DoomTask, environment
from neurorl_cli.interfaces import FamilyBase, Offer, Recording, WatchRequest

MAX_FRAMES = 1050  # GIFs stop here (a 2100-tic episode at frame skip 4 is 525 frames)

# `gym.make("neurorl/DoomAppleGathering-v0")` is a DoomEnv with the tasks' settings (128x72, frame
# skip 4, shaped reward, Tuple actions); keyword arguments change them.
GYM_SCENARIOS = {"DoomBasic-v0": "basic", "DoomHealthGathering-v0": "health_gathering",
                 "DoomAppleGathering-v0": "retinal_apple_gathering"}


class DoomFamily(FamilyBase):
    name = "doom"
    task_spec = DoomTask
    libraries = {"vizdoom": "ViZDoom"}
    x_label = "agent steps"
    evaluation_unit = "episode"  # a Doom protocol counts whole episodes (its rows are episodes)

    @property
    def training_key(self) -> str:
        from neurorl_cli.families.doom.analysis import TRUE_REWARD_KEY

        return TRUE_REWARD_KEY

    @property
    def more_training_keys(self) -> tuple[str, ...]:
        # the shaped reward the agent learns from, and the frames per second
        from neurorl_cli.families.doom.analysis import FPS_KEY, SHAPED_REWARD_KEY

        return (SHAPED_REWARD_KEY, FPS_KEY)

    def environment(self, task: dict) -> dict:
        return environment(task)

    def source(self, task) -> str:
        return f"ViZDoom {task.scenario} ({task.width}x{task.height}, frame skip {task.frame_skip})"

    def offer(self, task: dict) -> Offer:
        from neurorl_cli.errors import UserError
        from neurorl_cli.families.doom.env import scenario_path

        try:
            scenario_path(task["scenario"])
            problem = None
        except UserError as exc:
            problem = str(exc)
        shape = (task["height"], task["width"], 3)
        return Offer(observations="image", actions="multidiscrete",
                     observation_space=f"Box(0, 255, ({task['height']}, {task['width']}, 3), uint8)",
                     action_space="MultiDiscrete([3 3]): turn x move", observation_shape=shape,
                     single_env=True, features=frozenset({"vizdoom-scenario"}), problem=problem)

    def single_env(self, task: dict, seed: int, **options):
        from neurorl_cli.families.doom.env import task_env

        return task_env(task, seed=seed, actions=options.get("actions", "multidiscrete"))

    def rollout(self, policy, task: dict, protocol: dict):
        from neurorl_cli.families.doom.env import evaluate

        return evaluate(policy, task, protocol, actions=getattr(policy, "action_format", "multidiscrete"))

    def gym_ids(self) -> dict[str, tuple[str, dict]]:
        return {name: ("neurorl_cli.families.doom.env:DoomEnv", {"scenario": scenario})
                for name, scenario in GYM_SCENARIOS.items()}

    def protocol_sections(self, ctx, protocol: str) -> list:
        from neurorl_cli.families.doom.report import protocol_sections

        return protocol_sections(ctx, protocol)

    def best_sections(self, ctx, protocol: str) -> list:
        from neurorl_cli.families.doom.report import best_sections

        return best_sections(ctx, protocol)

    def methods(self, task: dict) -> str:
        return (f"Agents were trained on the ViZDoom task {task['name']} (scenario {task['scenario']}, "
                f"{task['width']}x{task['height']} RGB observations, frame skip {task['frame_skip']}, turn x move actions"
                + ("; +1 whenever health rose was added to the training reward and reported apart from the true reward"
                   if task.get("shape_reward") else "") + ").")

    def watch(self, request: WatchRequest) -> Recording:
        """What the agent sees (the full screen) with its health and action, over whole episodes of
        the protocol's environment (its frame skip; its greedy or sampled actions). `--trials`
        counts episodes here (default 1)."""
        from neurorl_cli.families.doom.env import play
        from neurorl_cli.families.doom.watch import DOOM_TIC_MS, doom_frames

        task, spec, env_seed = request.config["task"], request.spec, request.env_seed
        episodes = request.trials or 1
        policy = request.policy()
        steps = []
        for step in play(policy, task, env_seed, spec.get("kwargs") or None,
                         deterministic=spec.get("actions", "greedy") == "greedy",
                         actions=getattr(policy, "action_format", "multidiscrete")):
            steps.append(step)
            if (step["done"] and step["episode"] + 1 >= episodes) or len(steps) >= MAX_FRAMES:
                break
        frames = doom_frames(steps, steps[0]["buttons"] if steps else None)
        frame_skip = int((spec.get("kwargs") or {}).get("frame_skip", task.get("frame_skip", 4)))
        duration = max(20, round(frame_skip * DOOM_TIC_MS))  # real time (GIF viewers floor shorter frames)
        run, step = request.run, request.checkpoint.step
        return Recording(frames, duration, f"watch-run{run.id}-step{step}.gif",
                         ["--seed", str(env_seed), "--trials", str(episodes)])


family = DoomFamily()
