"""Checks for chapter 06, on-policy control with function approximation (Mountain Car).

- `active_tiles`: the learner's tile coder for one state, judged by the partition it induces, so any
  numbering is accepted (dense, hashed, another layout): 8 distinct indices in [0, 4096) per state,
  and for every pair among 600 states (random ones, and cell centres moved by k/8 of a tile in x, in
  v and diagonally) the number of shared tiles must equal that of the book's tiles3 call. A failure
  names the pair, and, where it can, the mistake whose tiling the learner's matches (uniform offsets,
  int() instead of floor, a grid anchored at the low end, ...).
- `greedy_action`: hand cases, 200 random cases, and tie frequencies over 3000 draws (5 SE).
- `sarsa_update`: hand cases and random cases against `rlcore.tabular.approx.sarsa_update`; in place.
- `semi_gradient_sarsa` and `n_step_sarsa`: first *exactly*: on a car the grader owns, from random
  initial weights (so no ties, and no randomness left), the learner's loop must take the same
  steps and end with the same weights as rlcore's loop run with the learner's own `active_tiles`.
  One case starts near the goal so that episodes are shorter than n. Then *statistically*, from
  zero weights with the learner's own tiles and ties: Figure 10.2 (alpha = 0.5/8; 10 runs x 100
  episodes; per-run mean steps over episodes 1-100 and 91-100) and Figure 10.3 (n = 1, alpha = 0.5/8
  and n = 8, alpha = 0.3/8; 10 runs x 50 episodes each; per-run mean steps over episodes 1-50),
  with `stats.equivalence` against our reference (autograder/references/ch06_function_approximation.json,
  1000 runs per setting). The grader's car counts the steps itself.

Greedy Sarsa can be trapped for good (about one run in 1800 in its first episode, fewer later; see the lesson):
a run whose episode passes MAX_EPISODE_STEPS is given up and replaced by a run with a new seed, at
most MAX_TRAPPED times per check. The references give up on runs the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from autograder import stats
from autograder.feedback import Panel, curve_figure
from autograder.protocol import Check, CheckFailed, LearnerCodeError, grading_seeds
from rlcore.tabular import approx as ref_approx
from rlcore.tabular import mountain_car as ref_car
from rlcore.tabular import tiles as ref_tiles

LESSON = "lesson 06 (course/06_function_approximation.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch06_function_approximation.json"

N_TILINGS = 8
MAX_TILES = 4096  # the book's index hash table size: every learner index must be below it
N_ACTIONS = 3
MAX_EPISODE_STEPS = 20_000  # a correct first episode takes 3300 steps at most in 1800 runs (alpha >= 0.1/8: 7200)
MAX_TRAPPED = 2  # trapped runs replaced per curve check; a correct learner traps about 1 run in 1800
FREQ_Z = 5.0

# =============================================================================================
# The graded experiments (shared with the reference generator)
# =============================================================================================


@dataclass(frozen=True)
class Metric:
    """Per run: the mean steps per episode over episodes first..last (1-based, inclusive).
    margin: the equivalence rule's implementation tolerance, in steps, about 2% of the value."""

    first: int
    last: int
    margin: float

    @property
    def name(self) -> str:
        return f"mean steps, episodes {self.first}-{self.last}" if self.first != self.last else f"steps in episode {self.first}"


@dataclass(frozen=True)
class CurveConfig:
    """One graded learning curve: n-step Sarsa (n = 1: one-step) with alpha, n_runs runs of
    n_episodes episodes from zero weights."""

    key: str
    n: int
    alpha_x8: float  # alpha times the number of tilings, as the book writes it (0.5 means 0.5/8)
    n_episodes: int
    n_runs: int
    metrics: tuple[Metric, ...]
    label: str

    @property
    def alpha(self) -> float:
        return self.alpha_x8 / N_TILINGS


SARSA_CONFIG = CurveConfig("sarsa_n1_a0.5", 1, 0.5, 100, 10, (Metric(1, 100, 4.0), Metric(91, 100, 3.0)),
                           "one-step Sarsa, alpha = 0.5/8 (Figure 10.2)")
NSTEP_CONFIGS = (
    CurveConfig("nstep_n1_a0.5", 1, 0.5, 50, 10, (Metric(1, 50, 6.0),), "n = 1, alpha = 0.5/8 (Figure 10.3)"),
    CurveConfig("nstep_n8_a0.3", 8, 0.3, 50, 10, (Metric(1, 50, 5.0),), "n = 8, alpha = 0.3/8 (Figure 10.3)"),
)
CURVE_CONFIGS = {c.key: c for c in (SARSA_CONFIG, *NSTEP_CONFIGS)}
SARSA_VISIBLE_SEED = 6010
NSTEP_VISIBLE_SEED = 6020

