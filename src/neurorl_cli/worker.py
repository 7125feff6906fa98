"""A worker process: trains one run from its run directory, reporting only through the run log."""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path

from .backends.base import RunConfig, backend_for
from .runlog import RunLog, read_run_file


class Cancelled(KeyboardInterrupt):
    """SIGTERM (scancel, preemption, the dispatcher's Ctrl-C) ends the run cleanly."""


def _on_sigterm(signum, frame):
    raise Cancelled()


def run_worker(run_dir: Path) -> int:
    run = RunConfig(**read_run_file(run_dir))
    log = RunLog(Path(run.run_dir), attempt=run.attempt)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        backend_for(run.config).train(run, log)
        log.finish("completed")
        return 0
    except KeyboardInterrupt:
        log.finish("cancelled", error="stopped by a signal (Ctrl-C or SIGTERM)")
        return 130
    except Exception as exc:  # the run failed: say why in the registry, keep the traceback in the log
        traceback.print_exc(file=sys.stderr)
        log.finish("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        return 1
    finally:
        log.close()


if __name__ == "__main__":
    # The local dispatcher starts workers this way: no CLI framework to import first.
    sys.exit(run_worker(Path(sys.argv[1])))
