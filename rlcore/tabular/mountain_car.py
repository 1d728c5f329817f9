"""Mountain Car exactly as Sutton & Barto describe it (2nd ed., Example 10.1), one car or a batch.

An underpowered car in a valley must rock back and forth to build up enough momentum to reach
the goal on the right hill. State (x, xdot): position and velocity. Actions 0, 1, 2 mean full
throttle reverse (-1), zero throttle (0) and full throttle forward (+1). Every step gives reward
-1 until the car reaches the goal, so the return of an episode is minus its number of steps.

    xdot_{t+1} = bound[xdot_t + 0.001 * A_t - 0.0025 * cos(3 * x_t)]     -0.07 <= xdot <= 0.07
    x_{t+1}    = bound[x_t + xdot_{t+1}]                                 -1.2  <= x    <= 0.5

At the left bound the velocity is reset to 0 (the car hits an inelastic wall). Reaching the right
bound, x = 0.5, is the goal: the episode terminates. Each episode starts at rest at a position drawn
uniformly from [-0.6, -0.4).

How this differs from Gymnasium's `MountainCar-v0` (the same physics, other rules around them):

- `gymnasium.make("MountainCar-v0")` wraps the environment in a 200-step `TimeLimit`: an episode
  that has not reached the goal after 200 steps is *truncated*. The book has no limit, and the
  first episode of a learner that starts at Q = 0 takes about 1500 steps; under the limit it would
  simply be cut off, and the curves of Figure 10.2 could not be drawn.
- Gymnasium lets the position run to 0.6 and terminates when x >= 0.5 with a non-negative velocity;
  here x is clipped at 0.5 and reaching it terminates. The same step terminates in both (a car can
  only reach 0.5 moving right); only the final position differs.
- Gymnasium returns float32 observations of float64 internal state; here they stay float64.
- The reward is -1 per step in both, and Gymnasium's unwrapped dynamics match these step for step
  (tests/test_approx.py steps both in lockstep).

`MountainCar` is one car with Gymnasium's API (reset/step returning the 5-tuple). `MountainCarBatch`
advances R independent cars with one numpy call per step, each on its own episode counter: a car
that reaches the goal starts its next episode in the same step (same-step autoreset, as in rlcore's
vector environments), and a car that has finished its `n_episodes` stops and waits for the others.
This is what makes 100 runs x 500 episodes of Figure 10.2 take seconds rather than an hour.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

POSITION_MIN, POSITION_MAX = -1.2, 0.5  # x; reaching POSITION_MAX is the goal
VELOCITY_MIN, VELOCITY_MAX = -0.07, 0.07  # xdot
START_LOW, START_HIGH = -0.6, -0.4  # x_0 ~ U[START_LOW, START_HIGH), xdot_0 = 0
FORCE, GRAVITY = 0.001, 0.0025
N_ACTIONS = 3  # 0: reverse (-1), 1: no throttle (0), 2: forward (+1)


def step_dynamics(position, velocity, action):
    """One step of the book's dynamics for any number of cars (floats or arrays of one shape).

    position, velocity, action [...] -> (position [...], velocity [...], terminated [...] bool)

    The throttle is action - 1. The sum is grouped as Gymnasium groups it, velocity + (throttle *
    FORCE + cos(3x) * -GRAVITY), so that both give the same floating-point numbers.
    """
    position = np.asarray(position, dtype=np.float64)
    velocity = np.asarray(velocity, dtype=np.float64)
    throttle = np.asarray(action) - 1
    velocity = np.clip(velocity + (throttle * FORCE + np.cos(3 * position) * (-GRAVITY)), VELOCITY_MIN, VELOCITY_MAX)
    position = np.clip(position + velocity, POSITION_MIN, POSITION_MAX)
    # The inelastic left wall: only a car moving left can be clipped there, so this zeroes a
    # negative velocity (xdot_{t+1} is reset to 0 "when x_{t+1} reached the left bound").
    velocity = np.where(position == POSITION_MIN, 0.0, velocity)
    return position, velocity, position >= POSITION_MAX


def _check_action(action, n: int | None = None) -> np.ndarray:
    """Return actions as an int array ([] or [n]), or raise a ValueError that says what is wrong."""
    arr = np.asarray(action)
    if n is not None and arr.shape != (n,):
        raise ValueError(f"actions must have shape ({n},), one per car; got shape {arr.shape}.")
    if n is None and arr.shape != ():
        raise ValueError(f"action must be one integer 0, 1 or 2; got an array of shape {arr.shape}.")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"actions must be integers 0, 1 or 2 (reverse, none, forward); got {arr.dtype} {arr!r}.")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= N_ACTIONS):
        bad = int(arr.min() if arr.min() < 0 else arr.max())
        raise ValueError(f"action {bad} is not one of 0 (reverse), 1 (no throttle), 2 (forward).")
    return arr


class MountainCar(gym.Env):
    """One car, the book's rules, Gymnasium's API: `reset() -> (obs, info)`,
    `step(action) -> (obs, reward, terminated, truncated, info)`.

    obs: float64 array [2], (position, velocity). reward: -1.0 every step. truncated: always False
    (there is no time limit). rng: the generator for start positions; `reset(seed=s)` replaces it,
    as in Gymnasium.
    """

    metadata = {"render_modes": []}

    def __init__(self, rng: np.random.Generator | None = None):
        self.observation_space = gym.spaces.Box(
            np.array([POSITION_MIN, VELOCITY_MIN]), np.array([POSITION_MAX, VELOCITY_MAX]), dtype=np.float64)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        if rng is not None:
            self._np_random = rng
        self.position: float | None = None
        self.velocity = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = float(self.np_random.uniform(START_LOW, START_HIGH))
        self.velocity = 0.0
        return np.array([self.position, self.velocity]), {}

    def step(self, action):
        if self.position is None:
            raise RuntimeError("step() called before reset(): call env.reset() to start an episode.")
        if self.position >= POSITION_MAX:
            raise RuntimeError("step() called after the episode terminated (the car is at the goal): "
                               "call env.reset() to start the next episode.")
        a = int(_check_action(action))
        # Python floats and math.cos: the same arithmetic as step_dynamics, ten times faster for one car.
        v = self.velocity + ((a - 1) * FORCE + math.cos(3 * self.position) * (-GRAVITY))
        v = min(max(v, VELOCITY_MIN), VELOCITY_MAX)
        x = min(max(self.position + v, POSITION_MIN), POSITION_MAX)
        if x == POSITION_MIN:
            v = 0.0
        self.position, self.velocity = x, v
        return np.array([x, v]), -1.0, x >= POSITION_MAX, False, {}


class MountainCarBatch:
    """R independent cars advanced together, each on its own episode counter.

    reset() -> obs [R, 2]. step(actions [R]) -> (obs [R, 2], rewards [R], terminated [R],
    truncated [R], info) with same-step autoreset: where terminated[r], obs[r] is already the start
    of car r's next episode and info["final_obs"][r] is the goal state it reached.
    info["episode_length"][r] is the length of the episode that just ended (0 elsewhere).

    n_episodes: after its n_episodes-th episode a car is *finished*: it is not reset, its row of
    `obs` stays at the goal, and `step` ignores its action and reports reward 0 and terminated
    False. `all_finished` says when every car is done. `episode_lengths` [E, R] records the number
    of steps of every episode (episode-major, like the [T, R] layout of rollouts); 0 = not yet run.
    `stop(cars)` finishes cars early (an experiment gives up on them); `stopped` [R] marks them.
    """

    def __init__(self, n_cars: int, rng: np.random.Generator, n_episodes: int | None = None):
        if int(n_cars) < 1:
            raise ValueError(f"n_cars must be at least 1, got {n_cars}.")
        if n_episodes is not None and int(n_episodes) < 1:
            raise ValueError(f"n_episodes must be at least 1 (or None for no limit), got {n_episodes}.")
        self.n_cars, self.rng, self.n_episodes = int(n_cars), rng, n_episodes
        self.position = np.zeros(self.n_cars)
        self.velocity = np.zeros(self.n_cars)
        self.steps = np.zeros(self.n_cars, dtype=np.int64)  # steps in each car's current episode
        self.episode = np.zeros(self.n_cars, dtype=np.int64)  # episodes completed by each car
        self.finished = np.zeros(self.n_cars, dtype=bool)
        self.stopped = np.zeros(self.n_cars, dtype=bool)
        self.episode_lengths = np.zeros((n_episodes or 0, self.n_cars), dtype=np.int64)  # [E, R]
        self._started = False

    @property
    def all_finished(self) -> bool:
        return bool(self.finished.all())

    def _obs(self) -> np.ndarray:
        return np.stack([self.position, self.velocity], axis=1)  # [R, 2]

    def reset(self) -> tuple[np.ndarray, dict]:
        """Start episode 1 of every car: obs [R, 2]."""
        self.position = self.rng.uniform(START_LOW, START_HIGH, size=self.n_cars)
        self.velocity = np.zeros(self.n_cars)
        self.steps[:] = 0
        self.episode[:] = 0
        self.finished[:] = False
        self.stopped[:] = False
        self.episode_lengths[:] = 0
        self._started = True
        return self._obs(), {}

    def stop(self, cars) -> None:
        """Finish the given cars now, in the middle of their episode (indices or a bool mask [R])."""
        mask = np.zeros(self.n_cars, dtype=bool)
        mask[cars] = True
        self.stopped |= mask & ~self.finished
        self.finished |= mask

    def step(self, actions):
        if not self._started:
            raise RuntimeError("step() called before reset(): call reset() first.")
        actions = _check_action(actions, self.n_cars)
        running = ~self.finished
        position, velocity, terminated = step_dynamics(self.position, self.velocity, actions)
        # Finished cars stay where they are.
        self.position = np.where(running, position, self.position)
        self.velocity = np.where(running, velocity, self.velocity)
        terminated &= running
        self.steps += running
        final_obs = self._obs()
        episode_length = np.where(terminated, self.steps, 0)
        ended = np.flatnonzero(terminated)
        if ended.size:
            if self.n_episodes is not None:
                self.episode_lengths[self.episode[ended], ended] = self.steps[ended]
            self.episode[ended] += 1
            self.steps[ended] = 0
            if self.n_episodes is not None:
                self.finished |= self.episode >= self.n_episodes
            restart = ended[~self.finished[ended]]
            # Same-step autoreset: a new start position, drawn only for cars that go on.
            self.position[restart] = self.rng.uniform(START_LOW, START_HIGH, size=restart.size)
            self.velocity[restart] = 0.0
        rewards = np.where(running, -1.0, 0.0)
        truncated = np.zeros(self.n_cars, dtype=bool)
        info = {"final_obs": final_obs, "episode_length": episode_length}
        return self._obs(), rewards, terminated, truncated, info
