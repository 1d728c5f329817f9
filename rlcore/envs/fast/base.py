"""What every batched rlcore.envs.fast environment shares: spaces, per-env generators seeded as
Gymnasium seeds them, action validation, and closing.

A subclass sets NAME, ACTIONS (the meaning of each discrete action, for error messages) and its
observation bound, and writes its own `reset` and `step` (the dynamics)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space


class BatchedEnv:
    """N copies of one discrete-action environment behind the vector-env protocol's plumbing.

    NAME: the class name used in messages; ACTIONS: one description per action, e.g. ("push left", ...).
    """

    NAME = "BatchedEnv"
    ACTIONS: tuple[str, ...] = ()

    def __init__(self, num_envs: int, max_episode_steps: int, obs_high: np.ndarray):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps)
        self.single_observation_space = spaces.Box(-obs_high, obs_high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(len(self.ACTIONS))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": "same-step"}
        self._rngs: list[np.random.Generator] = []
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._closed = False

    def _seed(self, seed: int | None) -> None:
        """With `seed`, environment i gets the generator Gymnasium would build for `reset(seed=seed + i)`;
        without it (and no generators yet), fresh entropy. Generators are kept across resets, as
        Gymnasium keeps `np_random`."""
        if seed is not None or not self._rngs:
            seeds = [None] * self.num_envs if seed is None else [int(seed) + i for i in range(self.num_envs)]
            # Gymnasium's seeding.np_random(s) is Generator(PCG64(SeedSequence(s))) = default_rng(s).
            self._rngs = [np.random.default_rng(s) for s in seeds]

    def _validate(self, actions) -> np.ndarray:
        """actions [N] as int64, or a ValueError that names the first bad environment."""
        actions = np.asarray(actions)
        n = len(self.ACTIONS)
        allowed = ", ".join(str(a) for a in range(n - 1)) + f" or {n - 1}"
        if actions.shape != (self.num_envs,):
            raise ValueError(f"{self.NAME}.step expects actions of shape ({self.num_envs},), one per environment; "
                             f"got shape {actions.shape}. For a single action per env, pass a 1-D array.")
        if not np.issubdtype(actions.dtype, np.integer):
            if np.issubdtype(actions.dtype, np.floating) and np.all(actions == np.round(actions)):
                actions = actions.astype(np.int64)
            else:
                raise ValueError(f"{self.NAME} actions must be integers {allowed}, got dtype {actions.dtype}.")
        outside = (actions < 0) | (actions >= n)
        if np.any(outside):
            bad = np.flatnonzero(outside)[0]
            meanings = ", ".join(f"{a} ({text})" for a, text in enumerate(self.ACTIONS))
            raise ValueError(f"{self.NAME} actions must be {meanings}; env {bad} got {actions[bad]}.")
        return actions

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {self.NAME} vector env is closed; create a new one.")

    def close(self) -> None:
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{self.NAME}(num_envs={self.num_envs}, max_episode_steps={self.max_episode_steps})"
