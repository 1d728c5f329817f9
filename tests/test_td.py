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

from collections import deque

import gymnasium as gym
import numpy as np
import pytest

from rlcore.tabular import gridworlds as gw
from rlcore.tabular import td
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


# ---------------------------------------------------------------------------------------------
# (a) The grids and the maximization-bias MDP
# ---------------------------------------------------------------------------------------------

def shortest_path(mdp) -> int:
    """Breadth-first search over the deterministic transitions from the start to a terminal."""
    dist = {mdp.start: 0}
    queue = deque([mdp.start])
    while queue:
        s = queue.popleft()
        for a in range(mdp.n_valid[s]):
            nxt = int(mdp.next_state[s, a])
            if nxt not in dist:
                dist[nxt] = dist[s] + 1
                if mdp.terminal[nxt]:
                    return dist[nxt]
                queue.append(nxt)
    raise AssertionError("no path to a terminal state")


def test_cliff_layout_and_shortest_path():
    mdp = gw.cliff_walking()
    assert (mdp.n_states, mdp.n_actions, mdp.start, mdp.info["goal"]) == (48, 4, 36, 47)
    assert mdp.info["cliff"] == list(range(37, 47))
    assert np.flatnonzero(mdp.terminal).tolist() == [47]
    assert shortest_path(mdp) == 13  # up, 11 x right, down: the optimal return is -13
    # Stepping right from the start falls off the cliff: -100 and back to the start.
    assert mdp.next_state[36, gw.RIGHT] == 36 and mdp.reward[36, gw.RIGHT] == -100
    # Moving off the grid stays put and costs -1; the cliff is never a next state.
    assert mdp.next_state[36, gw.DOWN] == 36 and mdp.reward[36, gw.DOWN] == -1
    assert not np.isin(mdp.next_state, mdp.info["cliff"]).any()
    assert set(np.unique(mdp.reward)) == {-1.0, -100.0} and not mdp.stochastic_rewards


def test_cliff_matches_gymnasium_cliffwalking_v1():
    """rlcore's table equals Gymnasium's transition table P for every state the agent can be in."""
    env = gym.make("CliffWalking-v1")
    P = env.unwrapped.P
    mdp = gw.cliff_walking()
    reachable = [s for s in range(48) if s not in mdp.info["cliff"] and s != 47]
    for s in reachable:
        for a in range(4):
            ((prob, nxt, reward, terminated),) = P[s][a]  # deterministic: one outcome
            assert prob == 1.0
            ours = mdp.next_state[s, a]
            assert (nxt, reward, terminated) == (ours, mdp.reward[s, a], mdp.terminal[ours])
    assert env.spec.max_episode_steps is None, "CliffWalking-v1 has no time limit, like the book"
    env.close()


def test_cliff_lockstep_with_gymnasium():
    """The same random actions in Gymnasium's env and a one-run VecEnv give the same observations,
    rewards and terminations (VecEnv resets in the same step, so compare the next start)."""
    env = gym.make("CliffWalking-v1")
    obs, _ = env.reset(seed=0)
    venv = gw.VecEnv(gw.cliff_walking(), 1, np.random.default_rng(0))
    assert venv.reset()[0] == obs
    rng = np.random.default_rng(1)
    finished = 0
    for _ in range(20_000):
        a = int(rng.integers(4)) if rng.random() < 0.5 else gw.RIGHT  # drift right so episodes end
        obs, reward, terminated, truncated, _ = env.step(a)
        s, r, term = venv.step(np.array([a]))
        assert (r[0], bool(term[0]), truncated) == (reward, terminated, False)
        if terminated:
            finished += 1
            obs, _ = env.reset()
        assert s[0] == obs
    assert finished > 5