# Exact replays: (n, alpha_x8, episodes, start, what the case shows). start: (x low, x high, velocity)
# or None for the book's start states. Near the goal and moving right, episodes take 3-15 steps:
# shorter than n = 16, so the updates after the end of an episode are all there is.
NEAR_GOAL = (0.2, 0.4, 0.03)
SARSA_REPLAYS = [
    (1, 0.5, 5, NEAR_GOAL, "five short episodes that start near the goal, moving right"),
    (1, 0.5, 2, None, "two episodes from the book's start states"),
]
NSTEP_REPLAYS = [
    (1, 0.5, 5, NEAR_GOAL, "n = 1 is one-step Sarsa (short episodes)"),
    (4, 0.3, 5, NEAR_GOAL, "n = 4, short episodes"),
    (16, 0.3, 5, NEAR_GOAL, "n = 16: every episode ends before n steps"),
    (8, 0.3, 2, None, "n = 8 from the book's start states"),
]


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our reference runs (autograder/references/ch06_function_approximation.json)."""
    return json.loads(REFERENCE_FILE.read_text())


def judge(config: CurveConfig, lengths: np.ndarray, reference: dict | None = None) -> list[stats.Verdict]:
    """Equivalence verdicts for every metric of one configuration. lengths [E, R] (completed runs)."""
    reference = reference or load_reference()
    entry = reference["checks"][config.key]["metrics"]
    verdicts = []
    for m in config.metrics:
        r = entry[m.name]
        samples = lengths[m.first - 1 : m.last].mean(axis=0)  # [R]
        verdicts.append(stats.equivalence_to(samples, r, margin=m.margin, z=3.0, metric=f"{config.label}: {m.name}"))
    return verdicts


# =============================================================================================
# Tile coding
# =============================================================================================


def _tile_indices(check: Check, fn, states: np.ndarray, budget_s: float = 30.0) -> np.ndarray:
    """The learner's active tiles of every state, validated: [P, 8] int."""

    def all_states():
        return [fn(float(x), float(v)) for x, v in states]

    out = check.call(all_states, budget_s=budget_s, what=f"active_tiles(position, velocity) on {len(states)} states")
    rows = []
    for (x, v), got in zip(states, out):
        what = f"active_tiles({x:.4f}, {v:.5f})"
        arr = check.array(got, what, kind="int")
        if arr.shape != (N_TILINGS,):
            raise LearnerCodeError(f"{what} returned shape {arr.shape}; expected ({N_TILINGS},): one tile per tiling.")
        if arr.min() < 0 or arr.max() >= MAX_TILES:
            raise LearnerCodeError(f"{what} returned index {int(arr.max() if arr.max() >= MAX_TILES else arr.min())}; "
                                   f"indices must lie in [0, {MAX_TILES}) to fit the weight array.")
        rows.append(arr)
    return np.array(rows)


