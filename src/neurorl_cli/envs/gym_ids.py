"""`neurorl/<Name>-v0` ids for gymnasium.

gymnasium calls `register` through the `gymnasium.envs` entry point (pyproject) inside the
`neurorl` namespace while it is itself being imported, so this module imports nothing heavy
and reaches the registry through `gymnasium.envs.registration` (the top-level package is
not ready yet): the environments load only when an id is made.
"""

from __future__ import annotations

IDS = {
    "Harlow-v0": "neurorl_cli.envs.batched:HarlowEnv",
    "TwoStep-v0": "neurorl_cli.envs.batched:TwoStepEnv",
    "Firefly-v0": "neurorl_cli.envs.firefly:FireflyEnv",
}


def register() -> None:
    from gymnasium.envs import registration

    in_namespace = registration.current_namespace == "neurorl"
    for name, entry in IDS.items():
        if f"neurorl/{name}" not in registration.registry:
            registration.register(id=name if in_namespace else f"neurorl/{name}", entry_point=entry)
