"""The conditioning family: cue-reward schedules simulated as tensors (drl_sim's tasks), on which
value predictors learn; no agent acts, so its report and watch show the stored predictors."""

from __future__ import annotations

from neurorl_cli.families.conditioning.spec import ConditioningTask
from neurorl_cli.interfaces import FamilyBase, NotOffered, Offer, Recording, WatchRequest

TRAINING_KEY = "perf/cue_value_mean"
WATCH_FRAMES = 100  # at most this many trials are animated unless --trials says otherwise
FPS = 7


class ConditioningFamily(FamilyBase):
    name = "conditioning"
    task_spec = ConditioningTask
    set_paths = ("schedule.",)
    training_key = TRAINING_KEY
    x_label = "trials"
    plays_checkpoint = False  # its watch animates the stored simulation of the run

    def source(self, task) -> str:
        return "cue-reward schedule (batched torch)"

    def offer(self, task: dict) -> Offer:
        return Offer(observations="none", actions="none", observation_space="cues (a complete serial compound)",
                     action_space="none (no agent acts)", features=frozenset({"cue-reward-schedule"}))

    def rollout(self, policy, task: dict, protocol: dict):
        raise NotOffered("a conditioning schedule has no agent acting: its engine measures its predictors")

    def run_sections(self, ctx) -> list:
        from neurorl_cli.families.conditioning.report import run_sections

        return run_sections(ctx)

    def methods(self, task: dict) -> str:
        from neurorl_cli.families.conditioning.report import methods

        return methods(task)

    def watch(self, request: WatchRequest) -> Recording:
        from neurorl_cli.errors import UserError
        from neurorl_cli.families.conditioning import analysis

        run, trial_type = request.run, int(request.options.get("trial_type", 0))
        try:
            sim = analysis.load_simulation(run.run_dir)
        except FileNotFoundError:
            raise UserError(f"run r{run.id} has no simulation yet (status {run.status}): it is written when the run completes") from None
        try:
            rows = analysis.animation_trials(sim, trial_type, None, request.trials or WATCH_FRAMES)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        frames = analysis.render_animation(sim, trial_type, rows, f"run r{run.id} (seed {run.seed})")
        words = ["--trial-type", str(trial_type)] + (["--trials", str(request.trials)] if request.trials else [])
        return Recording(frames, int(round(1000 / FPS)), f"watch-run{run.id}-type{trial_type}.gif", words)


family = ConditioningFamily()
