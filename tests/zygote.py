"""A process that has imported what every `neurorl` command imports, and forks one child per
command the tests run (`tests/conftest.py:cli`).

Each CLI process of the suite used to spend 2-3 s importing torch, pandas, SQLAlchemy and our
modules before doing anything, about a fifth of the suite's time. A child forked from here skips
that and is otherwise the command a user runs: its own process, running `python -m neurorl_cli`
(runpy, as `-m` does) with the test's arguments, environment, working folder and output files,
exiting with its own code. Only imports happen here before the fork, no torch computation
(OpenMP's thread pool, which torch starts at its first parallel operation, does not survive a
fork; OpenBLAS's, which numpy starts at import, shuts down around one), and no cache is filled:
plug-ins, the catalog and the registry are found by each child as in a fresh process.

Protocol, one JSON line each way per command: the test sends {args, env, cwd, stdout, stderr}
(the two output paths); this process answers {"pid": N} once the child runs, then {"rc": N}.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
import threading
import traceback
from importlib import import_module


def _preload() -> None:
    import torch  # noqa: F401  (the bulk of the start-up)

    from neurorl_cli import plugins
    from neurorl_cli.cli import app

    for name in app.COMMAND_MODULES:
        import_module(f"neurorl_cli.cli.{name}")
    # The built-in families' and engines' modules (not their plug-in table, which each child
    # builds); they import their libraries lazily, so sample-factory and ViZDoom stay unloaded.
    for ref in plugins.BUILTIN_FAMILIES + plugins.BUILTIN_ENGINES:
        import_module(ref.partition(":")[0])
    import neurorl_cli.training  # noqa: F401  (train's module, with pandas)
    # What commands import when they run: the registry's migrations, rich's tables.
    for name in ("alembic.command", "alembic.config", "alembic.script", "alembic.runtime.migration", "rich.table"):
        import_module(name)


def _serve(replies) -> dict | None:
    """Fork a child per request; return the request in the child, None in this process at EOF."""
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()  # nothing buffered here is written twice by the child
        pid = os.fork()
        if pid == 0:
            return request
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()
    return None


def _become(request: dict) -> None:
    """In the child: the command's folder, environment, arguments and standard streams."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.close(null)
    os.closerange(3, 256)  # the reply pipe and anything else of this process's
    sys.argv = [sys.argv[0], *request["args"]]  # runpy sets argv[0] as `-m` does


def main() -> None:
    # Replies go on a copy of stdout; stdout itself points nowhere, so nothing printed while
    # importing mixes into the protocol.
    replies = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    _preload()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    request = _serve(replies)
    if request is None:
        return
    replies.close()
    _become(request)
    interrupted = False
    try:
        runpy.run_module("neurorl_cli", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001  (reported as the interpreter would: traceback, exit 1)
        traceback.print_exc()
        code, interrupted = 1, isinstance(exc, KeyboardInterrupt)
    _finish()
    if interrupted:  # as the interpreter reports an uncaught Ctrl-C: killed by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finish() -> None:
    """What the interpreter does at exit that can be seen from outside: wait for the threads
    still running, run the exit handlers, flush the streams. Tearing down the modules is left
    out: in a child forked from this large a heap it copies most pages (about 0.9 s a command)
    and changes nothing outside the process."""
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    main()
