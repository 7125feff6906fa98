"""Errors the CLI turns into one line and an exit code."""


class UserError(Exception):
    """Bad input (unknown name, bad value, missing run): exit code 2, nothing stored changes."""

    exit_code = 2


class WorkFailed(Exception):
    """The work itself failed, in part or whole (damaged data, a crashed run): exit code 1."""

    exit_code = 1


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped the work; what was stopped is marked cancelled. Exit code 130.

    Not a KeyboardInterrupt, which the CLI framework would turn into a generic abort."""

    exit_code = 130
