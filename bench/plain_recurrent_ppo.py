"""What a user would write without neurorl: the NeuroGym tutorial's RecurrentPPO call.

Prints the configuration it trained with (as JSON on its last line), so the overhead
benchmark can check that both sides ran the same thing."""

import json
import sys

import gymnasium as gym
import neurogym  # noqa: F401  (registers the tasks)
from neurogym.wrappers import PassReward
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.vec_env import DummyVecEnv



class SeedlessReset(gym.Wrapper):
    """sb3 2.9's DummyVecEnv calls reset(seed=...), which neurogym 1.0.8's PassReward does not
    take: the tutorial as written stops with a TypeError without this."""

    def reset(self, *, seed=None, options=None):
        return self.env.reset(options=options)


steps, out = int(sys.argv[1]), sys.argv[2]
timing = {"fixation": ("constant", 300), "stimulus": ("constant", 500), "decision": ("constant", 300)}
env = DummyVecEnv([lambda: SeedlessReset(PassReward(gym.make("PerceptualDecisionMaking-v0", dt=100, timing=timing)))])
model = RecurrentPPO("MlpLstmPolicy", env, verbose=0, seed=0)
model.learn(total_timesteps=steps)
model.save(out)
hyper = {k: getattr(model, k) for k in ("learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda",
                                       "ent_coef", "vf_coef", "max_grad_norm")}
hyper["clip_range"] = model.clip_range(1.0)
hyper["lstm_hidden_size"] = model.policy.lstm_actor.hidden_size
print(json.dumps({"hyper": hyper, "timesteps": model.num_timesteps, "dt": 100, "timing_ms": [300, 500, 300]}))