def test_windy_gridworld():
    mdp = gw.windy_gridworld()
    assert (mdp.n_states, mdp.start, mdp.info["goal"]) == (70, 30, 37)
    assert shortest_path(mdp) == 15
    # From (3, 6), wind 2: moving right lands two rows up in column 7.
    assert mdp.position(mdp.next_state[3 * 10 + 6, gw.RIGHT]) == (1, 7)
    # The wind of the column moved *from*: from (3, 2) (no wind) right to (3, 3), no push yet.
    assert mdp.position(mdp.next_state[3 * 10 + 2, gw.RIGHT]) == (3, 3)
    # The wind cannot push off the top: from (0, 7) up stays in row 0.
    assert mdp.position(mdp.next_state[7, gw.UP]) == (0, 7)
    assert np.all(mdp.reward == -1)


def test_maximization_bias_mdp():
    mdp = gw.maximization_bias()
    A, B = gw.MAXBIAS_A, gw.MAXBIAS_B
    assert mdp.start == A and mdp.n_actions == 10 and mdp.masked
    assert mdp.next_state[A, gw.MAXBIAS_LEFT] == B and mdp.next_state[A, gw.MAXBIAS_RIGHT] == gw.MAXBIAS_RIGHT_END
    assert np.all(mdp.terminal[mdp.next_state[B]])
    assert mdp.valid([A, B]).sum(axis=1).tolist() == [2, 10]
    # Rewards in B are N(-0.1, 1); in A they are 0.
    env = gw.VecEnv(mdp, 20_000, np.random.default_rng(2))
    env.reset()
    _, r_a, term_a = env.step(np.zeros(20_000, dtype=int))  # all go left: reward 0, now in B
    assert np.all(r_a == 0) and not term_a.any()
    _, r_b, term_b = env.step(np.full(20_000, 7))
    assert term_b.all()
    assert abs(r_b.mean() + 0.1) < 5 / np.sqrt(20_000) and abs(r_b.std() - 1) < 0.03


# ---------------------------------------------------------------------------------------------
# The vectorized environment
# ---------------------------------------------------------------------------------------------


def test_vecenv_autoreset_and_records_match_a_single_run_loop():
    mdp = gw.cliff_walking()
    n_runs = 6
    env = gw.VecEnv(mdp, n_runs, np.random.default_rng(3))
    states = env.reset()
    rng = np.random.default_rng(4)
    # The same actions replayed run by run with the tables, by hand.
    actions_log = []
    for _ in range(3000):
        a = np.where(rng.random(n_runs) < 0.6, gw.RIGHT, rng.integers(4, size=n_runs))
        actions_log.append(a)
        states, _, _ = env.step(a)
    actions_log = np.array(actions_log)  # [T, R]
    for r in range(n_runs):
        s, ret, length, first = mdp.start, 0.0, 0, None
        returns, lengths, firsts = [], [], []
        for a in actions_log[:, r]:
            first = a if length == 0 else first
            ret += mdp.reward[s, a]
            length += 1
            s = mdp.next_state[s, a]
            if mdp.terminal[s]:
                returns.append(ret), lengths.append(length), firsts.append(first)
                s, ret, length = mdp.start, 0.0, 0
        assert s == states[r] and env.episodes_done[r] == len(returns)
        n = len(returns)
        np.testing.assert_array_equal(env._returns[r, :n], returns)
        np.testing.assert_array_equal(env._lengths[r, :n], lengths)
        np.testing.assert_array_equal(env._firsts[r, :n], firsts)
    n = int(env.episodes_done.min())
    assert env.returns().shape == (n_runs, n) and env.lengths(n).shape == (n_runs, n)
    with pytest.raises(ValueError, match="has finished only"):
        env.returns(n + 1)
    env.reset()
    assert env.episodes_done.sum() == 0 and env.total_steps == 0