def shared_tiles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many active tiles each state of a shares with each state of b: [P, T], [Q, T] -> [P, Q].
    It does not depend on how the tiles are numbered."""
    return (a[:, None, :, None] == b[None, :, None, :]).sum(axis=(2, 3))


def _cell_centre(jx, jv) -> np.ndarray:
    """The state at the centre of cell (jx, jv) of the 1/64-range grid (an eighth of a tile):
    never on a tile boundary, so no rounding question arises."""
    return np.stack([(np.asarray(jx) + 0.5) * 1.7 / 64, (np.asarray(jv) + 0.5) * 0.14 / 64], axis=-1)


def tile_states() -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """The states the tile check uses [P, 2], and labelled pairs (what, i, j) shown first.
    Pairs: a cell centre and its neighbours k/8 of a tile away in x, in v and diagonally."""
    rng = np.random.default_rng(606)
    bases = [(-20, -4), (-13, 3), (5, -17), (-40, 20)]  # cell indices; all inside the box with room to move
    states, pairs = [], []
    for jx, jv in bases:
        i0 = len(states)
        states.append(_cell_centre(jx, jv))
        for what, dx, dv in [("x", 1, 0), ("x", 3, 0), ("x", 8, 0), ("v", 0, 1), ("v", 0, 5), ("v", 0, 8),
                             ("diagonal", 1, 1), ("diagonal", 2, 3), ("diagonal", 5, 2), ("diagonal", 4, -4)]:
            pairs.append((f"moved {dx}/8 tile in x and {dv}/8 in v" if what == "diagonal"
                          else f"moved {max(dx, dv)}/8 tile in {what}", i0, len(states)))
            states.append(_cell_centre(jx + dx, jv + dv))
    # Every phase of the tilings, then random states.
    qx, qv = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    states.extend(_cell_centre(qx.ravel() - 24, qv.ravel() - 4))
    low, high = np.array([-1.2, -0.07]), np.array([0.5, 0.07])
    states.extend(rng.uniform(low, high, size=(400, 2)))
    # The corners: the extreme indices must still be in range.
    states.extend([[-1.2, -0.07], [-1.2, 0.07], [0.5, -0.07], [0.5, 0.07]])
    return np.array(states, dtype=np.float64), pairs


def _variant(scale_low: bool = False, trunc: bool = False, offsets=(1, 3), tilings: int = 8, tiles: int = 8):
    """A tile coder with one of the usual mistakes, for naming a learner's: returns f(states) -> [P, T]."""

    def code(states: np.ndarray) -> np.ndarray:
        low, width = np.array([-1.2, -0.07]), np.array([1.7, 0.14])
        f = tiles * ((states - low) if scale_low else states) / width  # [P, 2]
        rnd = np.trunc if trunc else np.floor
        q = rnd(f * tilings)
        coords = rnd((q[:, None, :] + np.arange(tilings)[:, None] * np.array(offsets)) / tilings)  # [P, T, 2]
        return (np.arange(tilings)[None, :] * 10_000 + (coords[..., 0] + 50) * 100 + coords[..., 1] + 50).astype(np.int64)

    return code


TILE_MISTAKES = {
    "uniform offsets (i, i) instead of the asymmetric (i, 3i)": _variant(offsets=(1, 1)),
    "offsets swapped, (3i, i) instead of (i, 3i)": _variant(offsets=(3, 1)),
    "no offsets: all 8 tilings on top of each other": _variant(offsets=(0, 0)),
    "int() or truncation instead of floor (they differ for negative numbers)": _variant(trunc=True),
    "the grid starts at the low end of each range (x + 1.2) instead of at 0, as the book's call has it": _variant(scale_low=True),
    "the range divided into 8 * 8 = 64 tiles per dimension instead of 8": _variant(tiles=64),
    "4 tilings instead of 8": _variant(tilings=4),
}


