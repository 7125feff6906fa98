"""Checkpoints played under a protocol: metrics and one row per trial, with no registry and no
console. The engine loads (or evaluates) a checkpoint; the task's family plays its trials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from neurorl_cli import plugins
from neurorl_cli.interfaces import NotOffered

BATCHED_CHECKPOINTS = 50  # checkpoints an engine with `evaluate_many` evaluates in one pass


def verify_checkpoint(run_dir: str, path: str, sha256: str) -> Path:
    """The checkpoint's file, after checking it is there and unchanged; raises ValueError."""
    from neurorl_cli.atomic import sha256 as file_sha256

    full = Path(run_dir) / path
    if not full.is_file():
        raise ValueError(f"checkpoint file {full} is missing")
    if file_sha256(full) != sha256:
        raise ValueError(f"checkpoint file {full} is damaged (its sha256 differs from the one registered)")
    return full


def evaluate(config: dict, checkpoint: Path, protocol: dict, device: str = "cpu") -> tuple[dict, list[dict]]:
    """One checkpoint under one protocol: (metrics, one row per trial or episode)."""
    return plugins.engine_of(config).evaluate(plugins.family_of(config), config, checkpoint, protocol, device)


def evaluate_each(config: dict, protocol: dict, files: list[tuple[object, Path]], device: str = "cpu") -> Iterator[tuple[object, object]]:
    """(key, (metrics, rows) or the exception that stopped it) for each (key, file). An engine that
    can evaluate several checkpoints in one pass (`evaluate_many`) gets them in batches, and one at a
    time when a batch fails, so one bad checkpoint does not stop the others."""
    engine = plugins.engine_of(config)
    one_at_a_time = files
    if hasattr(engine, "evaluate_many"):
        one_at_a_time = []
        for start in range(0, len(files), BATCHED_CHECKPOINTS):
            chunk = files[start:start + BATCHED_CHECKPOINTS]
            try:
                results = engine.evaluate_many(config, [f for _, f in chunk], protocol, device)
            except NotOffered:  # this model's trainer has no batched evaluation
                one_at_a_time = files
                break
            except Exception:
                one_at_a_time += chunk
                continue
            yield from zip((key for key, _ in chunk), results)
    for key, file in one_at_a_time:
        try:
            yield key, evaluate(config, file, protocol, device)
        except Exception as exc:
            yield key, exc
