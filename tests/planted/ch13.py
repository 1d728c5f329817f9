"""Planted-bug variants of the chapter 13 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function or class) for each check of autograder.checks.ch13.
The physics variants have the exercise's signature and differ from a correct solution by one mistake. The
vector-env variants are `Car`, a correct class written like the solution, with one method changed. The speed
variants (`SLOW`) are correct, identical to Gymnasium, and slow: a Python loop over the cars in three forms.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

MIN_POSITION, MAX_POSITION, MAX_SPEED, GOAL = -1.2, 0.6, 0.07, 0.5
FORCE, GRAVITY = 0.001, 0.0025


def physics(position, velocity, actions):
    """A correct solution, written as a learner would."""
    velocity = velocity + ((actions - 1) * FORCE + np.cos(3 * position) * (-GRAVITY))
    velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)
    position = np.clip(position + velocity, MIN_POSITION, MAX_POSITION)
    velocity = np.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
    return position, velocity, (position >= GOAL) & (velocity >= 0)


# ------------------------------------------------------------------------------------------
# mountain_car_physics(position, velocity, actions)
# ------------------------------------------------------------------------------------------


def physics_clip_after_move(position, velocity, actions):
    velocity = velocity + ((actions - 1) * FORCE + np.cos(3 * position) * (-GRAVITY))
    position = np.clip(position + velocity, MIN_POSITION, MAX_POSITION)  # moves by the unclipped velocity
    velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)
    velocity = np.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
    return position, velocity, (position >= GOAL) & (velocity >= 0)


def physics_wall_keeps_velocity(position, velocity, actions):
    velocity = velocity + ((actions - 1) * FORCE + np.cos(3 * position) * (-GRAVITY))
    velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)
    position = np.clip(position + velocity, MIN_POSITION, MAX_POSITION)  # no inelastic wall
    return position, velocity, (position >= GOAL) & (velocity >= 0)


def physics_goal_ignores_velocity(position, velocity, actions):
    position, velocity, _ = physics(position, velocity, actions)
    return position, velocity, position >= GOAL


def physics_action_not_centered(position, velocity, actions):
    return physics(position, velocity, actions + 1)  # push = action * force: action 1 pushes right


def physics_gravity_sign(position, velocity, actions):
    velocity = velocity + ((actions - 1) * FORCE + np.cos(3 * position) * GRAVITY)
    velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)
    position = np.clip(position + velocity, MIN_POSITION, MAX_POSITION)
    velocity = np.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
    return position, velocity, (position >= GOAL) & (velocity >= 0)


def physics_regrouped_sum(position, velocity, actions):
    # (v + push) + gravity instead of v + (push + gravity): the same real number, another float64 rounding.
    velocity = velocity + (actions - 1) * FORCE + np.cos(3 * position) * (-GRAVITY)
    velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)
    position = np.clip(position + velocity, MIN_POSITION, MAX_POSITION)
    velocity = np.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
    return position, velocity, (position >= GOAL) & (velocity >= 0)


def physics_in_place(position, velocity, actions):
    velocity += (actions - 1) * FORCE + np.cos(3 * position) * (-GRAVITY)  # changes the caller's array
    np.clip(velocity, -MAX_SPEED, MAX_SPEED, out=velocity)
    position += velocity
    np.clip(position, MIN_POSITION, MAX_POSITION, out=position)
    velocity[(position == MIN_POSITION) & (velocity < 0)] = 0.0
    return position, velocity, (position >= GOAL) & (velocity >= 0)


def physics_float32(position, velocity, actions):
    position, velocity = position.astype(np.float32), velocity.astype(np.float32)  # Gymnasium steps in float64
    return physics(position, velocity, actions)


# ------------------------------------------------------------------------------------------
# BatchedMountainCar(num_envs, max_episode_steps=200)
# ------------------------------------------------------------------------------------------


class Car:
    """A correct batched MountainCar-v0, written like the solution."""

    def __init__(self, num_envs, max_episode_steps=200):
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.rngs = [np.random.default_rng() for _ in range(num_envs)]
        self.position = np.zeros(num_envs)
        self.velocity = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def seed(self, seed):
        if seed is not None:
            self.rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]

    def start(self, i):
        return self.rngs[i].uniform(low=-0.6, high=-0.4)

    def obs(self):
        return np.stack([self.position, self.velocity], axis=1).astype(np.float32)

    def reset(self, seed=None):
        self.seed(seed)
        self.position = np.array([self.start(i) for i in range(self.num_envs)])
        self.velocity = np.zeros(self.num_envs)
        self.lengths[:] = 0
        return self.obs(), {}

    def step(self, actions):
        self.position, self.velocity, terminated = physics(self.position, self.velocity, np.asarray(actions))
        self.lengths += 1
        truncated = self.lengths >= self.max_episode_steps
        final_obs = self.obs()
        done = terminated | truncated
        episode_return = np.where(done, -self.lengths.astype(float), np.nan)
        episode_length = np.where(done, self.lengths, 0)
        self.autoreset(np.flatnonzero(done))
        info = {"final_obs": final_obs, "episode_return": episode_return, "episode_length": episode_length}
        return self.obs(), np.full(self.num_envs, -1.0, dtype=np.float32), terminated, truncated, info

    def autoreset(self, ended):
        for i in ended:
            self.position[i] = self.start(i)
        self.velocity[ended] = 0.0
        self.lengths[ended] = 0


class CarResetsAll(Car):
    def autoreset(self, ended):
        if len(ended):  # one episode ended: every car starts over
            super().autoreset(np.arange(self.num_envs))


class CarTruncationAsTermination(Car):
    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        return obs, rewards, terminated | truncated, truncated, info


class CarFinalObsAfterReset(Car):
    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        info["final_obs"] = obs  # read after the reset: the next episode's start
        return obs, rewards, terminated, truncated, info


class CarNoAutoreset(Car):
    def step(self, actions):
        obs, rewards, terminated, truncated, info = super().step(actions)
        return info["final_obs"], rewards, terminated, truncated, info  # returns the ended state, resets inside


class CarSameSeed(Car):
    def seed(self, seed):
        if seed is not None:
            self.rngs = [np.random.default_rng(seed) for _ in range(self.num_envs)]


class CarNewGeneratorEachReset(Car):
    def reset(self, seed=None):
        self.base_seed = seed
        return super().reset(seed)

    def start(self, i):
        if getattr(self, "base_seed", None) is not None:
            return np.random.default_rng(self.base_seed + i).uniform(low=-0.6, high=-0.4)  # the same start every time
        return super().start(i)


class CarTimeLimitOffByOne(Car):
    def step(self, actions):
        self.max_episode_steps += 1  # truncates one step late: lengths > limit
        try:
            return super().step(actions)
        finally:
            self.max_episode_steps -= 1


class CarLengthNotReset(Car):
    def autoreset(self, ended):
        for i in ended:
            self.position[i] = self.start(i)
        self.velocity[ended] = 0.0  # the step count runs on into the next episode


class CarReseedsWithoutSeed(Car):
    def seed(self, seed):
        self.rngs = [np.random.default_rng(seed if seed is None else seed + i) for i in range(self.num_envs)]


class CarFloat64Obs(Car):
    def obs(self):
        return np.stack([self.position, self.velocity], axis=1)


# ------------------------------------------------------------------------------------------
# speed: correct envs with a Python loop over the cars
# ------------------------------------------------------------------------------------------


class _LoopCar(Car):
    """Correct, one car at a time: subclasses write step_one(i, action) -> terminated."""

    def step(self, actions):
        n = self.num_envs
        terminated = np.zeros(n, dtype=bool)
        actions = np.asarray(actions).tolist()
        for i in range(n):
            terminated[i] = self.step_one(i, actions[i])
        self.lengths += 1
        truncated = self.lengths >= self.max_episode_steps
        final_obs = self.obs()
        done = terminated | truncated
        episode_return = np.where(done, -self.lengths.astype(float), np.nan)
        episode_length = np.where(done, self.lengths, 0)
        self.autoreset(np.flatnonzero(done))
        info = {"final_obs": final_obs, "episode_return": episode_return, "episode_length": episode_length}
        return self.obs(), np.full(n, -1.0, dtype=np.float32), terminated, truncated, info


class SlowPythonFloats(_LoopCar):
    """The tightest per-car loop: Python floats, math.cos, min/max (about 10x SyncVectorEnv at N = 1024)."""

    def reset(self, seed=None):
        obs, info = super().reset(seed)
        self.pos_list, self.vel_list = self.position.tolist(), self.velocity.tolist()
        return obs, info

    def step(self, actions):
        n = self.num_envs
        pos, vel = self.pos_list, self.vel_list
        terminated = [False] * n
        for i, a in enumerate(np.asarray(actions).tolist()):
            v = vel[i] + ((a - 1) * FORCE + math.cos(3 * pos[i]) * (-GRAVITY))
            v = min(max(v, -MAX_SPEED), MAX_SPEED)
            p = min(max(pos[i] + v, MIN_POSITION), MAX_POSITION)
            if p == MIN_POSITION and v < 0:
                v = 0.0
            pos[i], vel[i] = p, v
            terminated[i] = p >= GOAL and v >= 0
        self.position, self.velocity = np.array(pos), np.array(vel)
        terminated = np.array(terminated)
        self.lengths += 1
        truncated = self.lengths >= self.max_episode_steps
        final_obs = self.obs()
        done = terminated | truncated
        episode_return = np.where(done, -self.lengths.astype(float), np.nan)
        episode_length = np.where(done, self.lengths, 0)
        self.autoreset(np.flatnonzero(done))
        self.pos_list, self.vel_list = self.position.tolist(), self.velocity.tolist()
        info = {"final_obs": final_obs, "episode_return": episode_return, "episode_length": episode_length}
        return self.obs(), np.full(n, -1.0, dtype=np.float32), terminated, truncated, info


class SlowNumpyScalars(_LoopCar):
    """Gymnasium's step body applied car by car, numpy scalars and np.clip included (about 1.6x)."""

    def step_one(self, i, action):
        position, velocity = self.position[i], self.velocity[i]
        velocity += (action - 1) * FORCE + math.cos(3 * position) * (-GRAVITY)
        velocity = np.clip(velocity, -MAX_SPEED, MAX_SPEED)
        position += velocity
        position = np.clip(position, MIN_POSITION, MAX_POSITION)
        if position == MIN_POSITION and velocity < 0:
            velocity = 0
        self.position[i], self.velocity[i] = position, velocity
        return bool(position >= GOAL and velocity >= 0)


