"""Acrobot-v1 for N environments at once, in NumPy, identical to Gymnasium's `Acrobot-v1`.

The acrobot is two links hanging from a fixed pivot, with a motor (torque -1, 0 or +1) at the joint
between them; the task is to swing the tip above the height of one link over the pivot. One Gymnasium
step integrates the equations of motion with a 4th-order Runge-Kutta step over dt = 0.2 s: four
evaluations of the dynamics, each a few dozen float operations on Python scalars, so the interpreter's
overhead per step is large. Here the state of all N acrobots is four float64 arrays of length N and a
step is a fixed number of array operations, whatever N is.

Exactness: the dynamics (Sutton and Barto's book version) are written with the same float64
expressions, in the same order, as `gymnasium.envs.classic_control.acrobot.AcrobotEnv._dsdt`, the
Runge-Kutta stages combine them as Gymnasium's `rk4` does (the torque rides along as a fifth state
variable whose derivative is 0), the angles are wrapped into [-pi, pi] by repeated +-2 pi as `wrap` does
and the velocities clipped as `bound` does. The start state is drawn as Gymnasium draws it, uniform in
[-0.1, 0.1] for each of the 4 variables, rounded to float32 (so the first observation of an episode is
computed from float32 angles, and later ones from float64). Episodes are cut at 500 steps as `TimeLimit`
does for Acrobot-v1, and `reset(seed=s)` seeds environment i with s + i exactly as
`gymnasium.make("Acrobot-v1").reset(seed=s + i)` does, resets that follow included. So the same seeds
and actions give identical observations, rewards and flags (tests/test_fast_acrobot.py).
"""

from __future__ import annotations

from math import pi

import numpy as np
from gymnasium.envs.classic_control import utils

from rlcore.envs.fast.base import BatchedEnv

# Constants of Gymnasium's AcrobotEnv (v1).
DT = 0.2  # integration step [s]
LINK_LENGTH_1 = 1.0  # [m]
LINK_MASS_1 = 1.0  # [kg]
LINK_MASS_2 = 1.0  # [kg]
LINK_COM_POS_1 = 0.5  # [m] position of the centre of mass of link 1
LINK_COM_POS_2 = 0.5  # [m] position of the centre of mass of link 2
LINK_MOI = 1.0  # moment of inertia of either link
GRAVITY = 9.8
MAX_VEL_1 = 4 * pi
MAX_VEL_2 = 9 * pi
AVAIL_TORQUE = np.array([-1.0, 0.0, 1.0])  # action 0, 1, 2
RESET_LOW, RESET_HIGH = -0.1, 0.1
MAX_EPISODE_STEPS = 500


