"""Tests of rlcore.tabular.nstep, from exact to statistical.

(a) the n-step return against an independent formula (full returns minus the discounted tail) and
    its limits (n = 1 is TD(0)'s target, n >= T the Monte Carlo return);
(b) one episode of updates against the book's online pseudocode, written out step by step here;
(c) the vectorized runs against the one-run loop, run by run and step size by step size;
(d) determinism and the Figure 7.2 shape on a few hundred runs;
(e) bad input gives a ValueError that says what is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlcore.returns import returns_to_go
from rlcore.tabular.nstep import (
    nstep_return,
    nstep_td,
    nstep_td_episode,
    nstep_td_runs,
    rms_error,
    run_generators,
)
from rlcore.tabular.random_walk import RandomWalk

WALK19 = RandomWalk(19, left_reward=-1.0)


def random_episode(seed: int, n_states: int = 19):
    """A random-walk episode with random rewards on every step and a random V (terminals 0)."""
    rng = np.random.default_rng(seed)
    states, _ = RandomWalk(n_states).episode(rng)
    rewards = rng.normal(size=states.size - 1)
    V = rng.normal(size=n_states + 2)
    V[[0, -1]] = 0.0
    return states, rewards, V


# ---------------------------------------------------------------------------------------------
# (a) The n-step return
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.0])
def test_nstep_return_is_full_return_minus_discounted_tail(seed, n, gamma):
    states, rewards, V = random_episode(seed)
    T = rewards.size
    G = np.append(returns_to_go(rewards, gamma), 0.0)  # [T + 1], G_T = 0
    for tau in range(T):
        ahead = min(tau + n, T)
        want = G[tau] - gamma**n * G[ahead] if ahead < T else G[tau]
        if tau + n < T:
            want += gamma**n * V[states[tau + n]]
        assert nstep_return(V, states, rewards, tau, n, gamma) == pytest.approx(want, abs=1e-10)


def test_nstep_return_limits():
    states, rewards, V = random_episode(1)
    T = rewards.size
    for tau in range(T):
        # n = 1: TD(0)'s target R_{tau+1} + gamma V(S_{tau+1}), with V(terminal) never read.
        td0 = rewards[tau] + (0.9 * V[states[tau + 1]] if tau + 1 < T else 0.0)
        assert nstep_return(V, states, rewards, tau, 1, 0.9) == pytest.approx(td0)
        # n >= T - tau: the Monte Carlo return.
        assert nstep_return(V, states, rewards, tau, T, 0.9) == pytest.approx(returns_to_go(rewards, 0.9)[tau])


def test_nstep_return_hand_cases():
    states = np.array([3, 4, 5, 6])
    rewards = np.array([0.0, 0.0, 1.0])
    V = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 7.0])  # junk in the right terminal: never read
    assert nstep_return(V, states, rewards, 0, 1, 1.0) == pytest.approx(0.4)
    assert nstep_return(V, states, rewards, 0, 2, 0.9) == pytest.approx(0.81 * 0.5)
    assert nstep_return(V, states, rewards, 1, 3, 0.9) == pytest.approx(0.9)
    assert nstep_return(V, states, rewards, 2, 1, 0.9) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# (b) One episode against the book's online algorithm
# ---------------------------------------------------------------------------------------------


def book_online_nstep_td(V, states, rewards, n, alpha, gamma):
    """The pseudocode of section 7.1, step by step: at time t the update for tau = t - n + 1."""
    T = np.inf
    t = 0
    while True:
        if t < T and t + 1 == len(states) - 1:
            T = t + 1  # the step just taken entered the terminal state S_{t+1}
        tau = t - n + 1
        if tau >= 0:
            G = sum(gamma ** (i - tau - 1) * rewards[i - 1] for i in range(tau + 1, int(min(tau + n, T)) + 1))
            if tau + n < T:
                G += gamma**n * V[states[tau + n]]
            V[states[tau]] += alpha * (G - V[states[tau]])
        if tau == T - 1:
            return V
        t += 1


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [1, 2, 4, 16, 1000])
def test_episode_update_matches_the_online_algorithm(seed, n):
    states, rewards, V = random_episode(seed)
    alpha, gamma = 0.3, (1.0, 0.8)[seed % 2]
    want = book_online_nstep_td(V.copy(), states, rewards, n, alpha, gamma)
    got = nstep_td_episode(V.copy(), states, rewards, n, alpha, gamma)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_episode_update_in_place_and_terminals_untouched():
    states, rewards, V = random_episode(3)
    V_in = V.copy()
    out = nstep_td_episode(V, states, rewards, 3, 0.5, 1.0)
    assert out is V
    assert not np.allclose(V, V_in)
    assert V[0] == 0.0 and V[-1] == 0.0


def test_hand_episode():
    V = np.array([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0])
    nstep_td_episode(V, np.array([3, 4, 5, 6]), np.array([0.0, 0.0, 1.0]), 2, 0.5, 1.0)
    np.testing.assert_allclose(V, [0, 0.5, 0.5, 0.5, 0.75, 0.75, 0])


# ---------------------------------------------------------------------------------------------
# (c) Vectorized runs against the one-run loop
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 8, 64])
def test_runs_match_the_one_run_loop(n):
    alphas = [0.0, 0.2, 0.9]
    history = nstep_td_runs(WALK19, n, alphas, 6, 4, seed=11)  # [E, R, A, S]
    assert history.shape == (4, 6, 3, 19)
    for r in range(6):
        for a, alpha in enumerate(alphas):
            one = nstep_td(WALK19, n, alpha, 4, run_generators(11, 6)[r])
            np.testing.assert_allclose(history[:, r, a], one, atol=1e-12)


def test_runs_with_discount_and_initial_value_match():
    walk = RandomWalk(5)
    history = nstep_td_runs(walk, 2, [0.1, 0.5], 4, 3, seed=2, gamma=0.9, initial=0.5)
    for r in range(4):
        one = nstep_td(walk, 2, 0.5, 3, run_generators(2, 4)[r], gamma=0.9, initial=0.5)
        np.testing.assert_allclose(history[:, r, 1], one, atol=1e-12)


def test_alpha_zero_never_learns():
    history = nstep_td_runs(WALK19, 4, [0.0], 5, 3, seed=0)
    assert np.all(history == 0.0)
    assert rms_error(history, WALK19.true_values()) == pytest.approx(np.sqrt(0.3))


# ---------------------------------------------------------------------------------------------
# (d) Determinism and the shape of Figure 7.2
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_runs_different_seed_different_runs():
    a = nstep_td_runs(WALK19, 4, [0.4], 20, 10, seed=5)
    b = nstep_td_runs(WALK19, 4, [0.4], 20, 10, seed=5)
    c = nstep_td_runs(WALK19, 4, [0.4], 20, 10, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_figure_7_2_shape():
    """Intermediate n is best: with 300 runs, n = 4 at its best alpha beats n = 1 and n = 64 at
    theirs by more than 5 standard errors (reference: 0.263 vs 0.345 and 0.45)."""
    true_values = WALK19.true_values()
    alphas = np.array([0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    best = {}
    for n in (1, 4, 64):
        per_run = rms_error(nstep_td_runs(WALK19, n, alphas, 300, 10, seed=n), true_values).mean(axis=0)  # [R, A]
        a = int(per_run.mean(axis=0).argmin())
        best[n] = (per_run[:, a].mean(), per_run[:, a].std(ddof=1) / np.sqrt(300))
    for other in (1, 64):
        gap = best[other][0] - best[4][0]
        assert gap > 5 * np.hypot(best[other][1], best[4][1]), (best, other)


# ---------------------------------------------------------------------------------------------
# (e) Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_input_messages():
    states, rewards, V = random_episode(0)
    with pytest.raises(ValueError, match="n must be a whole number >= 1"):
        nstep_return(V, states, rewards, 0, 0, 1.0)
    with pytest.raises(ValueError, match="tau must be a time step"):
        nstep_return(V, states, rewards, rewards.size, 1, 1.0)
    with pytest.raises(ValueError, match="states \\[T \\+ 1\\] and rewards \\[T\\]"):
        nstep_return(V, states, rewards[:-1], 0, 1, 1.0)
    with pytest.raises(ValueError, match="gamma must be in"):
        nstep_return(V, states, rewards, 0, 1, 1.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        nstep_td_episode(V, states, rewards, 1, float("nan"), 1.0)
    with pytest.raises(ValueError, match="alphas must be step sizes"):
        nstep_td_runs(WALK19, 1, [0.1, 2.0], 2, 1)
    with pytest.raises(ValueError, match="5 states on its last axis"):
        rms_error(np.zeros((3, 5)), np.zeros(19))
