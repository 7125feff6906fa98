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


# The Doom tasks' scenarios: `gym.make("neurorl/DoomAppleGathering-v0")` is a DoomEnv with the
# tasks' settings (128x72, frame skip 4, shaped reward, Tuple actions); keyword arguments change them.
DOOM_IDS = {
    "DoomBasic-v0": "basic",
    "DoomHealthGathering-v0": "health_gathering",
    "DoomAppleGathering-v0": "retinal_apple_gathering",
}


def register() -> None:
    from gymnasium.envs import registration

    in_namespace = registration.current_namespace == "neurorl"
    entries = {name: (entry, {}) for name, entry in IDS.items()}
    entries.update({name: ("neurorl_cli.envs.doom:DoomEnv", {"scenario": scenario}) for name, scenario in DOOM_IDS.items()})
    for name, (entry, kwargs) in entries.items():
        if f"neurorl/{name}" not in registration.registry:
            registration.register(id=name if in_namespace else f"neurorl/{name}", entry_point=entry, kwargs=kwargs)