def dynamics(theta1, theta2, dtheta1, dtheta2, torque):
    """Time derivatives (dtheta1, dtheta2, ddtheta1, ddtheta2) of the acrobot's state, the book's
    equations. Every argument is an [N] float64 array (or a scalar); so are the results.

    Written term by term as Gymnasium's `AcrobotEnv._dsdt` writes them, so that each element is the
    same sequence of float64 operations and the results agree bit for bit."""
    m1, m2 = LINK_MASS_1, LINK_MASS_2
    l1, lc1, lc2 = LINK_LENGTH_1, LINK_COM_POS_1, LINK_COM_POS_2
    I1 = I2 = LINK_MOI
    g = GRAVITY
    cos_theta2 = np.cos(theta2)
    sin_theta2 = np.sin(theta2)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos_theta2) + I1 + I2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos_theta2) + I2
    phi2 = m2 * lc2 * g * np.cos(theta1 + theta2 - pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * _square(dtheta2) * sin_theta2
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin_theta2
        + (m1 * lc1 + m2 * l1) * g * np.cos(theta1 - pi / 2)
        + phi2
    )
    ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * _square(dtheta1) * sin_theta2 - phi2) / (
        m2 * lc2**2 + I2 - _square(d2) / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return dtheta1, dtheta2, ddtheta1, ddtheta2


def _square(x):
    # Gymnasium squares NumPy float64 scalars with `x**2`, which calls the C library's pow(x, 2.0). That
    # is not always x * x: pow may round the other way when x * x lies within a hair of halfway between
    # two floats (about 1 case in 1000). np.square and np.power use x * x or SIMD code, which differ
    # there; np.float_power calls pow element by element, so it gives Gymnasium's numbers.
    return np.float_power(x, 2.0)


def rk4_step(state: np.ndarray, torque: np.ndarray) -> np.ndarray:
    """One Runge-Kutta step of length DT from state [4, N] (theta1, theta2, dtheta1, dtheta2) under a
    constant torque [N]. Returns the new state [4, N], before wrapping and clipping.

    Gymnasium's rk4 integrates the 5-vector (state, torque) with derivative (..., 0.0): adding
    dt/2 * 0.0 leaves the torque as it is, so here it is simply passed to every stage."""
    dt = DT  # Gymnasium: t[1] - t[0] with t = [0, dt], which is dt exactly
    dt2 = dt / 2.0
    k1 = np.stack(dynamics(*state, torque))
    k2 = np.stack(dynamics(*(state + dt2 * k1), torque))
    k3 = np.stack(dynamics(*(state + dt2 * k2), torque))
    k4 = np.stack(dynamics(*(state + dt * k3), torque))
    return state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def wrap_angle(x: np.ndarray) -> np.ndarray:
    """Gymnasium's `wrap(x, -pi, pi)` element by element: subtract 2 pi while above pi, then add 2 pi
    while below -pi (repeated subtraction, not a modulo, so the rounding is the same). [N] -> [N]."""
    low, high = -pi, pi
    diff = high - low
    x = x.copy()
    above = x > high
    while above.any():
        x[above] -= diff
        above = x > high
    below = x < low
    while below.any():
        x[below] += diff
        below = x < low
    return x


def observe(state: np.ndarray) -> np.ndarray:
    """Observation [N, 6] float32 (cos t1, sin t1, cos t2, sin t2, dt1, dt2) from a state [4, N].

    The cosines and sines are computed in the state's own precision: float32 for a fresh start state
    (Gymnasium keeps it as float32 until the first step), float64 afterwards."""
    theta1, theta2, dtheta1, dtheta2 = state
    return np.stack([np.cos(theta1), np.sin(theta1), np.cos(theta2), np.sin(theta2), dtheta1, dtheta2],
                    axis=1).astype(np.float32)


class Acrobot(BatchedEnv):
    """N independent Acrobot-v1 environments with SAME-STEP autoreset.

    Args:
        num_envs: N, the number of environments stepped together.
        max_episode_steps: the time limit that truncates an episode (Acrobot-v1: 500).

    `step(actions)` takes actions [N] in {0, 1, 2} (torque -1, 0, +1) and returns obs [N, 6] float32,
    rewards [N] float32 (-1 per step, 0 on the step that reaches the goal height), terminated [N] bool,
    truncated [N] bool and info with `final_obs` [N, 6], `episode_return` [N] (NaN where no episode
    ended) and `episode_length` [N] (0 where none ended).
    """

    NAME = "Acrobot"
    ACTIONS = ("torque -1", "no torque", "torque +1")

    def __init__(self, num_envs: int, *, max_episode_steps: int = MAX_EPISODE_STEPS):
        high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
        super().__init__(num_envs, max_episode_steps, high)
        self._state: np.ndarray | None = None  # [4, N] float64: theta1, theta2, dtheta1, dtheta2
        self._returns = np.zeros(self.num_envs, dtype=np.float64)

    # -- protocol -------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start a new episode in every environment. obs [N, 6] float32.

        With `seed`, environment i gets the generator Gymnasium would build for `reset(seed=seed + i)`;
        without it, fresh entropy (the generators are kept, as Gymnasium keeps `np_random`).
        `options={"low": l, "high": h}` changes the start-state bounds for this reset only, as in
        Gymnasium; the automatic resets after an episode ends use the default [-0.1, 0.1]."""
        self._check_open()
        low, high = utils.maybe_parse_reset_bounds(options, RESET_LOW, RESET_HIGH)
        self._seed(seed)
        start = np.stack([self._initial_state(i, low, high) for i in range(self.num_envs)], axis=1)  # [4, N]
        self._state = start.astype(np.float64)
        self._lengths[:] = 0
        self._returns[:] = 0.0
        return observe(start), {}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance every environment one step; environments whose episode ended are reset at once."""
        self._check_open()
        if self._state is None:
            raise RuntimeError("Acrobot.step() called before reset(): call envs.reset(seed=...) first.")
        actions = self._validate(actions)
        state = rk4_step(self._state, AVAIL_TORQUE[actions])
        state[0] = wrap_angle(state[0])
        state[1] = wrap_angle(state[1])
        state[2] = np.minimum(np.maximum(state[2], -MAX_VEL_1), MAX_VEL_1)
        state[3] = np.minimum(np.maximum(state[3], -MAX_VEL_2), MAX_VEL_2)

        terminated = -np.cos(state[0]) - np.cos(state[1] + state[0]) > 1.0  # the tip is above the line
        rewards = np.where(terminated, 0.0, -1.0)
        self._lengths += 1
        self._returns += rewards
        # TimeLimit: truncated at the limit, also when the episode terminates at that very step.
        truncated = self._lengths >= self.max_episode_steps

        obs = observe(state)
        final_obs = obs.copy()
        done = terminated | truncated
        episode_return = np.full(self.num_envs, np.nan)
        episode_length = np.zeros(self.num_envs, dtype=np.int64)
        if done.any():
            ended = np.flatnonzero(done)
            episode_length[ended] = self._lengths[ended]
            episode_return[ended] = self._returns[ended]
            start = np.stack([self._initial_state(i, RESET_LOW, RESET_HIGH) for i in ended], axis=1)  # [4, k]
            state[:, ended] = start
            obs[ended] = observe(start)  # from the float32 start state, as Gymnasium's reset computes it
            self._lengths[ended] = 0
            self._returns[ended] = 0.0
        self._state = state
        info = {"final_obs": final_obs, "episode_return": episode_return, "episode_length": episode_length}
        return obs, rewards.astype(np.float32), terminated, truncated, info

    # -- internals ------------------------------------------------------------------------------

    def _initial_state(self, i: int, low: float, high: float) -> np.ndarray:
        """Gymnasium's reset: uniform(low, high) for each of the 4 state variables, as float32. [4]."""
        return self._rngs[i].uniform(low=low, high=high, size=(4,)).astype(np.float32)
