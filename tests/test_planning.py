"""Tests of rlcore.tabular.planning: the Dyna maze, the pieces of Dyna-Q, and its runs.

(a) the maze's dynamics cell by cell, its shortest path (14) and its episode interface;
(b) the pieces: the Q-learning update by hand, epsilon-greedy and the model's sampling
    frequencies (5 binomial SDs, fixed seeds);
(c) the exact mean length of a random episode against a Monte Carlo estimate;
(d) the vectorized runs: determinism, the first episode as a random walk, agreement with the
    one-run loop and the shape of Figure 8.2;
(e) bad input gives a clear error.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlcore.tabular.planning import (
    DOWN,
    LEFT,
    RIGHT,
    UP,
    DynaMaze,
    TabularModel,
    dyna_q,
    dyna_q_runs,
    epsilon_greedy_action,
    first_episode_below,
    q_learning_update,
)

Z = 5.0
MAZE = DynaMaze()


def assert_frequency(count: int, n: int, p: float, what: str) -> None:
    sd = np.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= Z * sd, f"{what}: {count} of {n}, expected {n * p:.1f} +- {Z * sd:.1f}"


# ---------------------------------------------------------------------------------------------
# (a) The maze
# ---------------------------------------------------------------------------------------------


def test_maze_layout():
    assert (MAZE.rows, MAZE.cols, MAZE.n_states, MAZE.n_actions) == (6, 9, 54, 4)
    assert MAZE.cell(MAZE.start) == (2, 0) and MAZE.cell(MAZE.goal) == (0, 8)
    assert MAZE.render().splitlines()[2] == "S . # . . . . # ."
    assert MAZE.shortest_path_length() == 14


def test_moves_walls_and_edges():
    s = MAZE.state
    assert MAZE.next_state[s(2, 0), RIGHT] == s(2, 1)
    assert MAZE.next_state[s(2, 1), RIGHT] == s(2, 1)  # (2, 2) is a wall
    assert MAZE.next_state[s(2, 0), LEFT] == s(2, 0)  # off the grid
    assert MAZE.next_state[s(0, 0), UP] == s(0, 0)
    assert MAZE.next_state[s(5, 5), DOWN] == s(5, 5)
    assert MAZE.next_state[s(3, 5), DOWN] == s(3, 5)  # (4, 5) is a wall
    assert MAZE.next_state[s(1, 8), UP] == MAZE.goal
    # The only reward: entering the goal, which only "up" from (1, 8) does ((0, 7) is a wall).
    assert MAZE.reward.sum() == 1.0 and MAZE.reward[s(1, 8), UP] == 1.0


def test_episode_interface():
    maze = DynaMaze()
    with pytest.raises(RuntimeError, match="call reset"):
        maze.step(UP)
    assert maze.reset() == maze.start
    # Under the wall of column 2, up past the wall at (4, 5), along row 3 and up the last column.
    path = [DOWN, DOWN, RIGHT, RIGHT, RIGHT, RIGHT, UP, RIGHT, RIGHT, RIGHT, RIGHT, UP, UP, UP]
    for a in path[:-1]:
        _, reward, terminated = maze.step(a)
        assert reward == 0.0 and not terminated
    next_state, reward, terminated = maze.step(path[-1])
    assert (next_state, reward, terminated) == (maze.goal, 1.0, True)
    assert len(path) == maze.shortest_path_length()
    with pytest.raises(RuntimeError, match="call reset"):
        maze.step(UP)


# ---------------------------------------------------------------------------------------------
# (b) The pieces
# ---------------------------------------------------------------------------------------------


def test_q_learning_update_by_hand():
    Q = np.zeros((3, 4))
    Q[2] = [0.0, 1.0, 3.0, 2.0]
    out = q_learning_update(Q, 0, 1, 1.0, 2, 0.5, 0.9)
    assert out is Q
    assert Q[0, 1] == pytest.approx(0.5 * (1 + 0.9 * 3))
    assert np.count_nonzero(Q[:2]) == 1


def test_epsilon_greedy_action_frequencies():
    rng = np.random.default_rng(0)
    n = 20_000
    tied = np.array([1.0, 0.0, 1.0, 1.0])
    counts = np.bincount([epsilon_greedy_action(tied, 0.0, rng) for _ in range(n)], minlength=4)
    assert counts[1] == 0
    for a in (0, 2, 3):
        assert_frequency(counts[a], n, 1 / 3, f"tied action {a}")
    q = np.array([0.0, 5.0, 1.0, 2.0])
    counts = np.bincount([epsilon_greedy_action(q, 0.1, rng) for _ in range(n)], minlength=4)
    assert_frequency(counts[1], n, 0.9 + 0.1 / 4, "greedy action")
    assert_frequency(counts[0], n, 0.1 / 4, "another action")


def test_model_keeps_last_outcome_and_samples_state_then_action():
    model = TabularModel()
    with pytest.raises(ValueError, match="empty"):
        model.sample(np.random.default_rng(0))
    for _ in range(30):
        model.add(0, 0, 0.0, 1)
    model.add(0, 1, 0.0, 9)
    model.add(5, 2, 0.0, 6)
    model.add(5, 2, 1.0, 4)  # the latest outcome replaces the first
    assert len(model) == 3 and (5, 2) in model and (5, 3) not in model
    rng = np.random.default_rng(1)
    draws = [model.sample(rng) for _ in range(20_000)]
    assert set(draws) == {(0, 0, 0.0, 1), (0, 1, 0.0, 9), (5, 2, 1.0, 4)}
    count = {d[:2]: 0 for d in draws}
    for d in draws:
        count[d[:2]] += 1
    assert_frequency(count[0, 0], 20_000, 0.25, "(0, 0)")
    assert_frequency(count[0, 1], 20_000, 0.25, "(0, 1)")
    assert_frequency(count[5, 2], 20_000, 0.5, "(5, 2)")


# ---------------------------------------------------------------------------------------------
# (c) The first episode is a random walk of known mean length
# ---------------------------------------------------------------------------------------------


def test_random_episode_length_matches_monte_carlo():
    mean, sd = MAZE.random_episode_length()
    assert mean == pytest.approx(868.73, abs=0.01) and sd == pytest.approx(789.24, abs=0.01)
    rng = np.random.default_rng(3)
    n = 3000
    state = np.full(n, MAZE.start)
    length = np.zeros(n, dtype=int)
    walking = np.ones(n, dtype=bool)
    while walking.any():  # all walks at once, uniformly random actions
        state[walking] = MAZE.next_state[state[walking], rng.integers(4, size=walking.sum())]
        length[walking] += 1
        walking &= state != MAZE.goal
    assert abs(length.mean() - mean) < Z * sd / np.sqrt(n)


# ---------------------------------------------------------------------------------------------
# (d) Runs
# ---------------------------------------------------------------------------------------------


def test_runs_are_deterministic_and_seeded():
    a = dyna_q_runs(MAZE, 5, 3, 20, seed=4)
    b = dyna_q_runs(MAZE, 5, 3, 20, seed=4)
    c = dyna_q_runs(MAZE, 5, 3, 20, seed=5)
    assert a.shape == (3, 20) and a.dtype.kind == "i"
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a >= MAZE.shortest_path_length())


def test_one_run_is_deterministic():
    steps = dyna_q(MAZE, 5, 3, np.random.default_rng(9))
    np.testing.assert_array_equal(steps, dyna_q(MAZE, 5, 3, np.random.default_rng(9)))
    assert steps.shape == (3,) and np.all(steps >= 14)


def test_first_episode_is_a_random_walk_for_every_n():
    mean, sd = MAZE.random_episode_length()
    for n in (0, 20):
        first = dyna_q_runs(MAZE, n, 1, 1000, seed=n)[0]
        assert abs(first.mean() - mean) < Z * sd / np.sqrt(first.size), (n, first.mean())


def test_one_run_loop_agrees_with_vectorized_runs():
    """Per-run mean steps of episodes 2-10 with n = 5: 60 one-run loops vs 300 vectorized runs,
    within 5 SE of the difference (the two draw their random numbers differently, so only their
    distributions can agree)."""
    loop = np.array([dyna_q(MAZE, 5, 10, rng)[1:].mean() for rng in np.random.default_rng(0).spawn(60)])
    batch = dyna_q_runs(MAZE, 5, 10, 300, seed=1)[1:].mean(axis=0)
    se = np.hypot(loop.std(ddof=1) / np.sqrt(loop.size), batch.std(ddof=1) / np.sqrt(batch.size))
    assert abs(loop.mean() - batch.mean()) < Z * se, (loop.mean(), batch.mean(), se)


def test_figure_8_2_shape():
    """More planning, faster learning: episode 2 takes about 680 / 150 / 39 steps for n = 0 / 5 / 50,
    and n = 50 is below 20 steps by episode 3."""
    second = {}
    for n in (0, 5, 50):
        steps = dyna_q_runs(MAZE, n, 3, 200, seed=100 + n)
        second[n] = steps[1].mean()
    assert second[50] < second[5] / 2 < second[0] / 4
    steps = dyna_q_runs(MAZE, 50, 3, 200, seed=7)
    assert steps[2].mean() < 20
    assert first_episode_below(steps.mean(axis=1)) == 3


def test_first_episode_below():
    assert first_episode_below(np.array([900.0, 40.0, 19.9, 17.0])) == 3
    assert first_episode_below(np.array([900.0, 40.0])) is None


# ---------------------------------------------------------------------------------------------
# (e) Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_input_messages():
    maze = DynaMaze()
    maze.reset()
    with pytest.raises(ValueError, match="an action must be an integer 0..3"):
        maze.step(4)
    with pytest.raises(ValueError, match="an action must be an integer"):
        maze.step(1.5)
    with pytest.raises(ValueError, match="n_planning must be a whole number >= 0"):
        dyna_q(maze, -1, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="epsilon must be in"):
        dyna_q_runs(maze, 0, 1, 2, epsilon=1.5)
    with pytest.raises(ValueError, match="is a wall"):
        DynaMaze(start=(1, 2))
    with pytest.raises(ValueError, match="outside"):
        DynaMaze(goal=(6, 0))
