"""Planted-bug variants of the chapter 06 pieces: realistic mistakes the checks must catch.

`UNIT_BUGS[check_name]` lists (description, buggy function) for the unit checks,
`LOOP_BUGS[check_name]` (description, buggy loop) for the two episode-loop checks. Most loop bugs
are caught by the exact replays; the last variants of each loop are correct loops that use a wrong
tile coder, which only the learning curves can see (the replays run rlcore with the same tiles).
"""

from __future__ import annotations

import math
import types

import numpy as np

from rlcore.tabular.tiles import active_tiles  # noqa: F401  (the loops below look it up as a global)

N_ACTIONS, MAX_TILES = 3, 4096

# ------------------------------------------------------------------------------------------
# Tile coders
# ------------------------------------------------------------------------------------------


def _tiles(position, velocity, *, offsets=(1, 3), rounding=math.floor, origin=(0.0, 0.0), separate=True):
    qx = rounding(8 * 8 * (position - origin[0]) / (0.5 + 1.2))
    qv = rounding(8 * 8 * (velocity - origin[1]) / (0.07 + 0.07))
    out = []
    for i in range(8):
        cx = rounding((qx + offsets[0] * i) / 8) + 10
        cv = rounding((qv + offsets[1] * i) / 8) + 10
        out.append((i * 400 if separate else 0) + cx * 20 + cv)
    return out


def tiles_uniform_offsets(position, velocity):
    return _tiles(position, velocity, offsets=(1, 1))


def tiles_truncation(position, velocity):
    return _tiles(position, velocity, rounding=lambda z: int(z))  # int() rounds -2.5 to -2, not -3


def tiles_from_low_end(position, velocity):
    return _tiles(position, velocity, origin=(-1.2, -0.07))  # the grid starts at -1.2, not at 0


def tiles_shared_index_space(position, velocity):
    return _tiles(position, velocity, separate=False)  # tilings overwrite each other's indices


def tiles_no_offsets(position, velocity):
    return _tiles(position, velocity, offsets=(0, 0))


# ------------------------------------------------------------------------------------------
# Greedy action
# ------------------------------------------------------------------------------------------


def greedy_first_index(w, tiles, rng):
    return int(np.argmax(w[:, tiles].sum(axis=1)))  # ties always to action 0


def greedy_max_tile(w, tiles, rng):
    q = w[:, tiles].max(axis=1)  # the largest single weight instead of the sum
    best = np.flatnonzero(q == q.max())
    return int(best[rng.integers(best.size)])


def greedy_first_tile(w, tiles, rng):
    q = w[:, tiles[0]]  # only the first tiling
    best = np.flatnonzero(q == q.max())
    return int(best[rng.integers(best.size)])


def greedy_any_on_tie(w, tiles, rng):
    q = w[:, tiles].sum(axis=1)
    if np.sum(q == q.max()) > 1:
        return int(rng.integers(N_ACTIONS))  # a tie anywhere: any action, even a worse one
    return int(np.argmax(q))


# ------------------------------------------------------------------------------------------
# The semi-gradient step
# ------------------------------------------------------------------------------------------


def update_mean_not_sum(w, tiles, action, target, alpha):
    w[action, tiles] += alpha * (target - w[action, tiles].mean())
    return w


def update_no_error(w, tiles, action, target, alpha):
    w[action, tiles] += alpha * target  # forgot to subtract q(s, a)
    return w


def update_every_action(w, tiles, action, target, alpha):
    w[:, tiles] += alpha * (target - w[action, tiles].sum())
    return w


def update_not_in_place(w, tiles, action, target, alpha):
    w = w.copy()
    w[action, tiles] += alpha * (target - w[action, tiles].sum())
    return w


def update_alpha_divided_again(w, tiles, action, target, alpha):
    w[action, tiles] += alpha / 8 * (target - w[action, tiles].sum())  # alpha is already per tiling
    return w


# ------------------------------------------------------------------------------------------
# Loops (built on correct pieces, each with one mistake)
# ------------------------------------------------------------------------------------------


def _greedy(w, tiles, rng):
    q = w[:, tiles].sum(axis=1)
    best = np.flatnonzero(q == q.max())
    return int(best[rng.integers(best.size)])


def _update(w, tiles, action, target, alpha):
    w[action, tiles] += alpha * (target - w[action, tiles].sum())


