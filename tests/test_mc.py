"""Tests of rlcore.tabular.blackjack and rlcore.tabular.mc, in layers from exact to statistical.

(a) state encoding and the Episodes batch: round trips, layouts, errors;
(b) the game: rlcore's vectorized Blackjack replays Gymnasium's own episodes (sab=True) step for step,
    and its exact DP agrees with a naive enumeration built on Gymnasium's scoring functions;
(c) exact values against the published ones (shared references, section 1a);
(d) Monte Carlo functions against naive per-episode loops and hand cases;
(e) statistics: simulated returns, visit counts and importance-sampling moments against the exact
    DP answers, within 4 standard errors (fixed seeds, so deterministic);
(f) determinism and bad input.
"""

from __future__ import annotations

from functools import lru_cache

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.toy_text import blackjack as gym_blackjack

from rlcore.tabular import blackjack as bj
from rlcore.tabular import mc

Z = 4.0


def naive_returns(rewards, gamma):
    G, out = 0.0, []
    for r in reversed(list(rewards)):
        G = r + gamma * G
        out.append(G)
    return out[::-1]


def random_episodes(seed, n=60, n_states=5, n_actions=2, max_len=7):
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n):
        T = int(rng.integers(1, max_len + 1))
        eps.append((rng.integers(n_states, size=T), rng.integers(n_actions, size=T), rng.normal(size=T)))
    return eps


# ---------------------------------------------------------------------------------------------
# (a) Encoding and the Episodes batch
# ---------------------------------------------------------------------------------------------


def test_state_index_round_trip_and_layout():
    states = np.arange(bj.N_STATES)
    s, d, u = bj.decode(states)
    np.testing.assert_array_equal(bj.state_index(s, d, u), states)
    assert bj.state_index(13, 2, 1) == 180 + 9 * 10 + 1
    assert bj.decode(bj.state_index(21, 10, 0)) == (21, 10, 0)
    assert bj.obs_index((np.int64(12), 1, True)) == bj.state_index(12, 1, 1)
    values = np.arange(bj.N_STATES, dtype=float)
    g = bj.grid(values)
    assert g.shape == (2, 10, 10)
    assert g[1, 13 - 12, 2 - 1] == bj.state_index(13, 2, 1)
    assert g[0, 0, 0] == bj.state_index(12, 1, 0)
    assert bj.DECISION_STATES.size == 200 and bj.VALID_STATES.size == 280


@pytest.mark.parametrize("bad", [(3, 2, 0), (22, 2, 0), (12, 0, 0), (12, 11, 1), (12, 2, 2)])
def test_state_index_rejects_impossible_observations(bad):
    with pytest.raises(ValueError, match="not a Blackjack observation"):
        bj.state_index(*bad)


def test_policies():
    p = bj.threshold_policy(20)
    s, _, _ = bj.decode(np.arange(bj.N_STATES))
    np.testing.assert_array_equal(p, np.where(s >= 20, bj.STICK, bj.HIT))
    probs = bj.policy_probs(p)
    assert probs.shape == (360, 2) and np.all(probs.sum(axis=1) == 1) and np.all(probs[np.arange(360), p] == 1)
    with pytest.raises(ValueError, match="actions 0"):
        bj.policy_probs(np.full(360, 2))
    with pytest.raises(ValueError, match="shape"):
        bj.policy_probs(np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="sum to 1"):
        bj.policy_probs(np.full((360, 2), 0.6))


def test_episodes_batch_round_trip():
    eps = random_episodes(0)
    batch = mc.Episodes.from_list(eps)
    assert len(batch) == len(eps)
    for (s, a, r), (s2, a2, r2) in zip(eps, batch):
        np.testing.assert_array_equal(s, s2)
        np.testing.assert_array_equal(a, a2)
        np.testing.assert_array_equal(r, r2)
    s, a, r = batch[-1]
    np.testing.assert_array_equal(s, eps[-1][0])
    part = batch[10:20]
    assert isinstance(part, mc.Episodes) and len(part) == 10
    np.testing.assert_array_equal(part[0][0], eps[10][0])
    np.testing.assert_array_equal(batch.lengths, [len(e[0]) for e in eps])
    with pytest.raises(IndexError):
        batch[len(eps)]


