"""Checks for chapter 13, fast environments: the learner vectorizes Gymnasium's MountainCar-v0.

- `mountain_car_physics`: one step of the car's dynamics on [N] arrays, bit for bit equal to Gymnasium's
  `MountainCarEnv.step` (through `rlcore.envs.fast.mountain_car.physics`, which tests/test_fast_mountain_car.py
  holds to Gymnasium) on hand cases (the left wall, the flag, the speed limit, the end of the track) and on
  random states over the whole state box; a wrong answer is matched against the usual mistakes.
- `BatchedMountainCar`: the learner's vector env stepped in lockstep with N `gymnasium.make("MountainCar-v0")`
  envs (reset with seed + i, reset again without a seed when an episode ends): observations, rewards, both
  flags, `final_obs` and the episode statistics must be identical, on cases chosen to hit the edges (a car
  pumping into the left wall, reaching the flag and the step right after its autoreset, the 200-step limit,
  termination and truncation at the same step, reset without a seed) and on 16 cars acting at random or pumping.
  The first difference is reported with the step, the env, the numbers and the mistake it points to.
- `speedup`: the learner's env against Gymnasium's `SyncVectorEnv` at N = 1024 in the same run: CPU seconds per
  vector step, best of interleaved rounds, as a ratio; it must be at least SPEEDUP_BAR (see there for why 40x),
  after a guard that the env's first steps at that N equal SyncVectorEnv's.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache, partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from autograder.protocol import Check, LearnerCodeError, describe, grading_seeds
from autograder.stats import Verdict
from rlcore.envs.fast import MountainCar
from rlcore.envs.fast import mountain_car as ref

LESSON = "lesson 13 (course/13_fast_environments.ipynb)"
SECTION_VECTORIZE = f"{LESSON}, section 5"
SECTION_DEBUG = f"{LESSON}, section 6"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch13_fast_environments.json"
ENV_ID = "MountainCar-v0"

# The speed check. At N = 1024 cars on the 2-core development machine (CPU time, best of 3 interleaved rounds, 5
# repeats under a load average of about 8; autograder/references/ch13_fast_environments.json has every run),
# Gymnasium's SyncVectorEnv costs about 14 ms per vector step. rlcore.envs.fast.MountainCar (NumPy over all cars,
# the solution's approach) measured 229x to 281x; the fastest loop over the cars we could write (Python floats,
# math.cos, min/max) 18x to 19x; Gymnasium's own numpy-scalar step body applied car by car about 2.2x; a list of
# Gymnasium envs about 1.1x. The bar of 40x sits 5.7x below the slowest NumPy run and 2.1x above the fastest loop
# run, and leaves room for a NumPy version less polished than rlcore's (a Python loop over all 1024 cars just to
# find the ended ones still measures about 130x). The ratio of two CPU times measured in the same run moves far
# less than either time when the machine is busy (the other processes slow both sides alike): the repeats above
# spread by less than 25%. At N = 256 the NumPy env measured only 88x to 100x (its fixed cost per call weighs more)
# against the same 17x to 18x of the loop: a bar there would leave half the margin.
SPEEDUP_N = 1024
SPEEDUP_BAR = 40.0
SPEEDUP_SEED = 2024
SYNC_STEPS = 10  # vector steps per timed round of SyncVectorEnv (about 0.14 s of CPU at N = 1024)
ROUNDS = 3  # interleaved rounds; each side keeps its fastest
MIN_ROUND_CPU_S = 0.02  # a fast env runs chunks of 10 steps until a round holds this much CPU time
MAX_ROUND_STEPS = 300


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """The measured speed-ups behind SPEEDUP_BAR (autograder/references/ch13_fast_environments.json)."""
    return json.loads(REFERENCE_FILE.read_text())


def pumping(obs: np.ndarray) -> np.ndarray:
    """Push in the direction of motion: builds up energy, bumps into the left wall on some starts and reaches the
    flag in 110 to 125 steps. obs [N, 2] -> actions [N]."""
    return np.where(obs[:, 1] >= 0, 2, 0)


def _fmt(values, digits: int = 17) -> str:
    flat = np.asarray(values, dtype=float).reshape(-1)
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat) + "]"


# =============================================================================================
# mountain_car_physics
# =============================================================================================

# Hand cases, one car each: (position, velocity, action, what the case shows).
PHYSICS_CASES = [
    (-0.5, 0.0, 2, "push right from rest at -0.5: velocity 0.001 - 0.0025 cos(-1.5), the position moves by it"),
    (-0.5236, 0.0, 1, "no push near the bottom of the valley (cos(3x) ~ 0): almost no change"),
    (-0.2, 0.0695, 2, "at the speed limit: the velocity is clipped to 0.07 and the position moves by 0.07"),
    (-1.19, -0.05, 0, "into the left wall: the position stops at -1.2 and the velocity becomes 0"),
    (0.49, 0.03, 2, "over the flag moving right: terminated"),
    (0.55, -0.01, 0, "beyond the flag but moving left: not terminated (the velocity must be >= 0)"),
    (0.59, 0.06, 2, "the right end of the track: the position is clipped at 0.6"),
]


def _physics_mistakes(position, velocity, actions) -> dict[str, tuple]:
    """(position, velocity, terminated) as common mistakes compute them."""
    a = actions.astype(np.int64)
    gravity_term = np.cos(3 * position) * (-ref.GRAVITY)

    def finish(p, v, clip_wall=True):
        if clip_wall:
            v = np.where((p == ref.MIN_POSITION) & (v < 0), 0.0, v)
        return p, v, (p >= ref.GOAL_POSITION) & (v >= 0)

    v = np.clip(velocity + ((a - 1) * ref.FORCE + gravity_term), -ref.MAX_SPEED, ref.MAX_SPEED)
    mistakes = {
        "the velocity clipped after the position moved (the car moves by the unclipped velocity; clip first)":
            finish(np.clip(position + velocity + ((a - 1) * ref.FORCE + gravity_term), ref.MIN_POSITION,
                           ref.MAX_POSITION), v),
        "a left wall that does not stop the car (set the velocity to 0 where the position is -1.2 and the "
        "velocity is negative)": finish(np.clip(position + v, ref.MIN_POSITION, ref.MAX_POSITION), v, clip_wall=False),
        "the push taken as action * force instead of (action - 1) * force (action 1 means no push)":
            finish(*(lambda v2: (np.clip(position + v2, ref.MIN_POSITION, ref.MAX_POSITION), v2))(
                np.clip(velocity + (a * ref.FORCE + gravity_term), -ref.MAX_SPEED, ref.MAX_SPEED))),
        "gravity with the wrong sign (the term is cos(3 * position) * (-gravity))":
            finish(*(lambda v2: (np.clip(position + v2, ref.MIN_POSITION, ref.MAX_POSITION), v2))(
                np.clip(velocity + ((a - 1) * ref.FORCE - gravity_term), -ref.MAX_SPEED, ref.MAX_SPEED))),
        "the position not clipped to the track [-1.2, 0.6]": finish(position + v, v),
    }
    p = np.clip(position + v, ref.MIN_POSITION, ref.MAX_POSITION)
    v_wall = np.where((p == ref.MIN_POSITION) & (v < 0), 0.0, v)
    mistakes["termination on position >= 0.5 alone (Gymnasium also needs velocity >= 0)"] = (p, v_wall, p >= 0.5)
    return mistakes


def _physics_outputs(check: Check, out, what: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise LearnerCodeError(f"{what} returned {describe(out)}; expected a tuple (position, velocity, terminated).")
    position = check.array(out[0], f"{what}[0] (position)", shape=(n,))
    velocity = check.array(out[1], f"{what}[1] (velocity)", shape=(n,))
    terminated = check.array(out[2], f"{what}[2] (terminated)", shape=(n,), kind="bool")
    return position, velocity, terminated


def _physics_case(check: Check, fn, position, velocity, actions, name: str, budget_s: float) -> None:
    n = position.size
    what = (f"mountain_car_physics(np.array({_fmt(position, 6)}), np.array({_fmt(velocity, 6)}), "
            f"np.array({actions.tolist()}))" if n <= 3 else f"mountain_car_physics on {n} random states")
    before = (position.copy(), velocity.copy(), actions.copy())
    out = check.call(fn, position, velocity, actions, budget_s=budget_s, what=what)
    got = _physics_outputs(check, out, what, n)
    if not all(np.array_equal(a, b) for a, b in zip(before, (position, velocity, actions))):
        check.require(False, f"{name}: the inputs are not modified",
                      f"{what} changed its input arrays; compute new arrays (velocity = velocity + ...) instead of "
                      "updating in place (+=), which would change the caller's state.")
    want = ref.physics(position, velocity, actions)
    labels = ("position", "velocity", "terminated")
    wrong = [k for k in range(3) if not np.array_equal(got[k], want[k])]
    if not wrong:
        check.expect(True, name)
        return
    k = wrong[0]
    i = int(np.flatnonzero(got[k] != want[k])[0])
    detail = (f"{what}: {labels[k]}[{i}] is {got[k][i]!r}, expected {want[k][i]!r} (car {i}: position "
              f"{position[i]!r}, velocity {velocity[i]!r}, action {actions[i]}).")
    names = [m for m, value in _physics_mistakes(position, velocity, actions).items()
             if all(np.array_equal(g, v) for g, v in zip(got, value))]
    if names:
        detail += " Your answer equals " + " or ".join(names) + "."
    elif k < 2 and np.allclose(got[k], want[k], rtol=0, atol=1e-15):
        detail += (" The numbers agree to 1e-15 but not bit for bit: keep Gymnasium's order of operations, "
                   "velocity + ((action - 1) * force + cos(3 * position) * (-gravity)) with float64 arrays.")
    check.require(False, name, detail)


def mountain_car_physics(fn, *, budget_s: float = 5.0) -> None:
    """Check `mountain_car_physics(position, velocity, actions) -> (position, velocity, terminated)`."""
    with Check("ch13.mountain_car_physics", "MountainCar-v0's dynamics on arrays, bit for bit",
               hint=f"Follow Gymnasium's MountainCarEnv.step line by line on arrays: velocity + ((actions - 1) * "
                    f"0.001 + cos(3 * position) * (-0.0025)), clip the velocity to +-0.07, move the position by it "
                    f"and clip it to [-1.2, 0.6], stop a car that stands at -1.2 moving left, terminated = "
                    f"(position >= 0.5) & (velocity >= 0) ({SECTION_VECTORIZE}).") as check:
        fn = check.signature(fn, "position", "velocity", "actions")
        for position, velocity, action, why in PHYSICS_CASES:
            _physics_case(check, fn, np.array([position]), np.array([velocity]), np.array([action]), why, budget_s)
        rng = np.random.default_rng(13)
        for n in (10, 1000):
            position = rng.uniform(ref.MIN_POSITION, ref.MAX_POSITION, n)
            velocity = rng.uniform(-ref.MAX_SPEED, ref.MAX_SPEED, n)
            actions = rng.integers(0, 3, n)
            _physics_case(check, fn, position, velocity, actions, f"{n} random states over the whole track", budget_s)
        check.note("7 hand cases and 1010 random states, identical to Gymnasium's float64 arithmetic")


# =============================================================================================
# BatchedMountainCar: lockstep with Gymnasium
# =============================================================================================


class _Reference:
    """N Gymnasium MountainCar-v0 envs driven as the vector-env protocol drives them (reset with seed + i, reset
    again without a seed where an episode ended), keeping what the diagnosis needs."""

    def __init__(self, n: int, seed: int, max_episode_steps: int | None):
        kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        self.envs = [gym.make(ENV_ID, **kwargs) for _ in range(n)]
        self.obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)])
        self.first = self.obs.copy()  # each env's first start: a new generator per reset would repeat it
        self.returns, self.lengths = np.zeros(n), np.zeros(n, dtype=np.int64)

    def step(self, actions: np.ndarray) -> dict:
        n = len(self.envs)
        out = {"final_obs": np.zeros((n, 2), np.float32), "rewards": np.zeros(n, np.float32),
               "terminated": np.zeros(n, bool), "truncated": np.zeros(n, bool),
               "episode_return": np.full(n, np.nan), "episode_length": np.zeros(n, np.int64)}
        for i, env in enumerate(self.envs):
            o, r, term, trunc, _ = env.step(int(actions[i]))
            out["final_obs"][i], out["rewards"][i], out["terminated"][i], out["truncated"][i] = o, r, term, trunc
            self.returns[i] += r
            self.lengths[i] += 1
            if term or trunc:
                out["episode_return"][i], out["episode_length"][i] = self.returns[i], self.lengths[i]
                self.returns[i], self.lengths[i] = 0.0, 0
                o, _ = env.reset()
            self.obs[i] = o
        out["obs"] = self.obs.copy()
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _make(check: Check, cls, n: int, max_episode_steps: int | None):
    if max_episode_steps is None:
        return check.call(cls, n, what=f"BatchedMountainCar({n})")
    return check.call(cls, n, max_episode_steps=max_episode_steps,
                      what=f"BatchedMountainCar({n}, max_episode_steps={max_episode_steps})")


def _reset_obs(check: Check, envs, seed: int | None, n: int, what: str) -> np.ndarray:
    out = check.call(envs.reset, what=what) if seed is None else check.call(envs.reset, seed=seed, what=what)
    if not isinstance(out, tuple) or len(out) != 2:
        raise LearnerCodeError(f"{what} returned {describe(out)}; expected the pair (obs, info), info a dict ({{}}).")
    obs = check.array(out[0], f"{what}[0] (obs)", shape=(n, 2))
    check.require(obs.dtype == np.float32, f"{what}: float32 observations",
                  f"obs has dtype {obs.dtype}; the protocol (and Gymnasium) returns float32: "
                  "cast the float64 state with .astype(np.float32) when you build the observation.")
    return obs


def _check_reset(check: Check, obs: np.ndarray, want: np.ndarray, seed: int, what: str, name: str) -> None:
    if np.array_equal(obs, want):
        check.expect(True, name)
        return
    n = len(want)
    detail = f"{what}: obs is {_fmt(obs[:, 0], 8)} (positions); expected {_fmt(want[:, 0], 8)}."
    if n > 1 and np.all(obs == obs[0]):
        detail += (f" Every env starts at the same position: seed env i with seed + i "
                   f"(np.random.default_rng({seed} + i)), as gymnasium's reset(seed={seed} + i) does.")
    elif np.any(obs[:, 1] != 0):
        detail += " Every car starts at rest: velocity 0."
    elif np.any((obs[:, 0] < -0.6) | (obs[:, 0] > -0.4)):
        detail += " Start positions are uniform in [-0.6, -0.4]: rng.uniform(low=-0.6, high=-0.4)."
    else:
        detail += (f" Env i must draw its start with its own generator np.random.default_rng({seed} + i) (what "
                   "Gymnasium's reset(seed=...) builds), one rng.uniform(low=-0.6, high=-0.4) each.")
    check.require(False, name, detail)


def _step(check: Check, envs, actions: np.ndarray, n: int, what: str) -> dict:
    out = check.call(envs.step, actions.copy(), what=what)
    if not isinstance(out, tuple) or len(out) != 5:
        raise LearnerCodeError(f"{what} returned {describe(out)}; expected the 5-tuple "
                               "(obs, rewards, terminated, truncated, info).")
    obs, rewards, terminated, truncated, info = out
    if not isinstance(info, dict) or any(k not in info for k in ("final_obs", "episode_return", "episode_length")):
        keys = sorted(info) if isinstance(info, dict) else describe(info)
        raise LearnerCodeError(f"{what}: info is {keys}; it must be a dict with 'final_obs' [N, 2], "
                               "'episode_return' [N] and 'episode_length' [N].")
    got = {"obs": check.array(obs, f"{what}: obs", shape=(n, 2)),
           "rewards": check.array(rewards, f"{what}: rewards", shape=(n,)),
           "terminated": check.array(terminated, f"{what}: terminated", shape=(n,), kind="bool"),
           "truncated": check.array(truncated, f"{what}: truncated", shape=(n,), kind="bool"),
           "final_obs": check.array(info["final_obs"], f"{what}: info['final_obs']", shape=(n, 2)),
           "episode_length": check.array(info["episode_length"], f"{what}: info['episode_length']", shape=(n,),
                                         kind="int")}
    ret = np.asarray(info["episode_return"], dtype=float)
    if ret.shape != (n,):
        raise LearnerCodeError(f"{what}: info['episode_return'] has shape {ret.shape}; expected ({n},).")
    got["episode_return"] = ret
    for key in ("obs", "final_obs", "rewards"):
        if got[key].dtype != np.float32:  # recorded only when it fails: one case per step would drown the count
            check.require(False, f"{what}: float32 {key}",
                          f"{key} has dtype {got[key].dtype}; the protocol returns float32 observations and rewards "
                          "(.astype(np.float32)).")
    return got


def _diagnose(got: dict, want: dict, ref_env: _Reference, before_lengths: np.ndarray, t: int, limit: int) -> str | None:
    """Where and how the learner's step differs from Gymnasium's, with the mistake it points to (None: equal)."""
    ended = want["terminated"] | want["truncated"]
    for key in ("terminated", "truncated"):
        bad = np.flatnonzero(got[key] != want[key])
        if bad.size:
            i = int(bad[0])
            where = f"step {t}, env {i} (its episode's step {before_lengths[i] + 1})"
            if key == "terminated" and got["terminated"][i] and want["truncated"][i]:
                return (f"{where}: terminated is True but Gymnasium says terminated=False, truncated=True: the time "
                        "limit cut the episode. Truncation is not termination: report it in truncated only (a "
                        "value target bootstraps through a truncation).")
            if key == "truncated" and want["truncated"][i] != got["truncated"][i]:
                return (f"{where}: truncated is {bool(got['truncated'][i])}, expected {bool(want['truncated'][i])}. "
                        f"An episode is truncated at the step where its length reaches max_episode_steps ({limit}): "
                        "count the steps of each env's episode (1 after its first step), reset the count at "
                        "every reset, and truncate when count >= max_episode_steps (also when it terminates there).")
            return (f"{where}: terminated is {bool(got['terminated'][i])}, expected {bool(want['terminated'][i])} "
                    f"(final position {want['final_obs'][i][0]!r}, velocity {want['final_obs'][i][1]!r}).")
    bad = np.flatnonzero(np.any(got["final_obs"] != want["final_obs"], axis=1))
    if bad.size:
        i = int(bad[0])
        detail = (f"step {t}, env {i}: info['final_obs'][{i}] is {_fmt(got['final_obs'][i], 9)}, expected "
                  f"{_fmt(want['final_obs'][i], 9)}.")
        if ended[i] and np.array_equal(got["final_obs"][i], want["obs"][i]):
            return detail + (" That is the next episode's first observation: take final_obs from the state the "
                             "episode ended in, before the reset overwrites it.")
        if not ended[i] and not np.array_equal(got["final_obs"][i], got["obs"][i]):
            return detail + " Where no episode ended, final_obs[i] is a copy of obs[i]."
        return detail + (" The state departs from Gymnasium's here: run your step's physics against "
                         "mountain_car_physics (and its check), on the state as it was before this step.")
    bad = np.flatnonzero(np.any(got["obs"] != want["obs"], axis=1))
    if bad.size:
        i = int(bad[0])
        detail = f"step {t}, env {i}: obs[{i}] is {_fmt(got['obs'][i], 9)}, expected {_fmt(want['obs'][i], 9)}."
        if not ended[i]:
            if ended.any() and np.all(got["obs"][:, 1] == 0):
                return detail + (f" Env {i}'s episode did not end at this step, but it was reset: only the envs "
                                 "where terminated | truncated are reset (np.flatnonzero(done)), the others go on.")
            return detail + " Its episode did not end here, so obs[i] is the state after the step."
        if np.array_equal(got["obs"][i], want["final_obs"][i]):
            return detail + (" That is the observation the episode ended in. SAME-STEP autoreset: where an "
                             "episode ends, obs[i] is already the first observation of the next episode (and "
                             "the ended one goes to info['final_obs'][i]).")
        if np.array_equal(got["obs"][i], ref_env.first[i]):
            return detail + (" That is the very first start of this env again: keep each env's generator for the "
                             "whole run (draw the next start from it), instead of building a new one with the "
                             "same seed at every reset.")
        return detail + (" The next episode starts with one draw rng_i.uniform(low=-0.6, high=-0.4) from env i's "
                         "own generator (the one seeded with seed + i), velocity 0.")
    bad = np.flatnonzero(got["rewards"] != want["rewards"])
    if bad.size:
        i = int(bad[0])
        return f"step {t}, env {i}: reward {got['rewards'][i]!r}, expected {want['rewards'][i]!r} (-1 every step)."
    bad = np.flatnonzero(got["episode_length"] != want["episode_length"])
    if bad.size:
        i = int(bad[0])
        return (f"step {t}, env {i}: info['episode_length'][{i}] is {got['episode_length'][i]}, expected "
                f"{want['episode_length'][i]}: the length of the episode that ended at this step, 0 where none "
                "ended (reset each env's count when its episode ends).")
    same = (got["episode_return"] == want["episode_return"]) | (np.isnan(got["episode_return"])
                                                                & np.isnan(want["episode_return"]))
    bad = np.flatnonzero(~same)
    if bad.size:
        i = int(bad[0])
        return (f"step {t}, env {i}: info['episode_return'][{i}] is {got['episode_return'][i]!r}, expected "
                f"{want['episode_return'][i]!r}: the sum of the episode's rewards where it ended, NaN elsewhere.")
    return None


def _lockstep(check: Check, cls, name: str, *, n: int, seed: int, steps: int, policy, max_episode_steps=None,
              must_see: tuple[str, ...] = ()) -> None:
    """Step the learner's env and the reference for `steps` steps on the same actions; record one case."""
    envs = _make(check, cls, n, max_episode_steps)
    ref_env = _Reference(n, seed, max_episode_steps)
    limit = max_episode_steps or ref.MAX_EPISODE_STEPS
    try:
        what = f"BatchedMountainCar({n}).reset(seed={seed})"
        _check_reset(check, _reset_obs(check, envs, seed, n, what), ref_env.obs, seed, what, f"{name}: reset")
        seen = {"wall": False, "terminated": False, "truncated": False, "both": False}
        obs = ref_env.obs.copy()
        for t in range(steps):
            actions = policy(obs, t)
            before = ref_env.lengths.copy()
            want = ref_env.step(actions)
            got = _step(check, envs, actions, n, f"step {t} of BatchedMountainCar({n}) (reset with seed={seed})")
            problem = _diagnose(got, want, ref_env, before, t, limit)
            if problem:
                check.require(False, name, problem)
            seen["wall"] |= bool(np.any(want["final_obs"][:, 0] == np.float32(ref.MIN_POSITION)))
            seen["terminated"] |= bool(want["terminated"].any())
            seen["truncated"] |= bool(want["truncated"].any())
            seen["both"] |= bool((want["terminated"] & want["truncated"]).any())
            obs = want["obs"]
        missing = [m for m in must_see if not seen[m]]
        if missing:  # the case is built to reach these; if it does not, the check is wrong, not the learner
            raise RuntimeError(f"the case {name!r} did not reach {missing}")
        check.expect(True, name)
    finally:
        ref_env.close()
        check.inspect(_close_quietly, envs, what="envs.close()")