def test_vecenv_rejects_bad_use():
    env = gw.VecEnv(gw.cliff_walking(), 3, np.random.default_rng(0), max_total_steps=5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, dtype=int))
    env.reset()
    with pytest.raises(ValueError, match=r"expected \(3,\), one action per run"):
        env.step(np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="has actions 0..3"):
        env.step(np.array([0, 4, 0]))
    with pytest.raises(ValueError, match="integer actions"):
        env.step(np.array([0.5, 1.0, 0.0]))
    env.step(np.array([0.0, 1.0, 2.0]))  # whole floats are accepted
    for _ in range(4):
        env.step(np.zeros(3, dtype=int))  # up, up, ...: never reaches the goal
    with pytest.raises(RuntimeError, match="stepped 5 times"):
        env.step(np.zeros(3, dtype=int))
    masked = gw.VecEnv(gw.maximization_bias(), 2, np.random.default_rng(0))
    masked.reset()
    with pytest.raises(ValueError, match="state 2, which has actions 0..1"):
        masked.step(np.array([0, 5]))
    with pytest.raises(TypeError, match="Generator"):
        gw.VecEnv(gw.cliff_walking(), 3, 0)
    with pytest.raises(ValueError, match="n_runs"):
        gw.VecEnv(gw.cliff_walking(), 0, np.random.default_rng(0))


def test_greedy_path_lengths():
    mdp = gw.cliff_walking()
    Q = np.zeros((3, 48, 4))
    # Run 0: the optimal path (up, right along row 2, down at the end).
    Q[0, 36, gw.UP] = 1
    Q[0, 24:35, gw.RIGHT] = 1
    Q[0, 35, gw.DOWN] = 1
    # Run 1: right from the start, into the cliff and back: a loop.
    Q[1, :, gw.RIGHT] = 1
    # Run 2: all zeros, ties to action 0 (up): stuck against the top wall.
    np.testing.assert_array_equal(gw.greedy_path_lengths(mdp, Q), [13, -1, -1])
    with pytest.raises(ValueError, match="shape"):
        gw.greedy_path_lengths(mdp, Q[0])


# ---------------------------------------------------------------------------------------------
# (b) Prediction: exact math
# ---------------------------------------------------------------------------------------------

WALK = RandomWalk()


def initial_values(n_runs=None):
    V = np.array([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0])
    return V if n_runs is None else np.tile(V, (n_runs, 1))


def test_td0_first_episode_of_example_6_2():
    """The book: after the first episode, which ended on the left, only V(A) changed, by
    alpha * (0 + 0 - 0.5) = -0.05: every other TD error was 0.5 - 0.5 = 0."""
    states, rewards = np.array([3, 2, 1, 2, 1, 0]), np.zeros(5)
    V = td.td0_episode(initial_values(), states, rewards, 0.1)
    np.testing.assert_allclose(V, [0, 0.45, 0.5, 0.5, 0.5, 0.5, 0], atol=1e-15)
    # Constant-alpha MC moves every visited state towards the return 0 (A and B twice).
    V = td.mc_episode(initial_values(), states, rewards, 0.1)
    np.testing.assert_allclose(V, [0, 0.405, 0.405, 0.45, 0.5, 0.5, 0], atol=1e-15)


def test_td0_online_updates_see_earlier_ones():
    """States 1, 2, 1, 0: the target of the third step uses V(2) after its update."""
    V0 = np.array([0.0, 0.2, 0.6, 0.0])
    V = td.td0_episode(V0, [1, 2, 1, 0], [0.0, 0.0, 1.0], 0.5, gamma=0.9)
    v = V0.copy()
    v[1] += 0.5 * (0.9 * v[2] - v[1])
    v[2] += 0.5 * (0.9 * v[1] - v[2])
    v[1] += 0.5 * (1.0 - v[1])
    np.testing.assert_allclose(V, v, atol=1e-15)
    np.testing.assert_array_equal(V0, [0.0, 0.2, 0.6, 0.0])  # input untouched


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_vectorized_updates_equal_the_one_episode_versions(gamma):
    rng = np.random.default_rng(5)
    walk = RandomWalk(5, left_reward=-1.0)
    eps = walk.episodes(30, rng)
    states, rewards, lengths = RandomWalk.pad(eps)
    V = rng.uniform(-1, 1, size=(30, 7))
    V[:, [0, -1]] = 0
    for batch, single in ((td.td0_episodes, td.td0_episode), (td.mc_episodes, td.mc_episode)):
        got = batch(V, states, rewards, lengths, 0.3, gamma)
        for i, (s, r) in enumerate(eps):
            np.testing.assert_allclose(got[i], single(V[i], s, r, 0.3, gamma), atol=1e-13)