def test_episodes_from_padded_is_episode_major():
    S = np.array([[0, 1, 2], [3, -1, 4], [-1, -1, 5]])  # [T, E]
    A = np.zeros_like(S)
    R = np.arange(9.0).reshape(3, 3)
    batch = mc.Episodes.from_padded(S, A, R)
    np.testing.assert_array_equal(batch.states, [0, 3, 1, 2, 4, 5])
    np.testing.assert_array_equal(batch.rewards, [0, 3, 1, 2, 5, 8])
    np.testing.assert_array_equal(batch.offsets, [0, 2, 3, 6])


@pytest.mark.parametrize("bad, match", [
    ([([0, 1], [0], [1.0, 2.0])], "lengths"),
    ([([0], [0])], "triple"),
])
def test_episodes_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        mc.Episodes.from_list(bad)


def test_episodes_reject_empty_episode():
    with pytest.raises(ValueError, match="at least one step"):
        mc.Episodes.from_list([([], [], [])])


# ---------------------------------------------------------------------------------------------
# (b) The game: lockstep with Gymnasium, DP against a naive enumeration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy_name", ["stick20", "optimal", "random"])
def test_vectorized_blackjack_replays_gymnasium_exactly(policy_name):
    policy = {"stick20": bj.threshold_policy(20), "optimal": bj.optimal().policy,
              "random": np.random.default_rng(1).integers(0, 2, size=360)}[policy_name]
    env = gym.make("Blackjack-v1", sab=True)
    env.reset(seed=11)
    played, cards = [], []
    for _ in range(1500):
        played.append(bj.play_episode(env, policy))
        cards.append(bj.gymnasium_cards(env))
    width = max(map(len, cards))
    deck = np.array([c + [10] * (width - len(c)) for c in cards])
    ours = bj.generate_episodes(policy, len(played), cards=deck)
    for i, (want, got) in enumerate(zip(played, ours)):
        for w, g in zip(want, got):
            np.testing.assert_array_equal(w, g, err_msg=f"episode {i}, cards {cards[i]}")
    # The sample must contain the rule that differs between sab=True and the default: a natural.
    assert any(s[0] == bj.state_index(21, 1 + (s[0] % 10), 1) for s, _, _ in played)


def test_replay_needs_enough_cards():
    with pytest.raises(ValueError, match="more cards"):
        bj.generate_episodes(np.full(360, bj.HIT), 1, cards=np.array([[2, 3, 2, 2]]))


@lru_cache(maxsize=None)
def _naive_dealer(dealer: tuple) -> tuple:
    """Final dealer hands with their probabilities, enumerated card by card with Gymnasium's rule
    (hit while sum_hand < 17). Hands are sorted tuples: the order of cards does not matter."""
    if gym_blackjack.sum_hand(list(dealer)) >= 17:
        return ((dealer, 1.0),)
    out = {}
    for card in range(1, 11):
        for hand, p in _naive_dealer(tuple(sorted(dealer + (card,)))):
            out[hand] = out.get(hand, 0.0) + bj.CARD_PROBS[card] * p
    return tuple(out.items())


@lru_cache(maxsize=None)
def _naive_value(player: tuple, dealer_up: int, policy: tuple) -> float:
    """v_pi by enumerating cards, scored with Gymnasium's own functions (sab=True rules).
    player: the player's cards as a sorted tuple; policy: actions per state as a tuple."""
    hand = list(player)
    obs = (gym_blackjack.sum_hand(hand), dealer_up, gym_blackjack.usable_ace(hand))
    if policy[bj.obs_index(obs)] == bj.HIT:
        total = 0.0
        for card in range(1, 11):
            more = tuple(sorted(player + (card,)))
            value = -1.0 if gym_blackjack.is_bust(list(more)) else _naive_value(more, dealer_up, policy)
            total += bj.CARD_PROBS[card] * value
        return total
    total = 0.0
    for dealer, p in _naive_dealer((dealer_up,)):
        reward = gym_blackjack.cmp(gym_blackjack.score(hand), gym_blackjack.score(list(dealer)))
        if gym_blackjack.is_natural(hand) and not gym_blackjack.is_natural(list(dealer)):
            reward = 1.0
        total += p * reward
    return total


