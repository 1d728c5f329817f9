"""Running statistics for observation and reward normalization (PPO's implementation details 7-9).

Two traps this module exists to avoid:
- Running statistics must be updated with the batch mean and variance combined correctly (Chan et al.'s
  parallel algorithm), not by averaging means, or the variance is wrong whenever batches differ in size.
- Reward normalization divides rewards by the standard deviation of the *discounted return*, not of the
  reward, and that return must restart when an episode ends (terminated or truncated), per environment.
  It only rescales; it never subtracts a mean (that would change which policy is optimal).

Every array here is NumPy float64 on the host; the algorithms convert to tensors after normalizing.
"""

from __future__ import annotations

import numpy as np


class RunningMeanStd:
    """Mean and variance of everything seen so far, per feature.

    shape: the feature shape, e.g. (obs_dim,) or () for scalars. `update(x)` takes a batch [B, *shape].
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)  # a tiny prior count avoids dividing by zero before the first batch

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1:] != self.mean.shape:
            raise ValueError(f"RunningMeanStd of shape {self.mean.shape} got a batch of shape {x.shape}; "
                             f"expected [B, {', '.join(map(str, self.mean.shape))}].")
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), x.shape[0])

    def update_from_moments(self, batch_mean, batch_var, batch_count: float) -> None:
        """Combine with a batch summarized by its mean, (population) variance and size."""
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = np.array(state["mean"]), np.array(state["var"]), float(state["count"])


class ObsNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped to [-clip, clip]; statistics updated on every training batch."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8):
        self.stats = RunningMeanStd(shape)
        self.clip, self.epsilon = clip, epsilon

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        """obs [N, *shape] -> normalized float32 [N, *shape]; `update=False` for evaluation and final_obs."""
        if update:
            self.stats.update(obs)
        out = (obs - self.stats.mean) / np.sqrt(self.stats.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)


class RewardScaler:
    """r / sqrt(Var[discounted return] + eps), clipped; one running return per environment.

    `__call__(rewards [N], done [N])`: updates each env's return G <- gamma * G + r, feeds G to the
    statistics, scales the rewards, and restarts G of the envs whose episode ended at this step."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8):
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon

    def __call__(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        scaled = rewards / np.sqrt(self.stats.var + self.epsilon)
        self.returns[done] = 0.0
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)