def active_tiles(fn) -> None:
    """Check `active_tiles(position, velocity) -> [8] tile indices` against the book's tiling."""
    with Check("ch06.active_tiles", "tile coding of Mountain Car states (8 tilings, asymmetric offsets)",
               hint=f"Scale as the book does, f = 8 * x / (0.5 + 1.2) and 8 * v / (0.07 + 0.07); take q = floor(8 * f); "
                    f"tiling i has coordinates floor((q_x + i) / 8) and floor((q_v + 3 i) / 8) ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "position", "velocity")
        states, pairs = tile_states()
        got = _tile_indices(check, fn, states)  # [P, 8]
        want = ref_tiles.MOUNTAIN_CAR_CODER(states)  # [P, 8]
        check.expect(True, "8 integer indices in [0, 4096) for each of 600 states")
        distinct = np.array([len(set(row)) for row in got.tolist()])
        bad = int(np.argmin(distinct == N_TILINGS))
        check.require(np.all(distinct == N_TILINGS), "one tile per tiling: 8 different indices",
                      f"state ({states[bad, 0]:.4f}, {states[bad, 1]:.5f}) activates {got[bad].tolist()}, only "
                      f"{distinct[bad]} different tiles. Each tiling needs its own block of indices.")

        def named() -> str:
            """The usual mistake whose tiling the learner's matches, if any."""
            yours = shared_tiles(got, got)
            for name, code in TILE_MISTAKES.items():
                if np.array_equal(yours, shared_tiles(code(states), code(states))):
                    return f" Your tiles match this mistake: {name}."
            return ""

        for what, i, j in pairs:
            ours, yours = int((want[i][:, None] == want[j][None, :]).sum()), int((got[i][:, None] == got[j][None, :]).sum())
            if ours != yours:
                check.require(False, "neighbouring states share tiles in proportion to their distance",
                              f"state ({states[i, 0]:.4f}, {states[i, 1]:.5f}) {what} shares {ours} of 8 tiles with "
                              f"the book's tiling, {yours} with yours.{named()}")
        check.expect(True, "neighbouring states share tiles in proportion to their distance")
        share_want, share_got = shared_tiles(want, want), shared_tiles(got, got)
        diff = np.argwhere(share_want != share_got)
        if diff.size:
            i, j = diff[0]
            check.require(False, "the same tiles as the book's tiles3 for all pairs of 600 states",
                          f"states ({states[i, 0]:.4f}, {states[i, 1]:.5f}) and ({states[j, 0]:.4f}, {states[j, 1]:.5f}) share "
                          f"{share_want[i, j]} tiles in the book's tiling and {share_got[i, j]} in yours "
                          f"({len(diff) // 2} pairs differ).{named()}")
        check.expect(True, "the same tiles as the book's tiles3 for all pairs of 600 states")


# =============================================================================================
# Greedy action and the semi-gradient step
# =============================================================================================


def _mc_tiles(x: float, v: float) -> list[int]:
    return ref_tiles.active_tiles(x, v)


def greedy_action(fn) -> None:
    """Check `greedy_action(w, tiles, rng) -> action` (an int in 0..2, ties at random)."""
    with Check("ch06.greedy_action", "greedy action from tile-coded action values",
               hint=f"q(s, a) is the sum of w[a, tiles] over the 8 active tiles; return an action with the largest q, "
                    f"ties broken uniformly at random with rng ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "w", "tiles", "rng")
        rng = np.random.default_rng(61)
        tiles = np.array(_mc_tiles(-0.5, 0.01))

        def one(w, t, label):
            out = check.call(fn, w.copy(), t.copy(), rng, what=label)
            arr = check.array(out, label, shape=(), kind="int")
            if not 0 <= int(arr) < N_ACTIONS:
                raise CheckFailed(f"{label} returned {int(arr)}; actions are 0, 1, 2.")
            return int(arr)

        w = np.zeros((N_ACTIONS, MAX_TILES))
        w[1, tiles] = 0.1
        got = one(w, tiles, "greedy_action(w with q = [0, 0.8, 0], tiles, rng)")
        check.require(got == 1, "hand case: q = [0, 0.8, 0]", f"you chose {got}; action 1 has the largest q")
        w = np.zeros((N_ACTIONS, MAX_TILES))
        w[0, tiles[0]] = 1.0
        w[2, tiles] = 0.2
        got = one(w, tiles, "greedy_action(w with q = [1.0, 0, 1.6], tiles, rng)")
        check.require(got == 2, "q is the sum over the 8 active tiles",
                      f"action 0 has one weight of 1.0 (q = 1.0), action 2 eight weights of 0.2 (q = 1.6); you chose {got}")
        w = np.zeros((N_ACTIONS, MAX_TILES))
        w[0, tiles] = -5 / 8
        w[1, tiles] = -3 / 8
        w[2, tiles] = -4 / 8
        got = one(w, tiles, "greedy_action(w with q = [-5, -3, -4], tiles, rng)")
        check.require(got == 1, "negative values: q = [-5, -3, -4]", f"you chose {got}; the largest q is -3 (action 1)")
        w = rng.normal(size=(N_ACTIONS, MAX_TILES))
        states = rng.uniform([-1.2, -0.07], [0.5, 0.07], size=(200, 2))
        for x, v in states:
            t = np.array(_mc_tiles(x, v))
            want = int(np.argmax(w[:, t].sum(axis=1)))
            got = one(w, t, f"greedy_action(random w, tiles of ({x:.3f}, {v:.4f}), rng)")
            if got != want:
                check.require(False, "200 random cases", f"state ({x:.3f}, {v:.4f}): q = {np.round(w[:, t].sum(axis=1), 3).tolist()}, "
                                                         f"you chose {got}")
        check.expect(True, "200 random cases")

        def frequencies(w, n, label):
            out = check.call(lambda: [fn(w, tiles, rng) for _ in range(n)], what=label)
            acts = check.array(out, label, shape=(n,), kind="int")
            return np.bincount(np.clip(acts, 0, N_ACTIONS - 1), minlength=N_ACTIONS) / n

        n = 3000
        for q, expected, name in [((0.0, 0.0, 0.0), np.full(3, 1 / 3), "all three tied: each about 1/3 of the time"),
                                  ((-1.0, 0.0, 0.0), np.array([0, 0.5, 0.5]), "actions 1 and 2 tied: about half each")]:
            w = np.zeros((N_ACTIONS, MAX_TILES))
            for a in range(3):
                w[a, tiles] = q[a] / 8
            observed = frequencies(w, n, f"greedy_action with q = {list(q)}, {n} times")
            se = np.sqrt(np.maximum(expected * (1 - expected), 1e-12) / n)
            bad = np.where(expected == 0, observed > 0, np.abs(observed - expected) > FREQ_Z * se)
            check.expect(not bad.any(), name, f"with q = {list(q)} your choices were {np.round(observed, 3).tolist()}; "
                                              f"expected {np.round(expected, 3).tolist()}. Break ties with rng, not np.argmax.")


def sarsa_update(fn) -> None:
    """Check `sarsa_update(w, tiles, action, target, alpha)`: one semi-gradient step, in place."""
    with Check("ch06.sarsa_update", "the semi-gradient Sarsa step on tile features",
               hint=f"error = target - q(s, a) with q the sum of w[action, tiles]; then every active weight of that action "
                    f"moves by alpha * error (the gradient of q is 1 on them). Change w in place ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "w", "tiles", "action", "target", "alpha")
        tiles = np.array(_mc_tiles(-0.5, 0.0))

        def run(w0, t, a, target, alpha, label):
            w = w0.copy()
            check.call(fn, w, t.copy(), a, target, alpha, what=label)
            return check.array(w, label + ": w after the call", shape=w0.shape)

        w0 = np.zeros((N_ACTIONS, MAX_TILES))
        w = run(w0, tiles, 2, -1.0, 0.5 / 8, "sarsa_update(zeros, tiles, 2, -1.0, 0.5/8)")
        check.require(np.any(w != 0), "w is changed in place",
                      "w is unchanged after the call. Update the array you were given (w[action, tiles] += ...); "
                      "a new array that you return is not seen by the caller's loop.")
        want = w0.copy()
        want[2, tiles] = -1 / 16
        check.require(np.allclose(w, want), "hand case: from zero weights, target -1, alpha = 0.5/8",
                      f"the 8 active weights of action 2 should each become 0.5/8 * (-1 - 0) = -0.0625, all else 0; "
                      f"you have {np.round(w[2, tiles], 4).tolist()} there and {int(np.count_nonzero(w) - np.count_nonzero(w[2, tiles]))} "
                      "other nonzero weights")
        w0 = np.zeros((N_ACTIONS, MAX_TILES))
        w0[0, tiles] = 0.25  # q(s, 0) = 2
        w0[1, tiles] = 7.0  # another action: must not move
        w = run(w0, tiles, 0, 0.0, 0.1, "sarsa_update(w with q(s, 0) = 2, tiles, 0, 0.0, 0.1)")
        want = w0.copy()
        want[0, tiles] = 0.25 + 0.1 * (0.0 - 2.0)
        check.require(np.allclose(w, want), "hand case: the error is target - q(s, a), with q the sum of 8 weights",
                      f"q(s, 0) = 8 * 0.25 = 2, error 0 - 2 = -2, so each active weight of action 0 becomes 0.25 + 0.1 * (-2) = 0.05 "
                      f"and action 1 keeps 7.0; you have action 0: {np.round(w[0, tiles], 4).tolist()}, action 1: "
                      f"{np.round(w[1, tiles], 4).tolist()}")
        rng = np.random.default_rng(62)
        for case in range(20):
            w0 = rng.normal(size=(N_ACTIONS, MAX_TILES))
            x, v = rng.uniform([-1.2, -0.07], [0.5, 0.07])
            t = np.array(_mc_tiles(x, v))
            a, target, alpha = int(rng.integers(3)), float(rng.normal(-20, 10)), float(rng.choice([0.1, 0.3, 0.5]) / 8)
            want = ref_approx.sarsa_update(w0.copy(), t, a, target, alpha)
            w = run(w0, t, a, target, alpha, f"sarsa_update(random w, tiles, {a}, {target:.3f}, {alpha:.4f})")
            if not np.allclose(w, want, atol=1e-10):
                worst = np.unravel_index(np.abs(w - want).argmax(), w.shape)
                check.require(False, "20 random cases against rlcore",
                              f"action {a}, target {target:.3f}, alpha {alpha:.4f}: weight {tuple(int(i) for i in worst)} "
                              f"is {w[worst]:.6f}, expected {want[worst]:.6f}")
        check.expect(True, "20 random cases against rlcore")


# =============================================================================================
# The episode loops: the grader's car
# =============================================================================================


class _Trapped(CheckFailed):
    """Raised by the grader's car when an episode passes MAX_EPISODE_STEPS."""


class _TooManyTrapped(CheckFailed):
    """More than MAX_TRAPPED runs of one curve check were trapped."""


class GradedCar(ref_car.MountainCar):
    """The book's Mountain Car that records the length of every episode it runs, refuses to go on
    after MAX_EPISODE_STEPS steps in one episode, and can start its episodes elsewhere:
    start = (x low, x high, velocity)."""

    def __init__(self, rng: np.random.Generator, start: tuple[float, float, float] | None = None,
                 max_episode_steps: int | None = None):
        super().__init__(rng)
        self.start = start
        self.max_episode_steps = max_episode_steps or MAX_EPISODE_STEPS
        self.lengths: list[int] = []
        self.steps = 0
        self.resets = 0

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            raise LearnerCodeError("call env.reset() without a seed: the grader seeds its car itself, and a fixed "
                                   "seed would start every episode in the same place.")
        obs, info = super().reset(options=options)
        if self.start is not None:
            self.position = float(self.np_random.uniform(self.start[0], self.start[1]))
            self.velocity = float(self.start[2])
            obs = np.array([self.position, self.velocity])
        self.steps = 0
        self.resets += 1
        return obs, info

    def step(self, action):
        if self.steps >= self.max_episode_steps:
            raise _Trapped(f"episode {len(self.lengths) + 1} passed {self.max_episode_steps} steps without reaching the goal")
        self.steps += 1
        out = super().step(action)
        if out[2]:
            self.lengths.append(self.steps)
        return out


def _loop_call(check: Check, fn, kind: str, env, n_episodes: int, n: int, alpha: float, rng, w0, budget_s: float):
    """Call the learner's loop; returns the weights it returns."""
    shown = f"n={n}, " if kind == "n_step_sarsa" else ""
    what = f"{kind}(env, n_episodes={n_episodes}, {shown}alpha={alpha * 8:g}/8, rng, w)"
    args = (env, n_episodes, n, alpha, rng, w0) if kind == "n_step_sarsa" else (env, n_episodes, alpha, rng, w0)
    out = check.call(fn, *args, budget_s=budget_s, what=what)
    if out is None:
        raise LearnerCodeError(f"{what} returned None. Return the weights w at the end.")
    return check.array(out, what, shape=(N_ACTIONS, MAX_TILES)) if w0 is not None else check.array(out, what)


def _tiles_of(fn):
    """The active_tiles function the learner's loop calls (a global of the notebook), or None."""
    return getattr(fn, "__globals__", {}).get("active_tiles")


def _replays(check: Check, fn, kind: str, cases) -> None:
    """Exact cases: the learner's loop and rlcore's, same car, same random initial weights."""
    tiles_fn = _tiles_of(fn)
    fallback = not callable(tiles_fn)
    if fallback:  # no active_tiles beside the loop: compare with the book's tiles, numbered as rlcore numbers them
        tiles_fn = ref_tiles.active_tiles
    causes = ("choosing the next action after the update instead of before it, bootstrapping from the goal "
              "state, or not moving on to (S', A') after the update")
    if kind == "n_step_sarsa":
        causes = ("the reward sum (R_(tau+1) .. R_(min(tau+n, T))), bootstrapping only when tau + n < T, "
                  "the updates after the episode has ended, or using n at all")
    for index, (n, alpha_x8, n_episodes, start, what) in enumerate(cases):
        alpha = alpha_x8 / N_TILINGS
        seed = 6100 + index
        # Small random initial weights below 0: no ties anywhere, so nothing is left to chance,
        # and the car still behaves as with Q0 = 0 (every tried action looks worse).
        w0 = -np.random.default_rng(seed).uniform(0, 1e-3, size=(N_ACTIONS, MAX_TILES))
        car = GradedCar(np.random.default_rng(seed), start)
        try:
            got = _loop_call(check, fn, kind, car, n_episodes, n, alpha, np.random.default_rng(0), w0.copy(), 30.0)
        except _Trapped as err:
            raise CheckFailed(f"{what}: {err}; rlcore's loop, from the same weights, finishes. "
                              "Does the update move q(S, A) towards the target, and does the loop go on with the next state?") from None
        ref_car_ = GradedCar(np.random.default_rng(seed), start)
        try:
            want = ref_approx.n_step_sarsa(ref_car_, n_episodes, n, alpha, np.random.default_rng(0), w0.copy(),
                                           tiles_fn=lambda x, v: np.asarray(tiles_fn(x, v), dtype=np.int64))
        except Exception as err:  # the learner's tiles misbehave (they have their own check)
            raise LearnerCodeError(f"rlcore's loop could not run with your active_tiles: {type(err).__name__}: {err}. "
                                   "Make active_tiles pass its check first.") from None
        label = f"{what} ({n_episodes} episode{'s' if n_episodes > 1 else ''}, alpha = {alpha_x8}/8)"
        if car.lengths != ref_car_.lengths:
            detail = _replay_mismatch(car, ref_car_, n_episodes, causes)
            if fallback and len(car.lengths) == n_episodes:
                detail += (" (No function named active_tiles was found beside your loop, so rlcore's loop used "
                           "rlcore's tiles; name your tile coder active_tiles and run its cell.)")
            check.require(False, f"exact replay: {label}", detail)
        err = np.abs(got - want)
        if not np.allclose(got, want, rtol=1e-9, atol=1e-9):
            worst = np.unravel_index(err.argmax(), err.shape)
            check.require(False, f"exact replay: {label}",
                          f"the episodes match ({car.lengths} steps) but the final weights differ: w{tuple(int(i) for i in worst)} "
                          f"is {got[worst]:.6g}, rlcore has {want[worst]:.6g}. Is every update (including the last ones "
                          "of an episode) made once, with the reward sum and bootstrap of the book's algorithm?")
        check.expect(True, f"exact replay: {label}")


def _replay_mismatch(car: GradedCar, ref: GradedCar, n_episodes: int, causes: str) -> str:
    if car.resets != n_episodes and len(car.lengths) != n_episodes:
        return (f"your loop ran {len(car.lengths)} complete episode(s) (env.reset() called {car.resets} times); "
                f"expected {n_episodes}. Reset the env once at the start of every episode and stop after n_episodes.")
    for e, (a, b) in enumerate(zip(car.lengths, ref.lengths)):
        if a != b:
            return (f"episode {e + 1} took {a} steps with your loop and {b} with rlcore's, from the same car and the same "
                    f"random initial weights (so no ties are possible). Look at {causes}.")
    return f"your loop ran episodes of {car.lengths} steps; rlcore's {ref.lengths}"


# =============================================================================================
# The episode loops: learning curves
# =============================================================================================


def _curve_runs(check: Check, fn, kind: str, config: CurveConfig, seed: int) -> tuple[np.ndarray, int]:
    """config.n_runs runs of the learner's loop from zero weights. Returns lengths [E, R] and the
    number of trapped runs that were replaced."""
    runs, trapped, attempt = [], 0, 0
    seeds = np.random.SeedSequence(seed).spawn(config.n_runs + MAX_TRAPPED)
    while len(runs) < config.n_runs:
        env_rng, agent_rng = np.random.default_rng(seeds[attempt]).spawn(2)
        attempt += 1
        car = GradedCar(env_rng)
        try:
            _loop_call(check, fn, kind, car, config.n_episodes, config.n, config.alpha, agent_rng, None, 120.0)
        except _Trapped:
            trapped += 1
            if trapped > MAX_TRAPPED:
                done = [sum(r) for r in runs]
                ref = load_reference()["checks"][config.key]
                raise _TooManyTrapped(
                    f"{config.label}: {trapped} runs were trapped: an episode passed {MAX_EPISODE_STEPS} steps without "
                    f"reaching the goal (runs that finished: {len(runs)}). A correct learner rarely is: {ref['trapped']} of "
                    f"{ref['n_runs']} reference runs of this experiment. Look at the tile coder (floor, not int(), for "
                    f"negative numbers) and at the update."
                    + (f" Total steps of the finished runs: {done}." if done else "")) from None
            continue
        if len(car.lengths) != config.n_episodes:
            raise CheckFailed(f"{config.label}: your loop ran {len(car.lengths)} complete episodes; expected {config.n_episodes}.")
        runs.append(car.lengths)
    return np.array(runs).T, trapped  # [E, R]


def _panel(config: CurveConfig, learner_mean: np.ndarray, n_runs: int, passed: bool) -> Panel:
    curve = load_reference()["checks"][config.key]["curve"]
    mean, sd = np.asarray(curve["mean"])[: config.n_episodes], np.asarray(curve["sd"])[: config.n_episodes]
    half = 3 * sd / math.sqrt(n_runs)
    graded = config.metrics[-1]
    return Panel(title=config.label, ylabel=f"steps per episode ({n_runs}-run mean)", x=np.arange(1, config.n_episodes + 1),
                 learner=learner_mean, ref_mean=mean, ref_low=np.maximum(mean - half, 1.0), ref_high=mean + half,
                 passed=passed, window=(graded.first, graded.last), xlabel="episode")


def _curve_figure(panels: list[Panel], title: str):
    fig = curve_figure(panels, title)
    for ax in fig.axes:
        ax.set_yscale("log")  # the book's Figure 10.2 axis: 100 to 1000+ steps
    return fig


def _diagnose(verdicts: list[stats.Verdict], tiles_fn) -> list[str]:
    notes = []
    for v in verdicts:
        if not v.passed:
            direction = "more" if v.estimate > v.high else "fewer"
            notes.append(f"{v.metric}: {v.estimate:.1f} steps, {direction} than the reference {v.reference:.1f}.")
    if callable(tiles_fn):
        states, _ = tile_states()
        try:
            got = np.array([np.asarray(tiles_fn(float(x), float(v))) for x, v in states[:120]])
            if got.shape != (120, N_TILINGS) or not np.array_equal(
                    shared_tiles(got, got), shared_tiles(*(2 * [ref_tiles.MOUNTAIN_CAR_CODER(states[:120])]))):
                notes.append("Your active_tiles does not tile like the book's; make its check pass first.")
        except Exception:
            notes.append("Your active_tiles raises an error; make its check pass first.")
    if any(not v.passed and v.estimate > v.high for v in verdicts):
        notes.append("Slower learning: is alpha used as given (it is already divided by 8), do the weights start at 0, "
                     "and are ties broken at random?")
    return notes


def _curve_check(fn, kind: str, configs: tuple[CurveConfig, ...], visible_seed: int, title: str, hint: str,
                 replays) -> None:
    check_id = f"ch06.{kind}"
    with Check(check_id, title, hint=hint) as check:
        params = ("env", "n_episodes", "n", "alpha", "rng", "w") if kind == "n_step_sarsa" else ("env", "n_episodes", "alpha", "rng", "w")
        fn = check.signature(fn, *params)
        _replays(check, fn, kind, replays)
        seeds, hidden = grading_seeds(check_id, [visible_seed])
        reference = load_reference()
        panels, all_verdicts = [], []
        for index, config in enumerate(configs):
            lengths, trapped = [], 0
            for seed in seeds:
                try:
                    runs, t = _curve_runs(check, fn, kind, config, seed * 100 + index)
                except _TooManyTrapped:
                    check.diagnosis.extend(_diagnose([], _tiles_of(fn)))
                    raise
                lengths.append(runs)
                trapped += t
            lengths = np.concatenate(lengths, axis=1)  # [E, R x seeds]
            verdicts = judge(config, lengths, reference)
            for v in verdicts:
                check.verdict(v, v.metric)
            all_verdicts += verdicts
            passed = all(v.passed for v in verdicts)
            panels.append(_panel(config, lengths.mean(axis=1), lengths.shape[1], passed))
            if trapped:
                check.note(f"{config.label}: {trapped} trapped run(s) replaced by new seeds (see the lesson, section 5)")
        n_runs = sum(c.n_runs for c in configs) * len(seeds)
        check.plot(_curve_figure(panels, f"{kind}: your learner ({n_runs} runs{', hidden seeds' if hidden else ''}) "
                                         "vs the reference"), "curves")
        if any(not v.passed for v in all_verdicts):
            check.diagnosis.extend(_diagnose(all_verdicts, _tiles_of(fn)))
        else:
            for v in all_verdicts:
                check.note(f"{v.metric}: {v.estimate:.1f} (reference {v.reference:.1f})")


def semi_gradient_sarsa(fn) -> None:
    """Check `semi_gradient_sarsa(env, n_episodes, alpha, rng, w=None) -> w`: exact replays, then Figure 10.2."""
    _curve_check(fn, "semi_gradient_sarsa", (SARSA_CONFIG,), SARSA_VISIBLE_SEED,
                 "episodic semi-gradient Sarsa reproduces Figure 10.2 (alpha = 0.5/8)",
                 f"Per episode: reset, tiles and greedy A; per step: step, and at a terminal state update towards R alone; "
                 f"otherwise choose A' first, then update towards R + q(S', A'), then move on ({LESSON}, section 4).",
                 SARSA_REPLAYS)


def n_step_sarsa(fn) -> None:
    """Check `n_step_sarsa(env, n_episodes, n, alpha, rng, w=None) -> w`: exact replays, then Figure 10.3."""
    _curve_check(fn, "n_step_sarsa", NSTEP_CONFIGS, NSTEP_VISIBLE_SEED,
                 "episodic semi-gradient n-step Sarsa reproduces Figure 10.3 (n = 1 and n = 8)",
                 f"Follow the book's loop: at time t update tau = t - n + 1 with R_(tau+1) + ... + R_(min(tau+n, T)) plus "
                 f"q(S_(tau+n), A_(tau+n)) only if tau + n < T; after the episode ends keep updating until tau = T - 1 "
                 f"({LESSON}, section 6).",
                 NSTEP_REPLAYS)