def test_padded_episodes_have_the_walk_distribution():
    states, rewards, lengths = WALK.padded_episodes(20_000, np.random.default_rng(6))
    assert states.shape == (20_000, lengths.max() + 1)
    rows = np.arange(20_000)
    end = states[rows, lengths]
    assert np.all((end == 0) | (end == 6)) and np.all(states[:, 0] == 3)
    assert np.all(rewards.sum(axis=1) == (end == 6))
    inside = np.arange(states.shape[1]) < lengths[:, None]  # [N, L + 1]: S_0..S_{L-1}
    assert np.all((states[inside] >= 1) & (states[inside] <= 5))
    assert abs(lengths.mean() - 9.0) < 5 * lengths.std() / np.sqrt(20_000)
    assert abs((end == 6).mean() - 0.5) < 5 * np.sqrt(0.25 / 20_000)


class _ReplayWalk(RandomWalk):
    """A walk that hands out pre-drawn episodes: padded batches to prediction_curves, and the same
    episodes one by one, run by run, to rms_curve."""

    def __init__(self, batches):
        super().__init__(5)
        self.batches = list(batches)
        self.singles = [
            (b[0][r, : b[2][r] + 1], b[1][r, : b[2][r]]) for r in range(batches[0][0].shape[0]) for b in batches
        ]

    def padded_episodes(self, n_episodes, rng):
        return self.batches.pop(0)

    def episode(self, rng):
        return self.singles.pop(0)


@pytest.mark.parametrize("method, update", [("td", td.td0_episode), ("mc", td.mc_episode)])
def test_prediction_curves_equal_the_per_run_loop(method, update):
    rng = np.random.default_rng(7)
    batches = [WALK.padded_episodes(8, rng) for _ in range(12)]
    vec = td.prediction_curves(_ReplayWalk(batches), method, 0.1, 8, 12, rng)
    loop = td.rms_curve(update, _ReplayWalk(batches), 0.1, 8, 12, rng)
    np.testing.assert_allclose(vec, loop, atol=1e-13)
    assert vec[0, 0] == pytest.approx(np.sqrt(np.mean((0.5 - np.arange(1, 6) / 6) ** 2)))


def test_rms_error():
    assert td.rms_error(initial_values(), WALK.true_values()) == pytest.approx(0.2357, abs=1e-4)
    assert td.rms_error(np.r_[0, WALK.true_values(), 0], WALK.true_values()) == 0.0
    with pytest.raises(ValueError, match="2 terminals"):
        td.rms_error(np.zeros(5), WALK.true_values())


@pytest.mark.parametrize("method", ["td", "mc"])
def test_batch_values_are_the_limit_of_batch_sweeps(method):
    rng = np.random.default_rng(8)
    eps = WALK.episodes(4, rng)
    states, rewards, lengths = RandomWalk.pad(eps)
    exact = td.batch_values(states[None], rewards[None], lengths[None], 5, method)[0]
    V = initial_values()
    for _ in range(4000):
        V = td.batch_sweep(V, eps, method, 0.02)
    visited = np.isin(np.arange(7), np.concatenate([s[:-1] for s, _ in eps]))
    np.testing.assert_allclose(V[visited], exact[visited], atol=1e-8)
    np.testing.assert_allclose(exact[~visited], np.where(np.isin(np.arange(7), [0, 6]), 0.0, 0.5)[~visited])