def sarsa_correct(env, n_episodes, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        tiles = active_tiles(*obs)
        action = _greedy(w, tiles, rng)
        while True:
            obs, reward, terminated, _, _ = env.step(action)
            if terminated:
                _update(w, tiles, action, reward, alpha)
                break
            next_tiles = active_tiles(*obs)
            next_action = _greedy(w, next_tiles, rng)
            _update(w, tiles, action, reward + w[next_action, next_tiles].sum(), alpha)
            tiles, action = next_tiles, next_action
    return w


def sarsa_bootstrap_at_terminal(env, n_episodes, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        tiles = active_tiles(*obs)
        action = _greedy(w, tiles, rng)
        while True:
            obs, reward, terminated, _, _ = env.step(action)
            next_tiles = active_tiles(*obs)
            next_action = _greedy(w, next_tiles, rng)
            # The goal state gets a value too: R + q(S_T, A') instead of R alone.
            _update(w, tiles, action, reward + w[next_action, next_tiles].sum(), alpha)
            if terminated:
                break
            tiles, action = next_tiles, next_action
    return w


def sarsa_choose_after_update(env, n_episodes, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        tiles = active_tiles(*obs)
        action = _greedy(w, tiles, rng)
        while True:
            obs, reward, terminated, _, _ = env.step(action)
            if terminated:
                _update(w, tiles, action, reward, alpha)
                break
            next_tiles = active_tiles(*obs)
            q_next = w[:, next_tiles].sum(axis=1)
            _update(w, tiles, action, reward + q_next.max(), alpha)
            action = _greedy(w, next_tiles, rng)  # chosen after the update: can differ from the one bootstrapped
            tiles = next_tiles
    return w


def sarsa_stale_state(env, n_episodes, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        tiles = active_tiles(*obs)
        action = _greedy(w, tiles, rng)
        while True:
            obs, reward, terminated, _, _ = env.step(action)
            if terminated:
                _update(w, tiles, action, reward, alpha)
                break
            next_tiles = active_tiles(*obs)
            next_action = _greedy(w, next_tiles, rng)
            _update(w, tiles, action, reward + w[next_action, next_tiles].sum(), alpha)
            action = next_action  # forgot tiles = next_tiles: every update is for the start state
    return w


def sarsa_discounted(env, n_episodes, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        tiles = active_tiles(*obs)
        action = _greedy(w, tiles, rng)
        while True:
            obs, reward, terminated, _, _ = env.step(action)
            if terminated:
                _update(w, tiles, action, reward, alpha)
                break
            next_tiles = active_tiles(*obs)
            next_action = _greedy(w, next_tiles, rng)
            _update(w, tiles, action, reward + 0.9 * w[next_action, next_tiles].sum(), alpha)  # the task is undiscounted
            tiles, action = next_tiles, next_action
    return w


def nstep_correct(env, n_episodes, n, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        S, A, R = [active_tiles(*obs)], [], [0.0]
        A.append(_greedy(w, S[0], rng))
        T, t = math.inf, 0
        while True:
            if t < T:
                obs, reward, terminated, _, _ = env.step(A[t])
                R.append(reward)
                if terminated:
                    T = t + 1
                else:
                    S.append(active_tiles(*obs))
                    A.append(_greedy(w, S[t + 1], rng))
            tau = t - n + 1
            if tau >= 0:
                G = sum(R[tau + 1 : min(tau + n, T) + 1])
                if tau + n < T:
                    G += w[A[tau + n], S[tau + n]].sum()
                _update(w, S[tau], A[tau], G, alpha)
            if tau == T - 1:
                break
            t += 1
    return w


def nstep_no_flush(env, n_episodes, n, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        S, A, R = [active_tiles(*obs)], [], [0.0]
        A.append(_greedy(w, S[0], rng))
        t = 0
        while True:
            obs, reward, terminated, _, _ = env.step(A[t])
            R.append(reward)
            T = t + 1 if terminated else math.inf
            if not terminated:
                S.append(active_tiles(*obs))
                A.append(_greedy(w, S[t + 1], rng))
            tau = t - n + 1
            if tau >= 0:
                G = sum(R[tau + 1 : min(tau + n, T) + 1])
                if tau + n < T:
                    G += w[A[tau + n], S[tau + n]].sum()
                _update(w, S[tau], A[tau], G, alpha)
            if terminated:
                break  # the last n - 1 states of the episode are never updated
            t += 1
    return w


def nstep_always_bootstrap(env, n_episodes, n, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        S, A, R = [active_tiles(*obs)], [], [0.0]
        A.append(_greedy(w, S[0], rng))
        T, t = math.inf, 0
        while True:
            if t < T:
                obs, reward, terminated, _, _ = env.step(A[t])
                R.append(reward)
                S.append(active_tiles(*obs))  # the goal state too
                A.append(_greedy(w, S[t + 1], rng))
                if terminated:
                    T = t + 1
            tau = t - n + 1
            if tau >= 0:
                G = sum(R[tau + 1 : min(tau + n, T) + 1])
                end = min(tau + n, T)
                G += w[A[end], S[end]].sum()  # bootstraps from the goal state when the episode has ended
                _update(w, S[tau], A[tau], G, alpha)
            if tau == T - 1:
                break
            t += 1
    return w


def nstep_rewards_off_by_one(env, n_episodes, n, alpha, rng, w=None):
    if w is None:
        w = np.zeros((N_ACTIONS, MAX_TILES))
    for _ in range(n_episodes):
        obs, _ = env.reset()
        S, A, R = [active_tiles(*obs)], [], [0.0]
        A.append(_greedy(w, S[0], rng))
        T, t = math.inf, 0
        while True:
            if t < T:
                obs, reward, terminated, _, _ = env.step(A[t])
                R.append(reward)
                if terminated:
                    T = t + 1
                else:
                    S.append(active_tiles(*obs))
                    A.append(_greedy(w, S[t + 1], rng))
            tau = t - n + 1
            if tau >= 0:
                G = sum(R[tau : min(tau + n, T)])  # R_tau .. R_(tau+n-1): one reward too early
                if tau + n < T:
                    G += w[A[tau + n], S[tau + n]].sum()
                _update(w, S[tau], A[tau], G, alpha)
            if tau == T - 1:
                break
            t += 1
    return w


def nstep_ignores_n(env, n_episodes, n, alpha, rng, w=None):
    return sarsa_correct(env, n_episodes, alpha, rng, w)  # always one-step


def _with_tiles(loop, tiles_fn):
    """The same loop code, looking up another active_tiles."""
    namespace = dict(loop.__globals__, active_tiles=tiles_fn)
    return types.FunctionType(loop.__code__, namespace, loop.__name__, loop.__defaults__)


UNIT_BUGS = {
    "active_tiles": [("uniform offsets (i, i)", tiles_uniform_offsets),
                     ("int() instead of floor", tiles_truncation),
                     ("grid anchored at the low end of each range", tiles_from_low_end),
                     ("all tilings in one index space", tiles_shared_index_space),
                     ("no offsets", tiles_no_offsets)],
    "greedy_action": [("ties to the first action (np.argmax)", greedy_first_index),
                      ("max of the weights instead of their sum", greedy_max_tile),
                      ("only the first tiling", greedy_first_tile),
                      ("any action whenever two tie", greedy_any_on_tie)],
    "sarsa_update": [("mean of the weights as q", update_mean_not_sum),
                     ("no error: w += alpha * target", update_no_error),
                     ("every action's weights move", update_every_action),
                     ("a new array, w not changed in place", update_not_in_place),
                     ("alpha divided by 8 again", update_alpha_divided_again)],
}

LOOP_BUGS = {
    "semi_gradient_sarsa": [("bootstraps from the goal state", sarsa_bootstrap_at_terminal),
                            ("next action chosen after the update", sarsa_choose_after_update),
                            ("never moves on to the next state's tiles", sarsa_stale_state),
                            ("discounts with 0.9", sarsa_discounted),
                            ("a correct loop on a tile coder that truncates", _with_tiles(sarsa_correct, tiles_truncation))],
    "n_step_sarsa": [("no updates after the episode ends", nstep_no_flush),
                     ("bootstraps from the goal state", nstep_always_bootstrap),
                     ("rewards one step early", nstep_rewards_off_by_one),
                     ("n ignored: always one-step", nstep_ignores_n),
                     ("a correct loop on a tile coder that truncates", _with_tiles(nstep_correct, tiles_truncation))],
}
