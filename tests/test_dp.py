"""Tests of rlcore.tabular.mdp and rlcore.tabular.dp.

(a) exact math: the vectorized backups and sweeps against naive Python loops over s, a, s';
(b) analytic answers: geometric series, the 4x4 gridworld, the fair gambler (v(s) = s / goal);
(c) the algorithms agree with each other: iterative vs exact evaluation, synchronous vs in place,
    policy iteration vs value iteration, on random MDPs;
(d) the book's examples: Figures 3.2, 3.5, 4.1, 4.2 (Jack: 4 improvements, 318/272/79/8 states
    changed) and 4.3, and FrozenLake-v1 through its transition table;
(e) the container refuses bad input with a message that says what is wrong;
(f) determinism: random MDPs depend on the generator only; nothing else draws random numbers.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlcore.tabular import dp, mdp as mdps
from rlcore.tabular.mdp import FiniteMDP


def random_case(seed: int, **kwargs) -> FiniteMDP:
    spec = dict(n_states=7, n_actions=3, gamma=0.9, n_terminal=1, p_forbidden=0.3)
    spec.update(kwargs)
    return mdps.random_mdp(rng=np.random.default_rng(seed), **spec)


def random_pi(mdp: FiniteMDP, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).random((mdp.n_states, mdp.n_actions)) * mdp.allowed
    return w / w.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# (a) Exact math against naive loops
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_q_from_v_matches_loop(seed):
    mdp = random_case(seed)
    v = np.random.default_rng(seed + 100).normal(size=mdp.n_states)
    q_loop = np.zeros((mdp.n_states, mdp.n_actions))
    for s in range(mdp.n_states):
        for a in range(mdp.n_actions):
            q_loop[s, a] = mdp.R[s, a] + mdp.gamma * sum(mdp.P[s, a, t] * v[t] for t in range(mdp.n_states))
    np.testing.assert_allclose(dp.q_from_v(mdp, v), q_loop, rtol=0, atol=1e-12)


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_evaluation_sweep_matches_loop(seed, in_place):
    mdp, pi = random_case(seed), random_pi(random_case(seed), seed)
    v = np.random.default_rng(seed).normal(size=mdp.n_states)
    v_before = v.copy()
    got = dp.evaluation_sweep(mdp, pi, v, in_place=in_place)
    old, new = v.copy(), v.copy()
    for s in range(mdp.n_states):
        source = new if in_place else old
        new[s] = sum(pi[s, a] * (mdp.R[s, a] + mdp.gamma * sum(mdp.P[s, a, t] * source[t] for t in range(mdp.n_states)))
                     for a in range(mdp.n_actions))
    np.testing.assert_allclose(got, new, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(v, v_before)  # the input is not modified


# ---------------------------------------------------------------------------------------------
# (b) Analytic answers
# ---------------------------------------------------------------------------------------------


def test_single_state_is_a_geometric_series():
    one = FiniteMDP.build(np.ones((1, 1, 1)), [[2.0]], 0.75)
    pi = np.ones((1, 1))
    assert dp.policy_evaluation_exact(one, pi)[0] == pytest.approx(8.0, abs=1e-12)
    assert dp.policy_evaluation(one, pi, 1e-12)[0] == pytest.approx(8.0, abs=1e-9)
    assert dp.policy_evaluation(one, pi, 0.0, False, 2)[0] == pytest.approx(2.0 + 0.75 * 2.0)


def test_fair_gamblers_values_are_linear():
    # With p_h = 0.5 every policy that bets is a martingale: v(s) = s / goal exactly.
    mdp = mdps.gamblers_problem(0.5, goal=20)
    _, v = dp.value_iteration(mdp, 1e-13)
    np.testing.assert_allclose(v[1:-1], np.arange(1, 20) / 20, atol=1e-9)


def test_gridworld_4x4_random_policy_is_exact():
    g4 = mdps.gridworld_4x4()
    v = dp.policy_evaluation_exact(g4, dp.uniform_policy(g4)).reshape(4, 4)
    want = [[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14], [-22, -20, -14, 0]]
    np.testing.assert_allclose(v, want, atol=1e-9)


def test_gridworld_4x4_first_sweeps_are_figure_4_1():
    g4 = mdps.gridworld_4x4()
    pi = dp.uniform_policy(g4)
    rows = {1: [0, -1, -1, -1], 2: [0, -1.75, -2, -2], 3: [0, -2.4375, -2.9375, -3]}
    for k, row in rows.items():
        np.testing.assert_allclose(dp.policy_evaluation(g4, pi, 0.0, False, k)[:4], row, atol=1e-12)
    np.testing.assert_allclose(dp.policy_evaluation(g4, pi, 0.0, False, 10)[:4], [0, -6.14, -8.35, -8.97], atol=5e-3)
    # In place, state 2 already sees the new value of state 1 in the first sweep: -1 - 0.25.
    np.testing.assert_allclose(dp.policy_evaluation(g4, pi, 0.0, True, 1)[:4], [0, -1, -1.25, -1.3125], atol=1e-12)


def test_sweeps_to_converge_on_the_4x4_grid():
    g4 = mdps.gridworld_4x4()
    pi = dp.uniform_policy(g4)
    assert dp.iterative_policy_evaluation(g4, pi, 1e-4, False, None)[1] == 173
    assert dp.iterative_policy_evaluation(g4, pi, 1e-4, True, None)[1] == 114


# ---------------------------------------------------------------------------------------------
# (c) The algorithms agree with each other
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_iterative_and_exact_evaluation_agree(seed):
    mdp = random_case(seed, gamma=[0.5, 0.9, 0.99][seed % 3])
    pi = random_pi(mdp, seed)
    exact = dp.policy_evaluation_exact(mdp, pi)
    for in_place in (False, True):
        np.testing.assert_allclose(dp.policy_evaluation(mdp, pi, 1e-12, in_place), exact, atol=1e-8)
    np.testing.assert_array_equal(exact[mdp.terminal], 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_policy_iteration_and_value_iteration_agree(seed):
    mdp = random_case(seed, n_states=12, n_actions=4, branching=4)
    pi_pi, v_pi = dp.policy_iteration(mdp, 1e-12)
    pi_vi, v_vi = dp.value_iteration(mdp, 1e-12)
    np.testing.assert_allclose(v_pi, v_vi, atol=1e-8)
    for pi in (pi_pi, pi_vi):
        np.testing.assert_allclose(dp.policy_evaluation_exact(mdp, pi), v_pi, atol=1e-8)
        assert not np.any(pi[~mdp.allowed]), "a forbidden action was chosen"
    # Bellman optimality: no allowed action beats v*.
    q = np.where(mdp.allowed, dp.q_from_v(mdp, v_vi), -np.inf)
    np.testing.assert_allclose(q.max(axis=1), v_vi, atol=1e-8)


def test_policy_iteration_improves_monotonically_and_ends_stable():
    mdp = random_case(11, n_states=15, n_actions=4)
    values = [v for _, v, _ in dp.policy_iteration_steps(mdp, 1e-12)]
    for before, after in zip(values, values[1:]):
        assert np.all(after >= before - 1e-9)
    pi, v = dp.policy_iteration(mdp, 1e-12)
    np.testing.assert_array_equal(dp.greedy_actions(mdp, v, previous=pi.argmax(axis=1)), pi.argmax(axis=1))


def test_greedy_actions_keep_a_tied_previous_action():
    g4 = mdps.gridworld_4x4()
    v = dp.policy_evaluation_exact(g4, dp.uniform_policy(g4))
    lowest = dp.greedy_actions(g4, v)
    # State 5 ((1, 1)) has two best moves, up and left (towards the corner 0).
    assert lowest[5] == 0
    assert dp.greedy_actions(g4, v, previous=np.full(16, 3))[5] == 3
    assert dp.greedy_actions(g4, v, previous=np.full(16, 1))[5] == 0  # down is not tied: not kept


def test_value_iteration_steps_decrease_the_change():
    mdp = mdps.gridworld_5x5()
    sweeps = list(dp.value_iteration_steps(mdp, 1e-10))
    changes = [np.abs(b - a).max() for a, b in zip(sweeps, sweeps[1:])]
    assert changes[-1] < 1e-10 and all(c2 <= c1 * mdp.gamma + 1e-12 for c1, c2 in zip(changes, changes[1:]))


# ---------------------------------------------------------------------------------------------
# (d) The book's examples and FrozenLake
# ---------------------------------------------------------------------------------------------


def test_gridworld_5x5_figures_3_2_and_3_5():
    g5 = mdps.gridworld_5x5()
    v = dp.policy_evaluation_exact(g5, dp.uniform_policy(g5)).reshape(5, 5)
    assert v[0, 0] == pytest.approx(3.3090, abs=1e-4) and v[0, 1] == pytest.approx(8.7893, abs=1e-4)
    assert v[4, 4] == pytest.approx(-1.9752, abs=1e-4)
    _, v_star = dp.value_iteration(g5, 1e-12)
    assert v_star[1] == pytest.approx(24.4194, abs=1e-4) and v_star[24] == pytest.approx(11.6797, abs=1e-4)


def test_gambler_figure_4_3():
    mdp = mdps.gamblers_problem(0.4)
    pi, v = dp.value_iteration(mdp, 1e-12)
    assert v[25] == pytest.approx(0.16, abs=1e-9) and v[50] == pytest.approx(0.4, abs=1e-9)
    assert v[75] == pytest.approx(0.64, abs=1e-9)
    stakes = pi.argmax(axis=1)
    assert stakes[50] == 50 and stakes[25] == 25 and stakes[75] == 25
    # The smallest of the tied stakes gives the book's sawtooth.
    np.testing.assert_array_equal(stakes[1:26], list(range(1, 13)) + list(range(12, 0, -1)) + [25])
    assert np.all(pi[~mdp.allowed] == 0)


def test_gambler_actions():
    mdp = mdps.gamblers_problem(0.4, goal=10)
    assert mdp.allowed[3].tolist() == [False, True, True, True, False, False]  # stakes 1..3
    assert mdp.allowed[8].tolist() == [False, True, True, False, False, False]  # stakes 1..2
    assert mdp.R[8, 2] == pytest.approx(0.4) and mdp.P[8, 2, 10] == pytest.approx(0.4)
    assert mdp.P[8, 2, 6] == pytest.approx(0.6)


def test_jacks_car_rental_figure_4_2():
    mdp = mdps.jacks_car_rental()
    assert mdp.P.shape == (441, 11, 441)
    np.testing.assert_allclose(mdp.P.sum(axis=2), 1.0, atol=1e-12)
    still = dp.deterministic_policy(mdp, np.full(441, 5))
    steps = list(dp.policy_iteration_steps(mdp, 1e-8, still))
    actions = [pi.argmax(axis=1) for pi, _, _ in steps]
    assert len(steps) == 5  # pi_0 .. pi_4: four improvements
    assert [int((a != b).sum()) for a, b in zip(actions, actions[1:])] == [318, 272, 79, 8]
    v = steps[-1][1]
    assert v[0] == pytest.approx(421.4, abs=0.1) and v[440] == pytest.approx(637.0, abs=0.1)
    moves = np.asarray(mdp.action_labels)[actions[-1]].reshape(21, 21)
    assert moves[20, 0] == 5 and moves[0, 20] == -4 and moves[10, 10] == 0


def test_jack_forbids_moving_cars_that_are_not_there():
    mdp = mdps.jacks_car_rental()
    s = 2 * 21 + 1  # two cars at location 1, one at location 2
    assert [m for m, ok in zip(mdp.action_labels, mdp.allowed[s]) if ok] == [-1, 0, 1, 2]


def test_frozen_lake_from_its_transition_table():
    env = gym.make("FrozenLake-v1")
    mdp = mdps.from_gymnasium(env, gamma=0.99)
    table = env.unwrapped.P
    assert mdp.terminal.tolist() == [c in b"HG" for c in env.unwrapped.desc.flatten()]
    for s in np.flatnonzero(~mdp.terminal):
        for a in range(4):
            expected = np.zeros(16)
            for p, s2, r, _ in table[s][a]:
                expected[s2] += p
            np.testing.assert_allclose(mdp.P[s, a], expected, atol=1e-12)
    assert mdp.R[14, 2] == pytest.approx(1 / 3)  # right from next to the goal: slips 2 times in 3
    assert mdp.initial[0] == 1.0
    _, v = dp.value_iteration(mdps.from_gymnasium(env, gamma=1.0), 1e-12)
    assert v[0] == pytest.approx(14 / 17, abs=1e-6)  # the best success probability without a time limit


def test_frozen_lake_exact_success_matches_real_episodes():
    """The exact probability of reaching the goal within the 100-step limit predicts real episodes."""
    from rlcore.evaluate import evaluate

    env = gym.make("FrozenLake-v1")
    pi, _ = dp.value_iteration(mdps.from_gymnasium(env, gamma=0.99), 1e-10)
    within_limit = dp.policy_evaluation(mdps.from_gymnasium(env, gamma=1.0), pi, 0.0, False, 100)[0]
    actions = pi.argmax(axis=1)
    returns = evaluate("FrozenLake-v1", lambda s: int(actions[s]), n_episodes=3000, seed=0)
    se = np.sqrt(within_limit * (1 - within_limit) / returns.size)
    assert abs(returns.mean() - within_limit) < 4 * se  # fixed seed; 4 SE fails a correct model 6e-5 of the time


def test_cliff_walking_terminal_state_is_made_absorbing():
    mdp = mdps.from_gymnasium(gym.make("CliffWalking-v1"), gamma=1.0)
    assert np.flatnonzero(mdp.terminal).tolist() == [47]
    _, v = dp.value_iteration(mdp, 1e-10)
    assert v[36] == pytest.approx(-13.0)  # the shortest path along the cliff: 13 steps of -1


# ---------------------------------------------------------------------------------------------
# (e) Validation
# ---------------------------------------------------------------------------------------------


def test_rows_of_p_must_sum_to_one():
    P = np.ones((2, 1, 2)) * 0.4
    with pytest.raises(ValueError, match=r"P\[0, 0\] sums to 0.8"):
        FiniteMDP.build(P, np.zeros((2, 1)), 0.9)


def test_bad_shapes_and_values_are_named():
    P = np.ones((2, 1, 2)) / 2
    with pytest.raises(ValueError, match="shape"):
        FiniteMDP.build(np.ones((2, 2)), np.zeros((2, 1)), 0.9)
    with pytest.raises(ValueError, match=r"R must have shape \[S, A\]"):
        FiniteMDP.build(P, np.zeros(2), 0.9)
    with pytest.raises(ValueError, match="gamma must be in"):
        FiniteMDP.build(P, np.zeros((2, 1)), 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        FiniteMDP.build(np.array([[[1.5, -0.5]], [[0.5, 0.5]]]), np.zeros((2, 1)), 0.9)
    with pytest.raises(ValueError, match="terminal state 1 must be absorbing"):
        FiniteMDP.build(P, np.zeros((2, 1)), 0.9, terminal=[False, True])
    with pytest.raises(ValueError, match="no allowed action"):
        FiniteMDP.build(P, np.zeros((2, 1)), 0.9, allowed=[[True], [False]])


def test_rewards_on_transitions_are_reduced_to_expected_rewards():
    P = np.array([[[0.25, 0.75]], [[0.0, 1.0]]])
    R3 = np.array([[[4.0, 0.0]], [[0.0, 1.0]]])
    mdp = FiniteMDP.build(P, R3, 0.9)
    np.testing.assert_allclose(mdp.R, [[1.0], [1.0]])


def test_arrays_are_read_only():
    mdp = mdps.gridworld_4x4()
    with pytest.raises(ValueError, match="read-only"):
        mdp.P[0, 0, 0] = 0.5


def test_policies_are_validated():
    mdp = mdps.gamblers_problem(0.4, goal=10)
    with pytest.raises(ValueError, match="shape"):
        dp.policy_evaluation(mdp, np.zeros(11, dtype=int), 1e-6)
    bad = dp.uniform_policy(mdp).copy()
    bad[3] = 0.0
    bad[3, 5] = 1.0  # stake 5 with capital 3
    with pytest.raises(ValueError, match="not allowed"):
        dp.policy_evaluation(mdp, bad, 1e-6)
    with pytest.raises(ValueError, match="max_sweeps"):
        dp.policy_evaluation(mdp, dp.uniform_policy(mdp), 0.0)


def test_a_policy_that_never_ends_has_no_value_with_gamma_1():
    g4 = mdps.gridworld_4x4()
    up = dp.deterministic_policy(g4, np.zeros(16, dtype=int))  # the top row bumps into the wall for ever
    with pytest.raises(ValueError, match="never ends"):
        dp.policy_evaluation_exact(g4, up)


def test_from_gymnasium_needs_a_table():
    with pytest.raises(ValueError, match="transition table"):
        mdps.from_gymnasium(gym.make("CartPole-v1"))


# ---------------------------------------------------------------------------------------------
# (f) Determinism
# ---------------------------------------------------------------------------------------------


def test_random_mdp_depends_only_on_the_generator():
    a, b = random_case(5), random_case(5)
    np.testing.assert_array_equal(a.P, b.P)
    np.testing.assert_array_equal(a.allowed, b.allowed)
    assert not np.array_equal(a.P, random_case(6).P)
    # Forbidden actions carry the +10 trap; terminal states are absorbing.
    assert np.all(a.R[~a.allowed] == 10.0)
    assert np.all(a.P[a.terminal][:, :, a.terminal].sum(axis=-1) == 1.0)
