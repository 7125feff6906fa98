"""The extended Kalman filter belief of the firefly task's EKF agents, batched over trials.

The agent knows the task's dynamics (families/firefly/env.py), its joystick gains and noise levels,
and the actions it took; it observes its velocities with noise. The belief is kept in the
target-relative frame: it starts at (-target_x, -target_y, pi/2, 0, 0) with P = eps I, so
the mean's first two entries are the agent's position relative to the target (the goal is
to drive them to zero), which is what the policy needs once the target has disappeared.

Predict: the mean follows the noise-free dynamics (positions integrate the previous
velocities, velocities become gain * action + the known perturbation pulse); P' = A P A^T + Q
with A the dynamics' Jacobian and Q = sigma_p^2 on the two velocity entries (the velocities
are overwritten, so the process noise is all the uncertainty they have before the update).
Update: H picks (v, w), R = sigma_o^2 I.

Computations run in float64: with noise switched off the variances are eps^2 = 1e-16, which
the gain's inverse does not survive in float32 next to positions of order one.
"""

from __future__ import annotations

import math

import torch

from neurorl_cli.families.firefly.env import DT, MAX_ANGULAR, MAX_LINEAR, Firefly

BELIEF_DIM = 13
_POS_TRIU = torch.triu_indices(3, 3)  # (0,0) (0,1) (0,2) (1,1) (1,2) (2,2)

# Entries of the 13-d belief that change sign under a reflection across the y axis:
# x, w, cov(x, y), cov(y, heading); the heading maps to pi - heading.
BELIEF_MIRROR = (0, 4, 6, 9)