def test_batch_values_by_hand():
    """Two episodes, C -> D -> right end (+1) and C -> B -> A -> left end (0). Batch MC: V(C) is the
    average of its returns, (1 + 0) / 2; V(D) = 1, V(B) = V(A) = 0. Batch TD: V(C) is the model's
    value 1/2 V(D) + 1/2 V(B) = 1/2 as well. E was never visited and keeps its initial 0.5."""
    eps = [(np.array([3, 4, 6]), np.array([0.0, 1.0])), (np.array([3, 2, 1, 0]), np.zeros(3))]
    states, rewards, lengths = RandomWalk.pad(eps)
    mc = td.batch_values(states[None], rewards[None], lengths[None], 5, "mc")[0]
    tdv = td.batch_values(states[None], rewards[None], lengths[None], 5, "td")[0]
    np.testing.assert_allclose(mc, [0, 0, 0, 0.5, 1, 0.5, 0], atol=1e-12)
    np.testing.assert_allclose(tdv, [0, 0, 0, 0.5, 1, 0.5, 0], atol=1e-12)
    # A third episode C -> B -> C -> D -> right end (+1). Every-visit MC averages each state's
    # returns: C has 1, 0, 1, 1 -> 3/4; B has 0, 1 -> 1/2. TD solves the model: C went to D twice
    # and to B twice, B to A once and to C once, so V(C) = 1/2 * 1 + 1/2 V(B), V(B) = 1/2 * 0 +
    # 1/2 V(C): V(C) = 2/3, V(B) = 1/3. The two batch answers now differ.
    eps.append((np.array([3, 2, 3, 4, 6]), np.array([0.0, 0.0, 0.0, 1.0])))
    states, rewards, lengths = RandomWalk.pad(eps)
    mc = td.batch_values(states[None], rewards[None], lengths[None], 5, "mc")[0]
    tdv = td.batch_values(states[None], rewards[None], lengths[None], 5, "td")[0]
    np.testing.assert_allclose(mc, [0, 0, 0.5, 0.75, 1, 0.5, 0], atol=1e-12)
    np.testing.assert_allclose(tdv, [0, 0, 1 / 3, 2 / 3, 1, 0.5, 0], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# (b) Control: exact math
# ---------------------------------------------------------------------------------------------


def test_epsilon_greedy_probs_by_hand():
    q = np.array([[1.0, 3.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0], [5.0, 1.0, 2.0, 2.0]])
    pi = td.epsilon_greedy_probs(q, 0.2)
    np.testing.assert_allclose(pi, [[0.05, 0.45, 0.45, 0.05], [0.25] * 4, [0.85, 0.05, 0.05, 0.05]])
    valid = np.array([[True, True, False, False]] * 3)
    pi = td.epsilon_greedy_probs(q, 0.2, valid)
    np.testing.assert_allclose(pi, [[0.1, 0.9, 0, 0], [0.5, 0.5, 0, 0], [0.9, 0.1, 0, 0]])


def test_epsilon_greedy_frequencies_with_a_mask():
    rng = np.random.default_rng(9)
    n = 40_000
    q = np.tile([0.0, 1.0, 9.0, 9.0], (n, 1))
    valid = np.tile([True, True, False, False], (n, 1))
    a = td.epsilon_greedy(q, 0.2, rng, valid)
    counts = np.bincount(a, minlength=4) / n
    np.testing.assert_allclose(counts, [0.1, 0.9, 0, 0], atol=5 * np.sqrt(0.09 / n))


def random_transitions(seed, n=40, n_actions=4):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=n), rng.normal(size=(n, n_actions)), rng.integers(n_actions, size=n),
            rng.random(n) < 0.3)


