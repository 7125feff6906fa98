"""Errors the CLI turns into one line and an exit code."""


class UserError(Exception):
    """Bad input (unknown name, bad value, missing run): exit code 2, nothing stored changes."""

    exit_code = 2


class WorkFailed(Exception):
    """The work itself failed, in part or whole (damaged data, a crashed run): exit code 1."""

    exit_code = 1