class FireflyEKF:
    def __init__(
        self,
        n: int,
        gain: float | torch.Tensor = 1.0,
        process_noise: float = 0.2,
        observation_noise: float = 0.1,
        device: str | torch.device = "cpu",
        eps: float = 1e-8,
    ):
        self.n = n
        self.device = torch.device(device)
        self.eps = float(eps)
        g = torch.as_tensor(gain, dtype=torch.float64, device=self.device).expand(n)
        self.gains = torch.stack([g * MAX_LINEAR, g * MAX_ANGULAR], dim=1)  # (n, 2)
        # a zero noise level becomes eps: the filter then trusts the model (or the observation) fully
        self.process_var = (process_noise * self.gains).clamp(min=self.eps) ** 2
        self.observation_var = (observation_noise * self.gains) ** 2
        self.mean = torch.zeros(n, 5, dtype=torch.float64, device=self.device)
        self.cov = torch.zeros(n, 5, 5, dtype=torch.float64, device=self.device)

    @classmethod
    def from_env(cls, env: Firefly, observation_noise: float | None = None) -> "FireflyEKF":
        """A filter with the env's gains and noise levels (the reference gives the agent both).
        `observation_noise` overrides the env's level, e.g. while phase I trains without it."""
        obs = env.observation_noise if observation_noise is None else observation_noise
        return cls(env.n, env.gain, env.process_noise, obs, device=env.device)

    def reset(self, target: torch.Tensor) -> torch.Tensor:
        """Start the trials' beliefs for targets (n, 2) in units; returns the belief vector (n, 13)."""
        target = torch.as_tensor(target, dtype=torch.float64, device=self.device).reshape(self.n, 2)
        self.mean = torch.zeros(self.n, 5, dtype=torch.float64, device=self.device)
        self.mean[:, :2] = -target
        self.mean[:, 2] = math.pi / 2
        self.cov = torch.eye(5, dtype=torch.float64, device=self.device).repeat(self.n, 1, 1) * self.eps
        return self.belief()

    def jacobian(self, mean: torch.Tensor) -> torch.Tensor:
        """(n, 5, 5) derivative of the dynamics at `mean`; the velocity rows are zero because the
        new velocities do not depend on the old ones."""
        heading, v = mean[:, 2], mean[:, 3]
        A = torch.zeros(self.n, 5, 5, dtype=torch.float64, device=self.device)
        A[:, 0, 0] = A[:, 1, 1] = A[:, 2, 2] = 1.0
        A[:, 0, 2] = -v * torch.sin(heading) * DT
        A[:, 0, 3] = torch.cos(heading) * DT
        A[:, 1, 2] = v * torch.cos(heading) * DT
        A[:, 1, 3] = torch.sin(heading) * DT
        A[:, 2, 4] = DT
        return A

    def step(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        perturbation: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One predict + update. `observation` (n, 2) is the observed (v, w) after the step (the
        first two entries of the env's observation), `action` (n, 2) the action taken,
        `perturbation` (n, 2) the pulse the env added (info["perturbation"]; the reference's
        filter knows it). Trials where `mask` is False keep their belief. Returns (n, 13)."""
        dev, f64 = self.device, torch.float64
        o = torch.as_tensor(observation, device=dev).to(f64).reshape(self.n, 2)
        a = torch.as_tensor(action, device=dev).to(f64).reshape(self.n, 2)
        pulse = torch.zeros(self.n, 2, dtype=f64, device=dev) if perturbation is None else torch.as_tensor(perturbation, device=dev).to(f64).reshape(self.n, 2)

        m, P = self.mean, self.cov
        px, py, heading, v, w = m.unbind(1)
        vel = self.gains * a + pulse
        pred = torch.stack([px + v * torch.cos(heading) * DT, py + v * torch.sin(heading) * DT, heading + w * DT, vel[:, 0], vel[:, 1]], dim=1)
        A = self.jacobian(m)
        P_pred = A @ P @ A.transpose(1, 2)
        P_pred[:, 3, 3] += self.process_var[:, 0]
        P_pred[:, 4, 4] += self.process_var[:, 1]

        # H selects the velocities, so H P H^T is P's velocity block and P H^T its last two columns.
        S = P_pred[:, 3:, 3:] + torch.diag_embed(self.observation_var)
        K = P_pred[:, :, 3:] @ torch.linalg.inv(S)  # (n, 5, 2)
        innovation = o - pred[:, 3:]
        new_mean = pred + (K @ innovation[:, :, None])[:, :, 0]
        KH = torch.zeros(self.n, 5, 5, dtype=f64, device=dev)
        KH[:, :, 3:] = K
        new_cov = (torch.eye(5, dtype=f64, device=dev) - KH) @ P_pred

        if mask is not None:
            keep = ~torch.as_tensor(mask, dtype=torch.bool, device=dev).reshape(self.n)
            new_mean = torch.where(keep[:, None], m, new_mean)
            new_cov = torch.where(keep[:, None, None], P, new_cov)
        self.mean, self.cov = new_mean, new_cov
        return self.belief()

    def belief(self) -> torch.Tensor:
        """(n, 13) float32: mean (5), upper triangle of the position covariance (6, row by row:
        xx xy xθ yy yθ θθ), the velocity variances (2)."""
        rows, cols = _POS_TRIU.to(self.device)
        pos = self.cov[:, rows, cols]
        vel = torch.diagonal(self.cov[:, 3:, 3:], dim1=1, dim2=2)
        return torch.cat([self.mean, pos, vel], dim=1).float()

    def position(self, target: torch.Tensor) -> torch.Tensor:
        """The believed position (n, 2) in the env's frame (units)."""
        return (self.mean[:, :2] + torch.as_tensor(target, device=self.device).to(torch.float64)).float()

    @staticmethod
    def mirror_belief(belief: torch.Tensor) -> torch.Tensor:
        """Belief vectors (..., 13) of the world reflected across the y axis."""
        out = belief.clone()
        out[..., list(BELIEF_MIRROR)] = -out[..., list(BELIEF_MIRROR)]
        out[..., 2] = math.pi - out[..., 2]
        return out
