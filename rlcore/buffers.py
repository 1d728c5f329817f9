"""Experience storage: on-policy rollouts ([T, N], time-major) and an off-policy replay buffer.

Rollout (PPO, A2C): T steps of N environments, stored as tensors [T, N, ...] on the training device.
Row t holds what the agent saw and did at step t and what the step returned:

    obs[t]          [N, *obs_shape]  observation the action was taken from
    actions[t]      [N] or [N, act_dim]
    logprobs[t]     [N]              log pi(a_t | s_t) at collection time (the "old" policy of PPO)
    values[t]       [N]              V(s_t) at collection time
    rewards[t]      [N]
    terminated[t]   [N] bool         s_{t+1} is terminal: bootstrap from 0
    truncated[t]    [N] bool         cut by a time limit: bootstrap from V(final observation)
    next_values[t]  [N]              V(s_{t+1}), filled by `bootstrap` after the rollout

ReplayBuffer (DQN): a ring of the last `capacity` transitions (obs, action, reward, next_obs, terminated).
`next_obs` is the observation the step really led to (info["final_obs"] when the episode ended), never
the first observation of the next episode; and only `terminated`, not `truncated`, stops bootstrapping.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class Rollout:
    """Preallocated [T, N] storage for one on-policy rollout (see the module docstring for the fields)."""

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 *, continuous: bool, device: torch.device | str = "cpu"):
        T, N = num_steps, num_envs
        self.num_steps, self.num_envs, self.device = T, N, torch.device(device)
        self.obs = torch.zeros((T, N, *obs_shape), device=self.device)
        self.actions = torch.zeros((T, N, *action_shape), device=self.device,
                                   dtype=torch.float32 if continuous else torch.long)
        self.logprobs = torch.zeros((T, N), device=self.device)
        self.values = torch.zeros((T, N), device=self.device)
        self.rewards = torch.zeros((T, N), device=self.device)
        self.terminated = torch.zeros((T, N), device=self.device, dtype=torch.bool)
        self.truncated = torch.zeros((T, N), device=self.device, dtype=torch.bool)
        self.next_values = torch.zeros((T, N), device=self.device)
        # Final observations of truncated episodes: (t, env indices [K], obs [K, *obs_shape]).
        self._truncated_final: list[tuple[int, np.ndarray, np.ndarray]] = []

    def add(self, t: int, obs: torch.Tensor, actions: torch.Tensor, logprobs: torch.Tensor, values: torch.Tensor,
            rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, final_obs: np.ndarray) -> None:
        """Store step t. rewards, terminated, truncated [N] and final_obs [N, *obs_shape] come from the env."""
        if t == 0:
            self._truncated_final.clear()
        self.obs[t], self.actions[t], self.logprobs[t], self.values[t] = obs, actions, logprobs, values
        self.rewards[t] = torch.as_tensor(rewards, device=self.device)
        self.terminated[t] = torch.as_tensor(terminated, device=self.device)
        self.truncated[t] = torch.as_tensor(truncated, device=self.device)
        cut = truncated & ~terminated
        if cut.any():
            idx = np.flatnonzero(cut)
            self._truncated_final.append((t, idx, final_obs[idx]))

    @torch.no_grad()
    def bootstrap(self, value_fn: Callable[[torch.Tensor], torch.Tensor], last_obs: torch.Tensor) -> torch.Tensor:
        """Fill next_values: V(s_{t+1}) is the next row's value, except after the last step (V(last_obs))
        and where an episode was truncated (V(final observation), not V(first obs of the next episode)).
        Returns next_values [T, N]."""
        self.next_values[:-1] = self.values[1:]
        self.next_values[-1] = value_fn(last_obs)
        for t, idx, final in self._truncated_final:
            self.next_values[t, torch.as_tensor(idx, device=self.device)] = value_fn(
                torch.as_tensor(final, device=self.device, dtype=torch.float32))
        return self.next_values


class ReplayBuffer:
    """Uniform replay of the last `capacity` transitions, stored as NumPy arrays on the host.

    `add` takes a batch from N vector envs: obs [N, *obs_shape], actions [N], rewards [N],
    next_obs [N, *obs_shape] (the true next observation: final_obs where an episode ended),
    terminated [N] bool. `sample(batch_size, rng)` returns torch tensors of those fields, [B, ...].
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype=np.float32):
        if capacity < 1:
            raise ValueError(f"replay capacity must be at least 1, got {capacity}.")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.pos, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        n = len(actions)
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx], self.next_obs[idx] = obs, next_obs
        self.actions[idx], self.rewards[idx], self.terminated[idx] = actions, rewards, terminated
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device | str = "cpu") -> dict:
        """A uniform minibatch (with replacement) as tensors: obs, actions, rewards, next_obs, terminated [B, ...]."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer; add transitions first "
                               "(DQN waits learning_starts steps before its first update).")
        idx = rng.integers(0, self.size, size=batch_size)
        return {name: torch.as_tensor(getattr(self, name)[idx], device=device)
                for name in ("obs", "actions", "rewards", "next_obs", "terminated")}

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in ("obs", "next_obs", "actions", "rewards", "terminated",
                                                       "pos", "size")}

    def load_state_dict(self, state: dict) -> None:
        """Copy a `state_dict` into this buffer's own arrays (never share them: the source buffer would
        go on writing into this one). The capacities must match, or the ring positions would be wrong."""
        if len(state["obs"]) != self.capacity:
            raise ValueError(f"the saved replay buffer holds {len(state['obs'])} transitions but this one has "
                             f"capacity {self.capacity}; resume with the buffer_size the run was started with.")
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name)[...] = state[name]
        self.pos, self.size = int(state["pos"]), int(state["size"])
