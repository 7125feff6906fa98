"""neurorl: reinforcement learning on neuroscience tasks, with a registry of every run."""
__version__ = "0.1.0"
