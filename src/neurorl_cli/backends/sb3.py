"""Checkpoints of sb3 models with a retinal encoder saved before the plug-in layout name their
features extractor `neurorl_cli.backends.sb3.RetinalFeatures`; sb3's own `load` (in a user's
notebook, say) unpickles that path. neurorl's loader never does (engines/sb3/trainer.load_model)."""

from neurorl_cli.engines.sb3.trainer import RetinalFeatures

__all__ = ["RetinalFeatures"]
