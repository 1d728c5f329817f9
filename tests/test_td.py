"""Tests of rlcore.tabular.random_walk, rlcore.tabular.gridworlds and rlcore.tabular.td.

(a) the environments are the book's: true values of the random walk, the cliff's and the windy
    gridworld's transitions (against Gymnasium's CliffWalking-v1 and a breadth-first search), the
    maximization-bias MDP's rewards;
(b) exact math: every vectorized update against a naive per-step loop, and hand cases from the book;
(c) determinism: the same seed gives the same arrays;
(d) statistical smoke tests against section 1b of the published reproduction (fixed seeds; bounds
    explained inline);
(e) validation: bad input raises an error that says what was wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlcore.tabular.random_walk import RandomWalk

# ---------------------------------------------------------------------------------------------
# (a) The random walk
# ---------------------------------------------------------------------------------------------


def test_random_walk_layout():
    walk = RandomWalk()
    assert (walk.n_states, walk.start, walk.left_terminal, walk.right_terminal) == (5, 3, 0, 6)
    assert RandomWalk(19).start == 10
    assert RandomWalk(1).start == 1


def test_true_values_of_the_book_examples():
    np.testing.assert_allclose(RandomWalk(5).true_values(), np.arange(1, 6) / 6, atol=1e-12)
    np.testing.assert_allclose(RandomWalk(19, left_reward=-1.0).true_values(),
                               np.arange(-18, 19, 2) / 20, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 1.0])
def test_true_values_satisfy_bellman_equation(gamma):
    walk = RandomWalk(7, left_reward=-0.5, right_reward=2.0)
    v = np.concatenate([[0.0], walk.true_values(gamma), [0.0]])  # with the terminals
    for s in range(1, 8):
        r_left = walk.left_reward if s == 1 else 0.0
        r_right = walk.right_reward if s == 7 else 0.0
        expected = 0.5 * (r_left + gamma * v[s - 1]) + 0.5 * (r_right + gamma * v[s + 1])
        assert v[s] == pytest.approx(expected, abs=1e-12)


def test_true_values_match_monte_carlo_returns():
    """The average return from the start over many episodes estimates v(start)."""
    walk = RandomWalk(5, left_reward=-1.0, right_reward=1.0)
    rng = np.random.default_rng(0)
    gamma = 0.9
    returns = [gamma ** (r.size - 1) * r[-1] for _, r in walk.episodes(20_000, rng)]
    se = np.std(returns) / np.sqrt(len(returns))
    assert abs(np.mean(returns) - walk.true_values(gamma)[2]) < 5 * se


@pytest.mark.parametrize("n_states", [1, 5, 19])
def test_episode_is_a_valid_walk(n_states):
    walk = RandomWalk(n_states, left_reward=-1.0)
    rng = np.random.default_rng(n_states)
    for _ in range(300):
        states, rewards = walk.episode(rng)
        assert states.dtype.kind == "i" and rewards.dtype == float
        assert states.shape == (rewards.size + 1,) and rewards.size >= 1
        assert states[0] == walk.start
        assert np.all(np.abs(np.diff(states)) == 1), "each step moves one state"
        assert np.all((states[:-1] >= 1) & (states[:-1] <= n_states)), "terminal only at the end"
        assert states[-1] in (0, n_states + 1)
        assert np.all(rewards[:-1] == 0)
        assert rewards[-1] == (1.0 if states[-1] == n_states + 1 else -1.0)


def test_episode_statistics():
    """From C the walk ends on the right with probability 1/2, after 9 steps on average
    (gambler's ruin: k (n + 1 - k) = 3 * 3 from state k = 3 with terminals 0 and 6)."""
    walk = RandomWalk()
    eps = walk.episodes(20_000, np.random.default_rng(1))
    right = np.mean([s[-1] == 6 for s, _ in eps])
    lengths = np.array([r.size for _, r in eps])
    assert abs(right - 0.5) < 5 * np.sqrt(0.25 / 20_000)
    assert abs(lengths.mean() - 9.0) < 5 * lengths.std() / np.sqrt(lengths.size)
    assert lengths.max() > 16, "episodes longer than one chunk of steps occur"


def test_episode_visit_probabilities():
    """From C = 3, state A = 1 is visited before the right end with probability 3/5 (ruin)."""
    walk = RandomWalk()
    eps = walk.episodes(20_000, np.random.default_rng(2))
    visits_a = np.mean([1 in s for s, _ in eps])
    assert abs(visits_a - 0.6) < 5 * np.sqrt(0.24 / 20_000)


def test_episodes_are_reproducible_and_differ():
    walk = RandomWalk()
    a = walk.episodes(50, np.random.default_rng(3))
    b = walk.episodes(50, np.random.default_rng(3))
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert len({tuple(s) for s, _ in a}) > 10


def test_pad_keeps_every_episode():
    walk = RandomWalk()
    eps = walk.episodes(40, np.random.default_rng(4))
    states, rewards, lengths = RandomWalk.pad(eps)
    assert states.shape == (40, lengths.max() + 1) and rewards.shape == (40, lengths.max())
    for i, (s, r) in enumerate(eps):
        assert lengths[i] == r.size
        np.testing.assert_array_equal(states[i, : s.size], s)
        assert np.all(states[i, s.size :] == s[-1])
        np.testing.assert_array_equal(rewards[i, : r.size], r)
        assert np.all(rewards[i, r.size :] == 0)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "5", True])
def test_random_walk_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="n_states must be a positive integer"):
        RandomWalk(bad)


def test_random_walk_rejects_bad_rewards_and_gamma():
    with pytest.raises(ValueError, match="left_reward"):
        RandomWalk(5, left_reward=float("nan"))
    with pytest.raises(ValueError, match="gamma must be in"):
        RandomWalk().true_values(1.5)


def test_random_walk_needs_a_generator():
    with pytest.raises(TypeError, match="default_rng"):
        RandomWalk().episode(0)