@pytest.mark.parametrize("seed", range(3))
def test_targets_match_naive_loops(seed):
    rewards, next_q, next_actions, terminated = random_transitions(seed)
    next_q[0] = [1.0, 1.0, -2.0, 0.5]  # a tie at the top: Expected Sarsa shares the greedy mass
    gamma, eps = 0.9, 0.2
    sarsa = td.sarsa_target(rewards, next_q, next_actions, terminated, gamma)
    qlearn = td.q_learning_target(rewards, next_q, terminated, gamma)
    expected = td.expected_sarsa_target(rewards, next_q, eps, terminated, gamma)
    for i in range(rewards.size):
        future = 0.0 if terminated[i] else 1.0
        assert sarsa[i] == pytest.approx(rewards[i] + gamma * future * next_q[i, next_actions[i]])
        assert qlearn[i] == pytest.approx(rewards[i] + gamma * future * max(next_q[i]))
        best = [a for a in range(4) if next_q[i, a] == max(next_q[i])]
        pi = [eps / 4 + ((1 - eps) / len(best) if a in best else 0.0) for a in range(4)]
        assert expected[i] == pytest.approx(rewards[i] + gamma * future * sum(p * v for p, v in zip(pi, next_q[i])))


def test_expected_sarsa_is_sarsa_in_expectation_and_q_learning_when_greedy():
    rewards, next_q, _, terminated = random_transitions(3)
    np.testing.assert_allclose(td.expected_sarsa_target(rewards, next_q, 0.0, terminated, 1.0),
                               td.q_learning_target(rewards, next_q, terminated, 1.0))
    uniform = td.expected_sarsa_target(rewards, next_q, 1.0, terminated, 1.0)
    np.testing.assert_allclose(uniform, rewards + np.where(terminated, 0, next_q.mean(axis=1)))


def test_double_q_update_matches_a_naive_loop():
    rng = np.random.default_rng(10)
    n, S, A = 50, 5, 3
    Q1, Q2 = rng.normal(size=(n, S, A)), rng.normal(size=(n, S, A))
    Q1[:5, 2] = 0.0  # ties in Q1 at state 2 for the first runs
    Q2[5:10, 2] = 0.0
    states, actions = rng.integers(S, size=n), rng.integers(A, size=n)
    next_states = np.where(np.arange(n) < 10, 2, rng.integers(S, size=n))
    rewards, terminated = rng.normal(size=n), rng.random(n) < 0.2
    seed_state = np.random.default_rng(11)
    got1, got2 = td.double_q_update(Q1, Q2, states, actions, rewards, next_states, terminated, 0.1, 0.9, seed_state)
    # The same draws, in the same order: the coins [n], then one key per (run, action) for the ties.
    draws = np.random.default_rng(11)
    coins, keys = draws.random(n), draws.random((n, A))
    want1, want2 = Q1.copy(), Q2.copy()
    for i in range(n):
        learner, critic = (want1, want2) if coins[i] < 0.5 else (want2, want1)
        picks = learner[i, next_states[i]]
        best = max((a for a in range(A) if picks[a] == picks.max()), key=lambda a: keys[i, a])
        target = rewards[i] + (0.0 if terminated[i] else 0.9 * critic[i, next_states[i], best])
        learner[i, states[i], actions[i]] += 0.1 * (target - learner[i, states[i], actions[i]])
    np.testing.assert_allclose(got1, want1, atol=1e-14)
    np.testing.assert_allclose(got2, want2, atol=1e-14)
    assert not np.shares_memory(got1, Q1)


# ---------------------------------------------------------------------------------------------
# (c) Determinism and (d) statistical smoke tests against section 1b
# ---------------------------------------------------------------------------------------------


def test_run_control_is_reproducible():
    a = td.run_control(gw.cliff_walking(), "q_learning", n_runs=5, n_episodes=30, alpha=0.5, epsilon=0.1, seed=3)
    b = td.run_control(gw.cliff_walking(), "q_learning", n_runs=5, n_episodes=30, alpha=0.5, epsilon=0.1, seed=3)
    c = td.run_control(gw.cliff_walking(), "q_learning", n_runs=5, n_episodes=30, alpha=0.5, epsilon=0.1, seed=4)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.Q, b.Q)
    assert not np.array_equal(a.returns, c.returns)