@pytest.mark.parametrize("player, dealer", [([10, 3], 2), ([1, 2], 2), ([10, 6], 10), ([9, 9], 9), ([1, 10], 5),
                                            ([5, 7], 1)])
def test_dp_matches_naive_enumeration_with_gymnasium_scoring(player, dealer):
    policy = bj.threshold_policy(20)
    ev = bj.evaluate_policy(policy)
    want = _naive_value(tuple(sorted(player)), dealer, tuple(int(a) for a in policy))
    if sorted(player) == [1, 10]:
        got = ev.v_natural[dealer - 1]
    else:
        got = ev.v[bj.obs_index((gym_blackjack.sum_hand(player), dealer, gym_blackjack.usable_ace(player)))]
    assert abs(got - want) < 1e-12


def test_dealer_outcomes_analytic():
    for d in range(1, 11):
        assert abs(bj.dealer_outcomes(d).sum() - 1) < 1e-12
    assert abs(bj.dealer_outcomes(1)[0] - 4 / 13) < 1e-12  # ace up: a natural needs a ten
    assert abs(bj.dealer_outcomes(10)[0] - 1 / 13) < 1e-12  # ten up: a natural needs an ace
    assert bj.dealer_outcomes(5)[0] == 0
    # Ten up, hidden 7..10 or ace (non-natural 17..20) stands at once: P(dealer 20 | ten up) >= P(hidden ten).
    assert bj.dealer_outcomes(10)[4] >= 4 / 13
    # The dealer busts most often with a 5 or 6 showing (about 42%), least with an ace.
    bust = [bj.dealer_outcomes(d)[6] for d in range(1, 11)]
    assert int(np.argmax(bust)) + 1 in (5, 6) and 0.40 < max(bust) < 0.44 and int(np.argmin(bust)) == 0


def test_stick_outcomes_book_rules():
    # A natural: win unless the dealer has one too (a draw), whatever the dealer's later cards.
    o = bj.stick_outcomes(21, 1, natural=True)
    assert abs(o[bj.DRAW] - 4 / 13) < 1e-12 and abs(o[bj.WIN] - 9 / 13) < 1e-12 and o[bj.LOSE] == 0
    # A three-card 21 never loses: a dealer natural only draws with it.
    assert bj.stick_outcomes(21, 10)[bj.LOSE] == 0
    # Sticking on 16 or less wins only when the dealer busts.
    o = bj.stick_outcomes(16, 6)
    assert o[bj.DRAW] == 0 and abs(o[bj.WIN] - bj.dealer_outcomes(6)[6]) < 1e-12


def test_initial_distribution_sums_to_one():
    start, natural = bj.initial_distribution()
    assert abs(start.sum() + natural.sum() - 1) < 1e-12
    assert abs(natural.sum() - 2 * (1 / 13) * (4 / 13)) < 1e-12
    invalid = np.setdiff1d(np.arange(360), bj.VALID_STATES)
    assert np.all(start[invalid] == 0)


# ---------------------------------------------------------------------------------------------
# (c) Exact values against the published ones
# ---------------------------------------------------------------------------------------------


def test_figure_5_1_values_match_published():
    g = bj.grid(bj.evaluate_policy(bj.threshold_policy(20)).v)
    np.testing.assert_allclose(g[0, 8], [0.146, 0.640, 0.650, 0.661, 0.670, 0.704, 0.773, 0.792, 0.758, 0.435], atol=5e-4)
    np.testing.assert_allclose(g[0, 1], [-0.666, -0.577, -0.576, -0.574, -0.573, -0.567, -0.556, -0.553, -0.556, -0.601],
                               atol=5e-4)
    np.testing.assert_allclose(g[1, 1], [-0.429, -0.277, -0.274, -0.271, -0.269, -0.260, -0.241, -0.236, -0.241, -0.318],
                               atol=5e-4)