def _close_quietly(envs) -> None:
    """Close the learner's environments if they have a close(); a broken close is not what this check grades."""
    close = getattr(envs, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001
            pass


def _random_and_pumping(n: int, seed: int):
    """Even envs pump (with 10% random actions), odd envs act at random."""
    rng = np.random.default_rng(seed)
    pump = np.arange(n) % 2 == 0

    def policy(obs, t):
        random_actions = rng.integers(0, 3, n)
        chosen = np.where(rng.random(n) < 0.1, random_actions, pumping(obs))
        return np.where(pump, chosen, random_actions)
    return policy


def BatchedMountainCar(cls) -> None:  # noqa: N802 - graded by the learner's class name
    """Grade the learner's `BatchedMountainCar(num_envs, max_episode_steps=200)` in lockstep with Gymnasium."""
    with Check("ch13.BatchedMountainCar", "a batched MountainCar-v0 in lockstep with Gymnasium's",
               hint=(f"reset(seed): one generator per env, np.random.default_rng(seed + i), kept for the whole run. "
                     f"step: physics on all cars, count each episode's steps, truncated = count >= "
                     f"max_episode_steps, final_obs = the state before any reset, then reset only the envs where "
                     f"terminated | truncated, each with one draw from its own generator ({SECTION_VECTORIZE}; "
                     f"{SECTION_DEBUG}).")) as check:
        if not check.inspect(lambda c: isinstance(c, type), cls, what="isinstance(BatchedMountainCar, type)"):
            raise LearnerCodeError(f"expected the BatchedMountainCar class itself, got {describe(cls)}.")
        check.signature(cls, "num_envs")
        # 1. Seeding: env i starts as gymnasium's reset(seed=seed + i).
        envs = _make(check, cls, 3, None)
        what = "BatchedMountainCar(3).reset(seed=0)"
        _check_reset(check, _reset_obs(check, envs, 0, 3, what), _Reference(3, 0, None).obs, 0, what,
                     "reset(seed=0): env i starts as gymnasium.make('MountainCar-v0').reset(seed=0 + i)")
        # 2. The edges, one or two cars each.
        _lockstep(check, cls, "a car pumping into the left wall (seed 2)", n=1, seed=2, steps=80,
                  policy=lambda obs, t: pumping(obs), must_see=("wall",))
        _lockstep(check, cls, "two cars reaching the flag, and the steps right after their autoresets", n=2,
                  seed=0, steps=130, policy=lambda obs, t: pumping(obs), must_see=("terminated",))
        _lockstep(check, cls, "two cars that never push: truncated by the 200-step time limit", n=2, seed=5,
                  steps=205, policy=lambda obs, t: np.ones(2, dtype=np.int64), must_see=("truncated",))
        _lockstep(check, cls, "max_episode_steps=116, the step where the car reaches the flag: both flags", n=1,
                  seed=2, steps=120, policy=lambda obs, t: pumping(obs), max_episode_steps=116, must_see=("both",))
        # 3. Many cars, random and pumping, over several episodes each (an instructor's file may set the seed:
        #    autograder.protocol.grading_seeds).
        seed = grading_seeds("ch13.BatchedMountainCar", [123])[0][0]
        _lockstep(check, cls, f"16 cars, half pumping, half random, 450 steps (seed {seed})", n=16, seed=seed,
                  steps=450, policy=_random_and_pumping(16, seed + 1), must_see=("terminated", "truncated"))
        # 4. reset() without a seed continues each env's stream.
        envs = _make(check, cls, 3, None)
        ref_env = _Reference(3, 40, None)
        _reset_obs(check, envs, 40, 3, "reset(seed=40)")
        for k in range(2):
            obs = _reset_obs(check, envs, None, 3, "reset() after reset(seed=40)")
            want = np.stack([env.reset()[0] for env in ref_env.envs])
            check.require(np.array_equal(obs, want), f"reset() without a seed, call {k + 1}: each env's stream goes on",
                          f"reset() gave positions {_fmt(obs[:, 0], 8)}; expected {_fmt(want[:, 0], 8)}, the next "
                          "draw of each env's generator. Without a seed, keep the generators (do not build new ones).")
        check.note("seeding, the left wall, the flag, the time limit, both flags at once, 16 cars x 450 steps "
                   "and reset without a seed: identical to Gymnasium")


# =============================================================================================
# speedup: the learner's env against Gymnasium's SyncVectorEnv
# =============================================================================================


def _sync_env(n: int):
    return gym.vector.SyncVectorEnv([partial(gym.make, ENV_ID)] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def _timed_round(envs, actions: np.ndarray, start: int, adaptive: bool) -> tuple[float, int]:
    """One timed round: CPU seconds per vector step, and the index of the next unused action row.

    A fixed round is SYNC_STEPS steps; an adaptive one repeats chunks of SYNC_STEPS steps until it holds
    MIN_ROUND_CPU_S of CPU time (or MAX_ROUND_STEPS steps), so that a fast env is not timed over a
    fraction of a millisecond."""
    steps, t = 0, start
    began = time.process_time()
    while True:
        for _ in range(SYNC_STEPS):
            envs.step(actions[t % len(actions)])
            t += 1
        steps += SYNC_STEPS
        spent = time.process_time() - began
        if not adaptive or spent >= MIN_ROUND_CPU_S or steps >= MAX_ROUND_STEPS:
            return spent / steps, t


def measure_speedup(make_learner, check: Check | None = None, n: int = SPEEDUP_N, seed: int = SPEEDUP_SEED,
                    rounds: int = ROUNDS) -> dict:
    """CPU seconds per vector step of Gymnasium's SyncVectorEnv, the learner's env and rlcore.envs.fast.MountainCar
    at N envs, in interleaved rounds (best of `rounds` each), after a correctness guard: reset and the first 5
    steps of the learner's env must equal SyncVectorEnv's. Returns {"sync", "learner", "rlcore"} seconds per
    step, and "guard": None, or what differed.

    make_learner(n) builds the learner's env; with `check`, the learner's calls go through check.call (one call
    per timed round, so its bookkeeping is not in the time)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 3, size=(MAX_ROUND_STEPS * rounds + 200, n))

    def call(fn, *args, what: str, **kwargs):
        return check.call(fn, *args, what=what, budget_s=60, **kwargs) if check else fn(*args, **kwargs)

    sync, fast = _sync_env(n), MountainCar(n)
    learner = make_learner(n)
    try:
        obs_sync, _ = sync.reset(seed=seed)
        fast.reset(seed=seed)
        out = call(learner.reset, seed=seed, what=f"BatchedMountainCar({n}).reset(seed={seed})")
        guard = None
        if not np.array_equal(np.asarray(out[0]), obs_sync):
            guard = f"reset(seed={seed}) does not give Gymnasium's start positions"
        for t in range(5):  # warm-up steps, compared with SyncVectorEnv's
            expected = sync.step(actions[t])[0]
            fast.step(actions[t])
            got = call(learner.step, actions[t].copy(), what=f"step {t} of BatchedMountainCar({n})")
            if guard is None and not np.array_equal(np.asarray(got[0]), expected):
                guard = f"step {t}: the observations differ from SyncVectorEnv's"
        envs = {"sync": sync, "learner": learner, "rlcore": fast}
        best = {name: np.inf for name in envs}
        next_t = {name: 5 for name in envs}
        for _ in range(rounds):
            for name, env in envs.items():
                args = (env, actions, next_t[name], name != "sync")
                if name == "learner":
                    per_step, next_t[name] = call(_timed_round, *args, what=f"timed steps of BatchedMountainCar({n})")
                else:
                    per_step, next_t[name] = _timed_round(*args)
                best[name] = min(best[name], per_step)
    finally:
        sync.close()
        fast.close()
        _close_quietly(learner)
    return {**best, "guard": guard}


def _speed_figure(result: dict, n: int):
    import matplotlib.pyplot as plt

    names = ["Gymnasium\nSyncVectorEnv", "your\nBatchedMountainCar", "rlcore.envs.fast\nMountainCar"]
    sps = [n / result[k] for k in ("sync", "learner", "rlcore")]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    bars = ax.bar(names, sps, color=["0.6", "tab:blue", "0.35"])
    ax.axhline(SPEEDUP_BAR * sps[0], color="tab:red", ls="--", label=f"pass line: {SPEEDUP_BAR:g}x SyncVectorEnv")
    ax.set_yscale("log")
    ax.set_ylabel("env steps per CPU second")
    ax.set_title(f"MountainCar-v0, N = {n} envs, best of {ROUNDS} rounds")
    for bar, value in zip(bars, sps):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def speedup(cls) -> None:
    """Grade the speed of the learner's `BatchedMountainCar` against Gymnasium's SyncVectorEnv at N = 1024."""
    n = SPEEDUP_N
    with Check("ch13.speedup", f"at least {SPEEDUP_BAR:g}x Gymnasium's SyncVectorEnv at N = {n} (CPU time)",
               hint=(f"No Python loop over the {n} envs in step: the physics, the flags and final_obs are array "
                     "operations on all cars at once; only the envs whose episode ended (a few per step) need "
                     f"their own generator's draw ({SECTION_VECTORIZE}; {SECTION_DEBUG})."),
               replayable="a speed is measured in the kernel") as check:
        if not isinstance(cls, type):
            raise LearnerCodeError(f"expected the BatchedMountainCar class itself, got {describe(cls)}.")
        check.signature(cls, "num_envs")
        result = measure_speedup(lambda k: check.call(cls, k, what=f"BatchedMountainCar({k})"), check)
        check.require(result["guard"] is None, "the env is correct at N = 1024 (the first 5 steps)",
                      f"{result['guard']}. Speed counts only for a correct env: pass the BatchedMountainCar check first.")
        ratio = result["sync"] / result["learner"]
        sps = {k: n / result[k] for k in ("sync", "learner", "rlcore")}
        detail = (f"your env: {sps['learner']:,.0f} steps per CPU second, SyncVectorEnv: {sps['sync']:,.0f}, "
                  f"ratio {ratio:.1f}x; needed >= {SPEEDUP_BAR:g}x (rlcore's NumPy env: "
                  f"{result['sync'] / result['rlcore']:.0f}x in this run).")
        if ratio < SPEEDUP_BAR:
            check.diagnosis.append(
                f"a step of your env costs {1e6 * result['learner'] / n:.2f} microseconds of CPU per car, "
                + ("about what a Python loop over the cars costs (0.5 to 10 microseconds per car): " if
                   result["learner"] / n > 2e-7 else "")
                + "look for a `for i in range(num_envs)` in step, or numpy called on one car at a time.")
        check.verdict(Verdict(passed=bool(ratio >= SPEEDUP_BAR), rule=f"ratio >= {SPEEDUP_BAR:g}",
                              metric="speed-up over SyncVectorEnv", estimate=float(ratio), reference=SPEEDUP_BAR,
                              low=SPEEDUP_BAR, high=float("inf"), detail=detail,
                              extra={k: float(v) for k, v in sps.items()}))
        check.plot(_speed_figure(result, n), "speedup")
        check.note(detail)
