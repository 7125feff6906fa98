"""Progress bars fed by ingests, shared by every dispatcher."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def bars(console: Console, runs, total_steps: dict[int, int]) -> tuple[Progress, dict[int, int]]:
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[perf]}"),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=console, transient=False,
    )
    tasks = {
        r.id: progress.add_task(f"run r{r.id} seed {r.seed}", total=total_steps[r.id], rate="", perf="", status="queued")
        for r in runs
    }
    return progress, tasks


def show(progress: Progress, tasks: dict[int, int], state: dict, jobs: dict[int, str] | None = None) -> None:
    for rid, task in tasks.items():
        p = state.get(rid)
        if p is None:
            continue
        rate = p.latest.get("train/steps_per_s") or p.latest.get("train/trials_per_s")
        perf = p.latest.get("perf/trial_performance")
        status = p.status
        if jobs and jobs.get(rid) and p.status == "queued":
            status = f"queued ({jobs[rid]})"  # the scheduler's view while the worker has not started
        progress.update(
            task, completed=p.step, status=status,
            rate=f"{rate:,.0f}/s" if rate else "", perf=f"perf {perf:.2f}" if perf is not None else "",
        )