def test_example_5_4_value():
    v = bj.evaluate_policy(bj.threshold_policy(20)).v[bj.state_index(13, 2, 1)]
    assert abs(v - (-0.27720)) < 5e-6
    assert abs(v - (-0.27726)) < 1e-4  # the book's 100-million-episode estimate


def test_figure_5_2_optimal_policy_matches_published():
    letters = bj.grid(np.array(["S", "H"])[bj.optimal().policy])
    usable = {18: "HSSSSSSSHH", **{s: "H" * 10 for s in range(12, 18)}, **{s: "S" * 10 for s in range(19, 22)}}
    no_usable = {12: "HHHSSSHHHH", **{s: "HSSSSSHHHH" for s in range(13, 17)}, **{s: "S" * 10 for s in range(17, 22)}}
    for s in range(12, 22):
        assert "".join(letters[1, s - 12]) == usable[s], s
        assert "".join(letters[0, s - 12]) == no_usable[s], s
    opt = bj.optimal()
    assert abs(opt.v[bj.state_index(13, 2, 0)] - (-0.293)) < 5e-4
    assert abs(opt.v[bj.state_index(16, 10, 0)] - (-0.569)) < 5e-4
    assert abs(opt.v[bj.state_index(18, 9, 1)] - (-0.101)) < 5e-4
    assert np.all(opt.gap >= 0) and opt.q.shape == (360, 2)


def test_optimal_value_is_the_best_threshold_and_bellman_consistent():
    opt = bj.optimal()
    ev = bj.evaluate_policy(opt.policy)
    np.testing.assert_allclose(ev.v[bj.VALID_STATES], opt.v[bj.VALID_STATES], atol=1e-12)
    best = ev.start_value()
    for k in range(12, 22):
        assert bj.evaluate_policy(bj.threshold_policy(k)).start_value() < best


# ---------------------------------------------------------------------------------------------
# (d) Monte Carlo functions against naive loops and hand cases
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.0])
def test_returns_match_naive_loop(gamma):
    eps = random_episodes(1)
    got = mc.returns_per_step(eps, gamma)
    want = np.concatenate([naive_returns(r, gamma) for _, _, r in eps])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(mc.episode_returns(eps, gamma), [naive_returns(r, gamma)[0] for _, _, r in eps], atol=1e-12)


