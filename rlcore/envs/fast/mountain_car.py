"""MountainCar-v0 for N environments at once, in NumPy, identical to Gymnasium's `MountainCar-v0`.

An under-powered car sits in a valley between two hills and must reach the flag on the right hill
(position 0.5). The engine alone cannot climb it: the car has to swing back and forth to build up
energy. Actions: 0 push left, 1 no push, 2 push right. Reward -1 per step; the episode terminates at
the flag and is truncated after 200 steps (the `TimeLimit` of MountainCar-v0), so a random policy,
which almost never reaches the flag, scores -200.

Gymnasium steps one car per call, with a few microseconds of Python for two floats of physics plus the
wrappers' overhead. Here the state of all N cars is two float64 arrays of length N and a step is about
a dozen array operations, whatever N is.

Exactness: the physics are Gymnasium's `MountainCarEnv.step` written on arrays, with the same float64
expressions in the same order (velocity first, clipped to the maximum speed, then the position moved
by the clipped velocity and clipped to the track, then the velocity zeroed when the car stands at the
left wall moving left). The start position is one `uniform(-0.6, -0.4)` draw from each environment's
own generator with velocity 0, and `reset(seed=s)` seeds environment i with s + i exactly as
`gymnasium.make("MountainCar-v0").reset(seed=s + i)` does, resets that follow included. So the same
seeds and actions give identical observations, rewards and flags (tests/test_fast_mountain_car.py).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import utils
from gymnasium.vector.utils import batch_space

from rlcore.envs.fast.base import BatchedEnv

# Constants of Gymnasium's MountainCarEnv (v0, goal_velocity = 0).
MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.5
GOAL_VELOCITY = 0.0
FORCE = 0.001
GRAVITY = 0.0025
RESET_LOW, RESET_HIGH = -0.6, -0.4
MAX_EPISODE_STEPS = 200


def physics(position: np.ndarray, velocity: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of the car's dynamics for N cars.

    position, velocity: [N] float64; actions: [N] integers in {0, 1, 2}.
    Returns (position [N] float64, velocity [N] float64, terminated [N] bool); the inputs are not modified.

    Gymnasium computes `velocity += (action - 1) * force + cos(3 * position) * (-gravity)`: the push and
    the gravity term are summed first and that sum is added to the velocity, so the order is kept here
    (a different order rounds differently in the last bit, and MountainCar's episodes are long enough
    for such a bit to change a float32 observation).
    """
    velocity = velocity + ((actions - 1) * FORCE + np.cos(3 * position) * (-GRAVITY))
    velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)  # before the position moves: it moves by the clipped speed
    position = np.clip(position + velocity, MIN_POSITION, MAX_POSITION)
    # The left wall is inelastic: a car that stands at it moving left stops.
    velocity = np.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
    terminated = (position >= GOAL_POSITION) & (velocity >= GOAL_VELOCITY)
    return position, velocity, terminated


class MountainCar(BatchedEnv):
    """N independent MountainCar-v0 environments with SAME-STEP autoreset.

    Args:
        num_envs: N, the number of environments stepped together.
        max_episode_steps: the time limit that truncates an episode (MountainCar-v0: 200).

    `step(actions)` takes actions [N] in {0, 1, 2} (push left, no push, push right) and returns obs [N, 2]
    float32 (position, velocity), rewards [N] float32 (-1 every step), terminated [N] bool, truncated [N]
    bool and info with `final_obs` [N, 2], `episode_return` [N] (NaN where no episode ended) and
    `episode_length` [N] (0 where none ended).
    """

    NAME = "MountainCar"
    ACTIONS = ("push left", "no push", "push right")

    def __init__(self, num_envs: int, *, max_episode_steps: int = MAX_EPISODE_STEPS):
        high = np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32)
        super().__init__(num_envs, max_episode_steps, high)
        # Gymnasium's low bound is not -high: the track runs from -1.2 to 0.6.
        low = np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._position: np.ndarray | None = None  # [N] float64
        self._velocity = np.zeros(self.num_envs)  # [N] float64

    # -- protocol -------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start a new episode in every environment. obs [N, 2] float32.

        With `seed`, environment i gets the generator Gymnasium would build for `reset(seed=seed + i)`;
        without it, fresh entropy (the generators are kept, as Gymnasium keeps `np_random`).
        `options={"low": l, "high": h}` changes the start-position bounds for this reset only, as in
        Gymnasium; the automatic resets after an episode ends use the default [-0.6, -0.4]."""
        self._check_open()
        low, high = utils.maybe_parse_reset_bounds(options, RESET_LOW, RESET_HIGH)
        self._seed(seed)
        self._position = np.array([rng.uniform(low=low, high=high) for rng in self._rngs])
        self._velocity = np.zeros(self.num_envs)
        self._lengths[:] = 0
        return self._observe(), {}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance every environment one step; environments whose episode ended are reset at once."""
        self._check_open()
        if self._position is None:
            raise RuntimeError("MountainCar.step() called before reset(): call envs.reset(seed=...) first.")
        actions = self._validate(actions)
        self._position, self._velocity, terminated = physics(self._position, self._velocity, actions)
        self._lengths += 1
        # TimeLimit: truncated at the limit, also when the episode terminates at that very step.
        truncated = self._lengths >= self.max_episode_steps
        rewards = np.full(self.num_envs, -1.0, dtype=np.float32)

        final_obs = self._observe()
        obs = final_obs.copy()
        done = terminated | truncated
        episode_return = np.full(self.num_envs, np.nan)
        episode_length = np.zeros(self.num_envs, dtype=np.int64)
        if done.any():
            ended = np.flatnonzero(done)
            episode_length[ended] = self._lengths[ended]
            episode_return[ended] = -self._lengths[ended]  # reward is -1 per step
            # One draw from each ended env's own generator, as env.reset() draws it; the others are untouched.
            self._position[ended] = [self._rngs[i].uniform(low=RESET_LOW, high=RESET_HIGH) for i in ended]
            self._velocity[ended] = 0.0
            self._lengths[ended] = 0
            obs[ended] = self._observe()[ended]
        info = {"final_obs": final_obs, "episode_return": episode_return, "episode_length": episode_length}
        return obs, rewards, terminated, truncated, info

    # -- internals ------------------------------------------------------------------------------

    def _observe(self) -> np.ndarray:
        """[N, 2] float32 (position, velocity), the float64 state rounded as Gymnasium rounds it."""
        return np.stack([self._position, self._velocity], axis=1).astype(np.float32)