class SlowGymnasiumEnvs:
    """A list of N Gymnasium envs behind the batched API: correct by construction, as slow as SyncVectorEnv."""

    def __init__(self, num_envs, max_episode_steps=200):
        self.num_envs = num_envs
        self.envs = [gym.make("MountainCar-v0", max_episode_steps=max_episode_steps) for _ in range(num_envs)]
        self.returns = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def reset(self, seed=None):
        self.returns[:], self.lengths[:] = 0.0, 0
        return np.stack([env.reset(seed=None if seed is None else seed + i)[0]
                         for i, env in enumerate(self.envs)]), {}

    def step(self, actions):
        n = self.num_envs
        obs, final_obs = np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32)
        rewards = np.zeros(n, np.float32)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        episode_return, episode_length = np.full(n, np.nan), np.zeros(n, np.int64)
        for i, env in enumerate(self.envs):
            o, r, terminated[i], truncated[i], _ = env.step(int(actions[i]))
            final_obs[i], rewards[i] = o, r
            self.returns[i] += r
            self.lengths[i] += 1
            if terminated[i] or truncated[i]:
                episode_return[i], episode_length[i] = self.returns[i], self.lengths[i]
                self.returns[i], self.lengths[i] = 0.0, 0
                o, _ = env.reset()
            obs[i] = o
        info = {"final_obs": final_obs, "episode_return": episode_return, "episode_length": episode_length}
        return obs, rewards, terminated, truncated, info