def test_random_walk_rms_at_episode_100():
    """Section 1b: TD(0) alpha = 0.05 reaches RMS 0.0350 after 100 episodes (SD of a 100-run mean
    0.0016, so a per-run SD of 0.016); 1000 runs put the mean within 5 SE = 0.0025."""
    errors = td.prediction_curves(WALK, "td", 0.05, 1000, 100, np.random.default_rng(12))
    assert errors[:, 0] == pytest.approx(0.2357, abs=1e-4)
    assert abs(errors[:, 100].mean() - 0.0350) < 5 * errors[:, 100].std() / np.sqrt(1000) + 0.001


def test_cliff_sarsa_vs_q_learning():
    """Section 1b, alpha = 0.5: Sarsa -27.8 and Q-learning -49.9 over episodes 101-500 (per-run SD
    3.8 and 3.4); 50 runs each: 5 SE is about 2.7; the gap +22 must show."""
    mdp = gw.cliff_walking()
    means = {}
    for method in ("sarsa", "q_learning"):
        run = td.run_control(mdp, method, n_runs=50, n_episodes=500, alpha=0.5, epsilon=0.1, seed=13)
        means[method] = run.returns[:, 100:].mean(axis=1)  # [R]
    assert abs(means["sarsa"].mean() + 27.8) < 5 * 3.8 / np.sqrt(50)
    assert abs(means["q_learning"].mean() + 49.9) < 5 * 3.4 / np.sqrt(50)
    assert 15 < means["sarsa"].mean() - means["q_learning"].mean() < 29


def test_maximization_bias_shape():
    """Q-learning goes left far more than the 5% of the epsilon-greedy optimum early on (about 90%
    around episode 20 with 10 actions in B); Double Q-learning hardly more than the first episodes'
    coin flip, and both approach 5% later."""
    mdp = gw.maximization_bias()
    left = {}
    for method in ("q_learning", "double_q"):
        run = td.run_control(mdp, method, n_runs=2000, n_episodes=100, alpha=0.1, epsilon=0.1, gamma=1.0, seed=14)
        left[method] = (run.first_actions == gw.MAXBIAS_LEFT).mean(axis=0)  # [E]
    assert abs(left["q_learning"][0] - 0.5) < 0.06 and abs(left["double_q"][0] - 0.5) < 0.06
    assert left["q_learning"][15:25].mean() > 0.85
    assert left["double_q"][15:25].mean() < 0.35
    assert left["double_q"][80:].mean() < 0.15


def test_windy_gridworld_170_episodes_take_about_8000_steps():
    """Section 1b: 8224 steps for 170 episodes (SD of one run 235); 200 runs: 5 SE = 83."""
    run = td.run_control(gw.windy_gridworld(), "sarsa", n_runs=200, n_episodes=170, alpha=0.5, epsilon=0.1, seed=15)
    steps = run.lengths.sum(axis=1)
    assert abs(steps.mean() - 8224) < 5 * 235 / np.sqrt(200)


# ---------------------------------------------------------------------------------------------
# (e) Validation
# ---------------------------------------------------------------------------------------------


def test_td_rejects_bad_input():
    V = initial_values()
    with pytest.raises(ValueError, match="alpha"):
        td.td0_episode(V, [3, 4, 6], [0.0, 1.0], 0.0)
    with pytest.raises(ValueError, match="gamma"):
        td.mc_episode(V, [3, 4, 6], [0.0, 1.0], 0.1, gamma=2.0)
    with pytest.raises(ValueError, match=r"states \[L \+ 1\] and rewards \[L\]"):
        td.td0_episode(V, [3, 4, 6], [0.0, 0.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="indices into V"):
        td.td0_episode(V, [3, 4, 7], [0.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="method"):
        td.prediction_curves(WALK, "sarsa", 0.1, 2, 2, np.random.default_rng(0))
    env = gw.VecEnv(gw.maximization_bias(), 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="method must be one of"):
        td.td_control(env, "sarsa_max", 1, 0.1, 0.1, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="every action to exist"):
        td.td_control(env, "expected_sarsa", 1, 0.1, 0.1, 1.0, np.random.default_rng(0))