@pytest.mark.parametrize("first_visit", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_mc_prediction_matches_naive_loop(first_visit, gamma):
    eps = random_episodes(2)
    total, count = np.zeros(5), np.zeros(5, dtype=int)
    for s, _, r in eps:
        G = naive_returns(r, gamma)
        for t in range(len(s)):
            if first_visit and s[t] in list(s[:t]):
                continue
            total[s[t]] += G[t]
            count[s[t]] += 1
    V, N = mc.mc_prediction(eps, 5, gamma, first_visit)
    np.testing.assert_array_equal(N, count)
    np.testing.assert_allclose(V, np.divide(total, count, out=np.zeros(5), where=count > 0), atol=1e-12)


def test_mc_prediction_hand_case():
    episode = ([0, 1, 0, 2], [0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0])
    V, N = mc.mc_prediction([episode], 4)
    np.testing.assert_allclose(V, [10, 9, 4, 0])
    np.testing.assert_array_equal(N, [1, 1, 1, 0])
    V, N = mc.mc_prediction([episode], 4, first_visit=False)
    np.testing.assert_allclose(V, [8.5, 9, 4, 0])


def test_mc_prediction_bad_input():
    with pytest.raises(ValueError, match="states must be 0..3"):
        mc.mc_prediction([([0, 4], [0, 0], [0.0, 1.0])], 4)
    with pytest.raises(ValueError, match="NaN"):
        mc.mc_prediction([([0], [0], [np.nan])], 4)
    with pytest.raises(ValueError, match="gamma"):
        mc.mc_prediction([([0], [0], [1.0])], 4, gamma=1.5)


def test_importance_ratios_and_estimates_match_naive_loop():
    rng = np.random.default_rng(3)
    target = rng.dirichlet(np.ones(2), size=5)
    behavior = 0.5 * rng.dirichlet(np.ones(2), size=5) + 0.25
    eps = random_episodes(4)
    rho_naive = [np.prod([target[s, a] / behavior[s, a] for s, a in zip(S, A)]) for S, A, _ in eps]
    np.testing.assert_allclose(mc.importance_ratios(eps, target, behavior), rho_naive, rtol=1e-12)
    o, w = mc.off_policy_estimates(eps, target, behavior, 0.9)
    num = den = 0.0
    for k, ((_, _, r), rho) in enumerate(zip(eps, rho_naive)):
        num += rho * naive_returns(r, 0.9)[0]
        den += rho
        assert abs(o[k] - num / (k + 1)) < 1e-9 and abs(w[k] - num / den) < 1e-9


def test_weighted_estimate_is_zero_until_a_ratio_is_nonzero():
    target = np.array([[1.0, 0.0]])
    behavior = np.array([[0.5, 0.5]])
    eps = [([0], [1], [5.0]), ([0], [1], [5.0]), ([0], [0], [2.0])]
    o, w = mc.off_policy_estimates(eps, target, behavior)
    np.testing.assert_allclose(o, [0, 0, 4 / 3])
    np.testing.assert_allclose(w, [0, 0, 2])


def test_importance_ratios_reject_impossible_behavior():
    with pytest.raises(ValueError, match="probability 0"):
        mc.importance_ratios([([0], [1], [1.0])], np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="same shape|one shape"):
        mc.importance_ratios([([0], [1], [1.0])], np.ones((1, 2)) / 2, np.ones((2, 2)) / 2)


def test_mc_es_solves_a_small_task():
    """Two states: in state 0 action 1 moves to state 1 (reward 0), action 0 ends with reward 0.5;
    in state 1 action 0 ends with 1, action 1 ends with 0. Optimal: 1 in state 0, 0 in state 1."""

    def generate(s0, a0, policy):
        states, actions, rewards = [s0], [a0], []
        s, a = s0, a0
        while True:
            if s == 0 and a == 1:
                rewards.append(0.0)
                s = 1
                a = int(policy[1])
                states.append(s)
                actions.append(a)
                continue
            rewards.append({(0, 0): 0.5, (1, 0): 1.0, (1, 1): 0.0}[s, a])
            return states, actions, rewards

    Q, policy = mc.mc_es(generate, 500, np.random.default_rng(0), start_states=np.array([0, 1]), n_states=2)
    np.testing.assert_array_equal(policy, [1, 0])
    np.testing.assert_allclose(Q[1], [1.0, 0.0])
    assert abs(Q[0, 0] - 0.5) < 1e-12 and Q[0, 1] > 0.5


# ---------------------------------------------------------------------------------------------
# (e) Statistics against exact answers
# ---------------------------------------------------------------------------------------------


def test_generated_returns_and_visits_match_dp():
    policy = bj.threshold_policy(20)
    ev = bj.evaluate_policy(policy)
    episodes = bj.generate_episodes(policy, 200_000, np.random.default_rng(5))
    G = mc.episode_returns(episodes)
    assert abs(G.mean() - ev.start_value()) < Z * G.std() / np.sqrt(G.size)
    # Visit counts: every state's count within Z binomial SDs of the exact expectation.
    expected = ev.visits.copy()
    expected[bj.state_index(21, np.arange(1, 11), 1)] += ev.natural_visits
    _, N = mc.mc_prediction(episodes, bj.N_STATES)
    sd = np.sqrt(np.maximum(expected * (1 - expected) * G.size, 1e-12))
    assert np.all(np.abs(N - expected * G.size) <= Z * sd + 1e-9)


@pytest.mark.parametrize("state, action", [((16, 10, 0), 0), ((16, 10, 0), 1), ((18, 9, 1), 1), ((12, 4, 0), 0)])
def test_exploring_start_returns_match_q(state, action):
    s0 = bj.state_index(*state)
    opt = bj.optimal()
    q = bj.evaluate_policy(opt.policy).q[s0, action]
    vec = mc.episode_returns(bj.generate_episodes(opt.policy, 100_000, np.random.default_rng(6),
                                                  start_state=s0, start_action=action))
    sampler = bj.EpisodeSampler(np.random.default_rng(7))
    scalar = np.array([sum(sampler.episode(s0, action, opt.policy)[2]) for _ in range(40_000)])
    for G in (vec, scalar):
        assert abs(G.mean() - q) < Z * G.std() / np.sqrt(G.size)


def test_episode_sampler_follows_the_policy_after_the_first_action():
    sampler = bj.EpisodeSampler(np.random.default_rng(8))
    policy = bj.threshold_policy(17)
    for _ in range(2000):
        states, actions, rewards = sampler.episode(bj.state_index(12, 5, 0), bj.HIT, policy)
        assert actions[0] == bj.HIT
        assert all(a == policy[s] for s, a in zip(states[1:], actions[1:]))
        assert all(r == 0 for r in rewards[:-1]) and rewards[-1] in (-1.0, 0.0, 1.0)
        assert len(set(states)) == len(states)  # no state repeats within an episode


def test_importance_sampling_moments_match_simulation():
    s0 = bj.state_index(13, 2, 1)
    target = bj.policy_probs(bj.threshold_policy(20))
    behavior = np.full((360, 2), 0.5)
    v = bj.evaluate_policy(bj.threshold_policy(20)).v[s0]
    second = bj.importance_sampling_second_moment(target, behavior, s0)
    episodes = bj.generate_episodes(behavior, 400_000, np.random.default_rng(9), start_state=s0)
    X = mc.importance_ratios(episodes, target, behavior) * mc.episode_returns(episodes)
    assert abs(X.mean() - v) < Z * X.std() / np.sqrt(X.size)  # ordinary IS is unbiased
    assert abs((X**2).mean() - second) < Z * (X**2).std() / np.sqrt(X.size)
    assert 9.5 < second - v**2 < 11  # Var(rho G), about 10.16: the ordinary MSE after one episode


# ---------------------------------------------------------------------------------------------
# (f) Determinism and bad input
# ---------------------------------------------------------------------------------------------


def test_generation_is_deterministic_per_seed():
    behavior = np.full((360, 2), 0.5)
    a = bj.generate_episodes(behavior, 1000, np.random.default_rng(1))
    b = bj.generate_episodes(behavior, 1000, np.random.default_rng(1))
    c = bj.generate_episodes(behavior, 1000, np.random.default_rng(2))
    for x, y in ((a.states, b.states), (a.actions, b.actions), (a.rewards, b.rewards)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.states[:200], c.states[:200])
    s1 = bj.EpisodeSampler(np.random.default_rng(3))
    s2 = bj.EpisodeSampler(np.random.default_rng(3))
    assert [s1.episode(200, 1, bj.threshold_policy(20)) for _ in range(50)] == \
        [s2.episode(200, 1, bj.threshold_policy(20)) for _ in range(50)]


def test_mc_es_is_deterministic_per_seed():
    def run(seed):
        sampler = bj.EpisodeSampler(np.random.default_rng([seed, 1]))
        return mc.mc_es(sampler.episode, 3000, np.random.default_rng(seed), start_states=bj.DECISION_STATES,
                        n_states=bj.N_STATES, initial_policy=bj.threshold_policy(20))

    (Q1, p1), (Q2, p2), (Q3, _) = run(1), run(1), run(2)
    np.testing.assert_array_equal(Q1, Q2)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(Q1, Q3)


def test_generate_episodes_bad_input():
    policy = bj.threshold_policy(20)
    with pytest.raises(ValueError, match="stochastic policy needs rng"):
        bj.generate_episodes(np.full((360, 2), 0.5), 3)
    with pytest.raises(ValueError, match="not allowed"):
        bj.generate_episodes(policy, 3, np.random.default_rng(0), start_state=bj.state_index(8, 2, 0))
    with pytest.raises(ValueError, match="card values"):
        bj.generate_episodes(policy, 1, cards=np.array([[0, 3, 4, 5]]))
    with pytest.raises(ValueError, match="n_episodes"):
        bj.generate_episodes(policy, -1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="start_state"):
        bj.EpisodeSampler(np.random.default_rng(0)).episode(400, 0, policy)
