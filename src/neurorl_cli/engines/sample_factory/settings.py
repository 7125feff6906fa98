"""Every setting of a sample-factory model, with its default: shared by the engine (its
spec) and the trainer and glue (the sample-factory config they build)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from neurorl_cli.nets.retinal import ENCODER_SETTINGS, EncoderSettings


class SampleFactoryHyper(EncoderSettings):
    """Every setting of a sample-factory model, with its default (engines/sample_factory.py).

    Defaults are sample-factory 1.x APPO's with retinal-rl's overrides (reference, sf1-legacy;
    learning_rate and gamma are SF1's base defaults as remembered, not confirmed in a source),
    except `num_workers`: sample-factory starts one per CPU core; 2 keeps a laptop usable.
    Encoder settings left at None take the encoder's own default (nets/retinal.py).
    """

    # the encoder's settings (EncoderSettings), but for
    hidden_size: int = Field(64, gt=0)  # encoder output and GRU size (retinal override; SF: 512)
    # sample-factory APPO
    num_workers: int = Field(2, gt=0)  # rollout worker processes (SF: one per core)
    num_envs_per_worker: int = Field(10, gt=0)  # retinal override (SF: 2)
    worker_num_splits: int = Field(2, gt=0)  # double-buffered sampling
    batch_size: int = Field(2048, gt=0)  # retinal override (SF: 1024)
    num_batches_per_epoch: int = Field(1, gt=0)
    num_epochs: int = Field(1, gt=0)  # PPO epochs per batch
    rollout: int = Field(32, gt=0)
    recurrence: int = Field(32, gt=0)  # BPTT length
    rnn_type: Literal["gru", "lstm"] = "gru"
    rnn_num_layers: int = Field(1, gt=0)
    learning_rate: float = Field(1e-4, gt=0)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)  # used only without V-trace
    with_vtrace: bool = True
    ppo_clip_ratio: float = Field(0.1, gt=0)
    ppo_clip_value: float = Field(0.2, gt=0)  # retinal override (SF: 1.0)
    value_loss_coeff: float = Field(0.5, ge=0)
    exploration_loss: Literal["entropy", "symmetric_kl"] = "symmetric_kl"  # retinal override
    exploration_loss_coeff: float = Field(0.001, ge=0)  # retinal override (SF: 0.003)
    reward_scale: float = Field(0.1, gt=0)  # retinal override (SF: 1.0)
    max_grad_norm: float = Field(4.0, ge=0)
    adam_eps: float = Field(1e-6, gt=0)

    @model_validator(mode="after")
    def _consistent(self):
        if self.rollout % self.recurrence:
            raise ValueError(f"rollout ({self.rollout}) must be a multiple of recurrence ({self.recurrence})")
        if self.batch_size % self.recurrence:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of recurrence ({self.recurrence})")
        if self.num_envs_per_worker % self.worker_num_splits:
            raise ValueError(f"num_envs_per_worker ({self.num_envs_per_worker}) must be a multiple of "
                             f"worker_num_splits ({self.worker_num_splits})")
        # sample-factory's own verify_cfg checks these only once its workers are starting
        if self.recurrence < 2:
            raise ValueError(f"recurrence ({self.recurrence}) must be at least 2: the GRU core learns through time")
        if self.with_vtrace and self.recurrence != self.rollout:
            raise ValueError(f"with V-trace, recurrence ({self.recurrence}) must equal rollout ({self.rollout}); "
                             "or set model.with_vtrace=false")
        return self

    def encoder_settings(self) -> dict[str, Any]:
        """The encoder's settings as make_encoder takes them (None: the encoder's default)."""
        return {k: getattr(self, k) for k in ENCODER_SETTINGS if getattr(self, k) is not None}