BUGS = {
    "mountain_car_physics": [
        ("velocity clipped after the position moved", physics_clip_after_move),
        ("left wall that does not stop the car", physics_wall_keeps_velocity),
        ("termination on position alone", physics_goal_ignores_velocity),
        ("push = action * force", physics_action_not_centered),
        ("gravity with the wrong sign", physics_gravity_sign),
        ("sum grouped (v + push) + gravity", physics_regrouped_sum),
        ("updates the caller's arrays in place", physics_in_place),
        ("float32 state", physics_float32),
    ],
    "BatchedMountainCar": [
        ("autoreset resets every env", CarResetsAll),
        ("truncation reported as termination", CarTruncationAsTermination),
        ("final_obs read after the reset", CarFinalObsAfterReset),
        ("no autoreset of obs (returns the ended state)", CarNoAutoreset),
        ("every env seeded with the same seed", CarSameSeed),
        ("a new generator with the same seed at every reset", CarNewGeneratorEachReset),
        ("time limit one step late", CarTimeLimitOffByOne),
        ("episode length not reset (episode statistics)", CarLengthNotReset),
        ("reset() without a seed draws fresh entropy", CarReseedsWithoutSeed),
        ("float64 observations", CarFloat64Obs),
    ],
    "speedup": [
        ("a loop over the cars with Python floats", SlowPythonFloats),
        ("Gymnasium's numpy-scalar code car by car", SlowNumpyScalars),
        ("a list of Gymnasium envs", SlowGymnasiumEnvs),
    ],
}
