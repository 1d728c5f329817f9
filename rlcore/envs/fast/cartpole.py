"""CartPole-v1 for N environments at once, in NumPy, identical to Gymnasium's `CartPole-v1`.

Gymnasium's CartPole is a Python object stepped once per call: about 10 microseconds of interpreter
overhead for 4 floats of physics. Here the state of all N carts is one [N, 4] float64 array and a step
is ~20 array operations, so the cost per environment falls with N until memory bandwidth matters.

Exactness: the physics use the same float64 formulas in the same order as
`gymnasium.envs.classic_control.cartpole.CartPoleEnv` (Euler integration, tau = 0.02), observations are
the float64 state cast to float32, episodes are cut at 500 steps as `TimeLimit` does for CartPole-v1,
and `reset(seed=s)` seeds environment i with s + i through its own generator exactly as
`gymnasium.make("CartPole-v1").reset(seed=s + i)` does, including the resets that follow. So the same
seeds and actions give identical observations, rewards and flags (tests/test_fast_cartpole.py).
"""

from __future__ import annotations

import math

import numpy as np

from rlcore.envs.fast.base import BatchedEnv

# Constants of Gymnasium's CartPoleEnv (v1).
GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_POLE + MASS_CART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASS_POLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
MAX_EPISODE_STEPS = 500


class CartPole(BatchedEnv):
    """N independent CartPole-v1 environments with SAME-STEP autoreset.

    Args:
        num_envs: N, the number of environments stepped together.
        max_episode_steps: the time limit that truncates an episode (CartPole-v1: 500).

    `step(actions)` takes actions [N] in {0, 1} and returns obs [N, 4] float32, rewards [N] float32,
    terminated [N] bool, truncated [N] bool and info with `final_obs` [N, 4], `episode_return` [N]
    (NaN where no episode ended) and `episode_length` [N] (0 where none ended).
    """

    NAME = "CartPole"
    ACTIONS = ("push left", "push right")

    def __init__(self, num_envs: int, *, max_episode_steps: int = MAX_EPISODE_STEPS):
        # Gymnasium's bounds: twice the termination thresholds, and unbounded velocities (inf, not the
        # largest float32, so that a check for finite bounds sees what it sees on Gymnasium's env).
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        super().__init__(num_envs, max_episode_steps, high)
        self._state: np.ndarray | None = None  # [N, 4] float64: x, x_dot, theta, theta_dot

    # -- protocol -------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start a new episode in every environment. obs [N, 4] float32.

        With `seed`, environment i gets the generator Gymnasium would build for `reset(seed=seed + i)`;
        without it, fresh entropy (the generators are kept, as Gymnasium keeps `np_random`)."""
        self._check_open()
        self._seed(seed)
        self._state = np.stack([self._initial_state(i) for i in range(self.num_envs)])
        self._lengths[:] = 0
        return self._state.astype(np.float32), {}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance every environment one step; environments whose episode ended are reset at once."""
        self._check_open()
        if self._state is None:
            raise RuntimeError("CartPole.step() called before reset(): call envs.reset(seed=...) first.")
        actions = self._validate(actions)
        x, x_dot, theta, theta_dot = self._state.T
        force = np.where(actions == 1, FORCE_MAG, -FORCE_MAG)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        # Same expressions, same order as Gymnasium, so float64 results agree bit for bit.
        temp = (force + POLEMASS_LENGTH * np.square(theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASS_POLE * np.square(costheta) / TOTAL_MASS))
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        state = np.stack([x, x_dot, theta, theta_dot], axis=1)  # [N, 4]

        self._lengths += 1
        terminated = (x < -X_THRESHOLD) | (x > X_THRESHOLD) | (theta < -THETA_THRESHOLD) | (theta > THETA_THRESHOLD)
        truncated = self._lengths >= self.max_episode_steps
        rewards = np.ones(self.num_envs, dtype=np.float32)  # +1 for every step, the last one included

        final_obs = state.astype(np.float32)
        done = terminated | truncated
        episode_return = np.full(self.num_envs, np.nan)
        episode_length = np.zeros(self.num_envs, dtype=np.int64)
        if done.any():
            ended = np.flatnonzero(done)
            episode_length[ended] = self._lengths[ended]
            episode_return[ended] = self._lengths[ended]  # reward is 1 per step
            for i in ended:
                state[i] = self._initial_state(i)
            self._lengths[ended] = 0
        self._state = state
        info = {"final_obs": final_obs, "episode_return": episode_return, "episode_length": episode_length}
        return state.astype(np.float32), rewards, terminated, truncated, info

    # -- internals ------------------------------------------------------------------------------

    def _initial_state(self, i: int) -> np.ndarray:
        """Gymnasium's reset: uniform(-0.05, 0.05) for each of the 4 state variables. [4] float64."""
        return self._rngs[i].uniform(low=-0.05, high=0.05, size=(4,))
