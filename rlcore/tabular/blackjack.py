"""Blackjack with the book's rules (Sutton & Barto, Example 5.1), as Gymnasium's
`gym.make("Blackjack-v1", sab=True)` plays it: exact values by dynamic programming, and fast
episode generation.

The game. Cards come from an infinite deck (drawn with replacement): 1 (ace) to 9 with
probability 1/13 each, 10 (ten and the three face cards) with probability 4/13. The player sees
the sum of their own cards and the dealer's face-up card. An ace is *usable* when counting it as
11 does not push the sum past 21. The player hits (takes a card) until they stick or go bust
(sum > 21: reward -1). When the player sticks, the dealer reveals the hidden card and hits while
their sum is below 17 (a soft 17 stands), then the nearer sum to 21 wins: +1, 0 (draw) or -1.
A *natural* (an ace and a ten as the first two cards) wins +1 unless the dealer also has one
(a draw). gamma = 1 and the only nonzero reward is the last one.

States. A Gymnasium observation is (player_sum 4..21, dealer_card 1..10, usable_ace 0/1). We number
all 2 x 18 x 10 = 360 of them:

    state = usable_ace * 180 + (player_sum - 4) * 10 + (dealer_card - 1)

so a table of values `V [360]` reshapes to `[2, 18, 10]` (usable ace, player sum 4..21, dealer
A..10), and `grid(V)` keeps the book's panels, player sums 12..21: `[2, 10, 10]`. States with a
usable ace and a sum below 12 cannot occur. Actions are Gymnasium's: 0 = stick, 1 = hit.

Why the observation is enough (it is a Markov state). With an infinite deck, the future depends
on the player's cards only through the sum and whether an ace is usable, and on the dealer's
only through the face-up card. One exception: a natural and a three-card 21 with a usable ace
share the observation (21, d, 1) but not the outcome of sticking, so `evaluate_policy` keeps the
natural apart. Every hit raises the hard total (aces counted as 1), so no state repeats within an
episode: first-visit and every-visit Monte Carlo coincide on Blackjack.

Sections: state encoding -> exact dynamic programming -> episode generation (vectorized, a scalar
sampler for exploring starts, and one episode in a Gymnasium environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from rlcore.tabular.mc import Episodes

STICK, HIT = 0, 1
N_ACTIONS = 2
MIN_SUM, MAX_SUM = 4, 21
N_SUMS = MAX_SUM - MIN_SUM + 1  # 18
N_DEALER = 10
N_STATES = 2 * N_SUMS * N_DEALER  # 360

# Card values 1..10 and their probabilities; index 0 is unused so CARD_PROBS[c] is P(card = c).
CARD_PROBS = np.array([0.0] + [1 / 13] * 9 + [4 / 13])


# ---------------------------------------------------------------------------------------------
# State encoding
# ---------------------------------------------------------------------------------------------


def state_index(player_sum, dealer_card, usable_ace):
    """The state number of an observation (player_sum, dealer_card, usable_ace).

    Works on ints or on arrays of equal shape: ints -> int, arrays [n] -> [n] int.
    Raises ValueError for values outside 4..21, 1..10, {0, 1}.
    """
    s, d, u = np.asarray(player_sum), np.asarray(dealer_card), np.asarray(usable_ace).astype(int)
    if np.any((s < MIN_SUM) | (s > MAX_SUM)) or np.any((d < 1) | (d > 10)) or np.any((u < 0) | (u > 1)):
        raise ValueError(f"not a Blackjack observation: player_sum {player_sum} (4..21), dealer_card "
                         f"{dealer_card} (1..10), usable_ace {usable_ace} (0 or 1)")
    index = u * (N_SUMS * N_DEALER) + (s - MIN_SUM) * N_DEALER + (d - 1)
    return int(index) if index.ndim == 0 else index


def obs_index(obs: tuple) -> int:
    """The state number of one Gymnasium observation tuple (player_sum, dealer_card, usable_ace)."""
    return state_index(int(obs[0]), int(obs[1]), int(obs[2]))


def decode(state):
    """The inverse of `state_index`: state(s) -> (player_sum, dealer_card, usable_ace)."""
    state = np.asarray(state)
    if np.any((state < 0) | (state >= N_STATES)):
        raise ValueError(f"state numbers are 0..{N_STATES - 1}, got {state}")
    usable, rest = np.divmod(state, N_SUMS * N_DEALER)
    s, d = np.divmod(rest, N_DEALER)
    out = (s + MIN_SUM, d + 1, usable)
    return tuple(int(x) for x in out) if state.ndim == 0 else out


_ALL_SUMS, _ALL_DEALERS, _ALL_USABLE = decode(np.arange(N_STATES))
# The 200 states of the book's figures (player sum 12..21), where the player has a real choice:
# below 12 hitting can never bust. Exploring starts draw from these.
DECISION_STATES = np.flatnonzero(_ALL_SUMS >= 12)
# States that can occur at all (a usable ace needs a sum of at least 12).
VALID_STATES = np.flatnonzero((_ALL_USABLE == 0) | (_ALL_SUMS >= 12))


def grid(values: np.ndarray) -> np.ndarray:
    """The book's layout of a table over states: values [360, ...] -> [2, 10, 10, ...]
    indexed [usable_ace (0 = no, 1 = yes), player_sum - 12, dealer_card - 1]."""
    values = np.asarray(values)
    if values.shape[:1] != (N_STATES,):
        raise ValueError(f"expected a table with {N_STATES} rows (one per state), got shape {values.shape}")
    return values.reshape(2, N_SUMS, N_DEALER, *values.shape[1:])[:, 12 - MIN_SUM:]


def threshold_policy(stick_from: int = 20) -> np.ndarray:
    """The book's fixed policy: stick when the player's sum is >= stick_from, else hit.
    -> policy [360] int (0 = stick, 1 = hit)."""
    return np.where(_ALL_SUMS >= stick_from, STICK, HIT)


def policy_probs(policy: np.ndarray) -> np.ndarray:
    """A deterministic policy [360] int -> its action probabilities [360, 2] (one-hot rows).
    An array that already holds probabilities [360, 2] is checked and returned as float."""
    policy = np.asarray(policy)
    if policy.shape == (N_STATES, N_ACTIONS):
        probs = policy.astype(float)
        if np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0):
            raise ValueError("policy probabilities must be >= 0 and each row must sum to 1")
        return probs
    if policy.shape != (N_STATES,):
        raise ValueError(f"a policy is an action per state [{N_STATES}] or probabilities "
                         f"[{N_STATES}, {N_ACTIONS}], got shape {policy.shape}")
    if not np.all((policy == STICK) | (policy == HIT)):
        raise ValueError("a deterministic policy holds actions 0 (stick) or 1 (hit)")
    return np.eye(N_ACTIONS)[policy.astype(int)]


# ---------------------------------------------------------------------------------------------
# Exact dynamic programming (infinite deck)
# ---------------------------------------------------------------------------------------------
#
# Outcomes are kept as probabilities of (lose, draw, win) rather than as one expected reward, so
# the same pass gives the value (win - lose) and the second moment of the return (win + lose,
# since G is -1, 0 or +1): the spread of a Monte Carlo estimate, from which the checks derive
# their tolerances.

LOSE, DRAW, WIN = 0, 1, 2


@lru_cache(maxsize=None)
def _dealer_from(hard: int, ace: bool) -> tuple:
    """Distribution of the dealer's final score [17, 18, 19, 20, 21, bust] from a hand with hard
    total `hard` (aces as 1), `ace` = holds an ace. The dealer hits while below 17, soft 17 stands."""
    total = hard + 10 if ace and hard + 10 <= 21 else hard
    if total > 21:
        return (0.0,) * 5 + (1.0,)
    if total >= 17:
        out = [0.0] * 6
        out[total - 17] = 1.0
        return tuple(out)
    dist = np.zeros(6)
    for card in range(1, 11):
        dist += CARD_PROBS[card] * np.array(_dealer_from(hard + card, ace or card == 1))
    return tuple(dist)


@lru_cache(maxsize=None)
def dealer_outcomes(dealer_card: int) -> np.ndarray:
    """The dealer's final hand given the face-up card: probabilities [7] of
    (natural, 17, 18, 19, 20, 21 without a natural, bust). Sums to 1."""
    out = np.zeros(7)
    for hidden in range(1, 11):
        p = CARD_PROBS[hidden]
        if {dealer_card, hidden} == {1, 10}:
            out[0] += p
        else:
            out[1:] += p * np.array(_dealer_from(dealer_card + hidden, dealer_card == 1 or hidden == 1))
    return out


def stick_outcomes(player_score: int, dealer_card: int, natural: bool = False) -> np.ndarray:
    """Probabilities [3] of (lose, draw, win) when the player sticks on `player_score` (<= 21).

    Book rules (sab=True): a player natural wins unless the dealer has one too (a draw); otherwise
    the scores compare, a dealer bust losing. A three-card 21 against a dealer natural is a draw
    (both score 21; the book gives the dealer's natural no special power)."""
    dealer = dealer_outcomes(dealer_card)
    out = np.zeros(3)
    if natural:
        out[DRAW] += dealer[0]
        out[WIN] += 1.0 - dealer[0]
        return out
    scores = np.array([21, 17, 18, 19, 20, 21])
    for p, score in zip(dealer[:6], scores):
        out[np.sign(player_score - score) + 1] += p
    out[WIN] += dealer[6]
    return out


def _hit_transitions(player_sum: int, usable: int) -> list[tuple[float, int | None, int]]:
    """Where a hit leads from (player_sum, usable): [(probability, next_sum or None if bust, next_usable)]."""
    out = []
    for card in range(1, 11):
        p = CARD_PROBS[card]
        if usable:
            s = player_sum + card
            out.append((p, s, 1) if s <= 21 else (p, s - 10, 0))  # the ace drops to 1; never a bust
        elif card == 1 and player_sum + 11 <= 21:
            out.append((p, player_sum + 11, 1))  # a new ace counts as 11
        else:
            s = player_sum + card
            out.append((p, s if s <= 21 else None, 0))
    return out


def _hard_order() -> list[int]:
    """State numbers ordered by decreasing hard total (sum - 10 with a usable ace), ties broken
    arbitrarily. A hit always raises the hard total, so a backward pass in this order sees every
    successor before its predecessors; a forward pass in reverse order sees every predecessor first."""
    hard = _ALL_SUMS - 10 * _ALL_USABLE
    valid = set(VALID_STATES.tolist())
    return [int(s) for s in np.argsort(-hard, kind="stable") if s in valid]


_ORDER = _hard_order()
_HITS = {s: _hit_transitions(int(_ALL_SUMS[s]), int(_ALL_USABLE[s])) for s in VALID_STATES.tolist()}


def _backward(weights: np.ndarray, terminal_moment: int) -> tuple[np.ndarray, np.ndarray]:
    """One backward pass over the states: the expected value of f(G) weighted per action.

    weights [360, 2]: the factor applied to each action (pi(a|s) for a value; pi^2/b for the
    second moment of an importance-sampled return). terminal_moment 1 or 2: f(G) = G or G^2.
    Returns (u [360], u_natural [10]) where u_natural[d - 1] is the same for a natural hand
    facing dealer card d (it can only stick or hit; a hit makes it an ordinary 21 with an ace)."""
    def f(outcome: np.ndarray) -> float:
        return outcome[WIN] - outcome[LOSE] if terminal_moment == 1 else outcome[WIN] + outcome[LOSE]

    bust = -1.0 if terminal_moment == 1 else 1.0
    u = np.zeros(N_STATES)
    for s in _ORDER:
        player_sum, dealer, usable = int(_ALL_SUMS[s]), int(_ALL_DEALERS[s]), int(_ALL_USABLE[s])
        stick = f(stick_outcomes(player_sum, dealer))
        hit = 0.0
        for p, nxt, nxt_usable in _HITS[s]:
            hit += p * (bust if nxt is None else u[state_index(nxt, dealer, nxt_usable)])
        u[s] = weights[s, STICK] * stick + weights[s, HIT] * hit
    natural = np.zeros(N_DEALER)
    for d in range(1, 11):
        s21 = state_index(21, d, 1)
        hit = sum(p * (bust if nxt is None else u[state_index(nxt, d, nu)]) for p, nxt, nu in _HITS[s21])
        natural[d - 1] = weights[s21, STICK] * f(stick_outcomes(21, d, natural=True)) + weights[s21, HIT] * hit
    return u, natural


def initial_distribution() -> tuple[np.ndarray, np.ndarray]:
    """Where a Gymnasium reset starts: P(first state) [360] for hands that are not naturals, and
    P(natural, dealer card d) [10]. Together they sum to 1."""
    start = np.zeros(N_STATES)
    natural = np.zeros(N_DEALER)
    for c1 in range(1, 11):
        for c2 in range(1, 11):
            p = CARD_PROBS[c1] * CARD_PROBS[c2]
            hard, ace = c1 + c2, c1 == 1 or c2 == 1
            usable = int(ace and hard + 10 <= 21)
            for d in range(1, 11):
                if {c1, c2} == {1, 10}:
                    natural[d - 1] += p * CARD_PROBS[d]
                else:
                    start[state_index(hard + 10 * usable, d, usable)] += p * CARD_PROBS[d]
    return start, natural


@dataclass(frozen=True)
class PolicyEvaluation:
    """Exact facts about a policy, from `evaluate_policy`. All arrays are over the 360 states.

    v: v_pi(s) for hands that are not naturals (the Markov value). v_natural [10]: the value of a
    natural facing dealer card 1..10. q [360, 2]: action values. second_moment: E[G^2 | s].
    visits: expected number of visits per episode from Gymnasium's initial deal (no state repeats,
    so this is also the probability of visiting it; it excludes natural hands), natural_visits [10].
    mc_target: what a first-visit Monte Carlo estimate converges to: v, except at (21, d, usable ace),
    where naturals and three-card 21s share the observation and their values mix in proportion to
    their visits. mc_sd: the SD of the return given the first visit, the spread of one sample.
    """

    v: np.ndarray
    v_natural: np.ndarray
    q: np.ndarray
    second_moment: np.ndarray
    visits: np.ndarray
    natural_visits: np.ndarray
    mc_target: np.ndarray
    mc_sd: np.ndarray

    def start_value(self) -> float:
        """The policy's expected return from Gymnasium's initial deal."""
        start, natural = initial_distribution()
        return float(start @ self.v + natural @ self.v_natural)


def _q_from(v: np.ndarray) -> np.ndarray:
    """Action values [360, 2] from state values (hands that are not naturals)."""
    q = np.zeros((N_STATES, N_ACTIONS))
    for s in VALID_STATES.tolist():
        player_sum, dealer, usable = int(_ALL_SUMS[s]), int(_ALL_DEALERS[s]), int(_ALL_USABLE[s])
        o = stick_outcomes(player_sum, dealer)
        q[s, STICK] = o[WIN] - o[LOSE]
        q[s, HIT] = sum(p * (-1.0 if nxt is None else v[state_index(nxt, dealer, nu)]) for p, nxt, nu in _HITS[s])
    return q


def evaluate_policy(policy: np.ndarray) -> PolicyEvaluation:
    """Exact evaluation of a policy (deterministic [360] or probabilities [360, 2]) by one backward
    pass (no state repeats, so no iteration is needed) and one forward pass for the visit counts."""
    probs = policy_probs(policy)
    v, v_nat = _backward(probs, 1)
    m2, m2_nat = _backward(probs, 2)
    # Forward pass: expected visits, from the initial deal, in order of increasing hard total.
    start, natural = initial_distribution()
    visits = start.copy()
    for s in reversed(_ORDER):
        go_on = visits[s] * probs[s, HIT]
        for p, nxt, nu in _HITS[s]:
            if nxt is not None:
                visits[state_index(nxt, int(_ALL_DEALERS[s]), nu)] += go_on * p
    for d in range(1, 11):  # a natural that hits becomes a three-card hand
        s21 = state_index(21, d, 1)
        for p, nxt, nu in _HITS[s21]:
            visits[state_index(nxt, d, nu)] += natural[d - 1] * probs[s21, HIT] * p
    target, second = v.copy(), m2.copy()
    for d in range(1, 11):
        s21 = state_index(21, d, 1)
        total = visits[s21] + natural[d - 1]
        target[s21] = (visits[s21] * v[s21] + natural[d - 1] * v_nat[d - 1]) / total
        second[s21] = (visits[s21] * m2[s21] + natural[d - 1] * m2_nat[d - 1]) / total
    sd = np.sqrt(np.maximum(second - target**2, 0.0))
    return PolicyEvaluation(v=v, v_natural=v_nat, q=_q_from(v), second_moment=m2, visits=visits,
                            natural_visits=natural, mc_target=target, mc_sd=sd)


@dataclass(frozen=True)
class OptimalSolution:
    """The optimal policy by dynamic programming. q [360, 2], v [360], policy [360] (stick on ties),
    gap [360] = |q(s, stick) - q(s, hit)|: how much the choice matters in each state."""

    q: np.ndarray
    v: np.ndarray
    policy: np.ndarray
    gap: np.ndarray


@lru_cache(maxsize=1)
def _optimal_cached() -> OptimalSolution:
    v = np.zeros(N_STATES)
    q = np.zeros((N_STATES, N_ACTIONS))
    for s in _ORDER:  # backward: every successor of s is already final
        player_sum, dealer, usable = int(_ALL_SUMS[s]), int(_ALL_DEALERS[s]), int(_ALL_USABLE[s])
        o = stick_outcomes(player_sum, dealer)
        q[s, STICK] = o[WIN] - o[LOSE]
        q[s, HIT] = sum(p * (-1.0 if nxt is None else v[state_index(nxt, dealer, nu)]) for p, nxt, nu in _HITS[s])
        v[s] = q[s].max()
    policy = np.where(q[:, HIT] > q[:, STICK], HIT, STICK)
    for a in (q, v, policy):
        a.setflags(write=False)
    return OptimalSolution(q=q, v=v, policy=policy, gap=np.abs(q[:, STICK] - q[:, HIT]))


def optimal() -> OptimalSolution:
    """Optimal action values, values and policy (the book's Figure 5.2), exact for an infinite deck.
    A natural always sticks (it cannot do better than a sure win or draw)."""
    return _optimal_cached()


def importance_sampling_second_moment(target: np.ndarray, behavior: np.ndarray, state: int) -> float:
    """E_b[(rho G)^2] for episodes from `state` (not a natural): the second moment of one
    ordinary importance-sampling sample, so Var = this - v_pi(state)^2 and the MSE of the
    ordinary estimate after k episodes is exactly Var / k.

    target, behavior: probabilities [360, 2]; the behavior must cover the target."""
    target, behavior = policy_probs(target), policy_probs(behavior)
    if np.any((target > 0) & (behavior == 0)):
        raise ValueError("the behavior policy must give every action the target takes a nonzero probability")
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(target > 0, target**2 / behavior, 0.0)
    u, _ = _backward(weights, 2)
    return float(u[state])


# ---------------------------------------------------------------------------------------------
# Episode generation
# ---------------------------------------------------------------------------------------------
#
# Cards are consumed in Gymnasium's order: dealer face-up, dealer hidden, player, player, then
# the player's hits, then the dealer's draws. Given the same cards, `generate_episodes` plays
# exactly the episode Gymnasium plays (tests/test_mc.py checks it in lockstep).


def draw_cards(rng: np.random.Generator, shape) -> np.ndarray:
    """Cards from the infinite deck: values 1..10, a 10 four times as likely as each other value."""
    return np.minimum(rng.integers(1, 14, size=shape, dtype=np.int8), 10)


def _as_probs_or_actions(policy) -> tuple[np.ndarray | None, np.ndarray | None]:
    policy = np.asarray(policy)
    if policy.shape == (N_STATES,):
        policy_probs(policy)  # validates
        return policy.astype(np.int64), None
    return None, policy_probs(policy)


def _broadcast(value, n: int, name: str, valid: np.ndarray) -> np.ndarray | None:
    if value is None:
        return None
    out = np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)).copy()
    if not np.isin(out, valid).all():
        raise ValueError(f"{name}: {out[~np.isin(out, valid)][:5]} are not allowed here")
    return out


def generate_episodes(
    policy,
    n_episodes: int,
    rng: np.random.Generator | None = None,
    *,
    start_state=None,
    start_action=None,
    cards: np.ndarray | None = None,
) -> Episodes:
    """Play n_episodes of Blackjack at once, vectorized over episodes.

    policy: actions [360] int (deterministic) or probabilities [360, 2] (actions drawn with rng).
    start_state: None (Gymnasium's deal), or a state number (int or [n]) from DECISION_STATES:
        the player's hand has that sum and ace (never a natural), the dealer shows that card.
    start_action: None (follow the policy), or the first action (int or [n]): exploring starts.
    cards: optional card values [n, K] in Gymnasium's order (see above), for replaying Gymnasium's
        episodes exactly; by default they are drawn from rng.
    -> Episodes: states, actions, rewards (the last one is the only nonzero reward).
    """
    if n_episodes < 0:
        raise ValueError(f"n_episodes must be >= 0, got {n_episodes}")
    actions_table, probs = _as_probs_or_actions(policy)
    if probs is not None and rng is None:
        raise ValueError("a stochastic policy needs rng to draw actions")
    n = int(n_episodes)
    start_state = _broadcast(start_state, n, "start_state", DECISION_STATES)
    start_action = _broadcast(start_action, n, "start_action", np.array([STICK, HIT]))
    if cards is None:
        if rng is None:
            raise ValueError("pass rng (a numpy Generator) or the cards to deal")
        deal = draw_cards(rng, (n, 4))
    else:
        cards = np.asarray(cards)
        if cards.ndim != 2 or cards.shape[0] != n or cards.shape[1] < 4:
            raise ValueError(f"cards must be [n_episodes, K >= 4], got {cards.shape}")
        if np.any((cards < 1) | (cards > 10)):
            raise ValueError("card values are 1..10")
        deal = cards[:, :4]
    rows = np.arange(n)
    pointer = np.full(n, 4)  # the next card of each episode, when replaying given cards

    def take(idx: np.ndarray) -> np.ndarray:
        """The next card for each episode in idx [k] -> [k]."""
        if cards is None:  # infinite deck: a fresh draw (the order of draws does not matter)
            return draw_cards(rng, idx.size).astype(np.int64)
        if idx.size and pointer[idx].max() >= cards.shape[1]:
            raise ValueError("an episode needs more cards than were given")
        out = cards[idx, pointer[idx]].astype(np.int64)
        pointer[idx] += 1
        return out

    # The deal. Player: hard total (aces as 1), holds an ace, natural. Dealer: face-up and hidden.
    dealer_show = deal[:, 0].astype(np.int64)
    dealer_hidden = deal[:, 1].astype(np.int64)
    hard = deal[:, 2].astype(np.int64) + deal[:, 3]
    ace = (deal[:, 2] == 1) | (deal[:, 3] == 1)
    if start_state is not None:
        s_sum, s_dealer, s_usable = decode(start_state)
        dealer_show = s_dealer.astype(np.int64)
        hard = (s_sum - 10 * s_usable).astype(np.int64)
        ace = s_usable.astype(bool)
    natural = ace & (hard == 11) & (start_state is None)

    max_steps = 22  # each hit adds at least 1 to a hard total that starts at 2 and busts past 21
    S = np.full((max_steps, n), -1, dtype=np.int64)  # [T, n]
    A = np.zeros((max_steps, n), dtype=np.int64)
    R = np.zeros((max_steps, n))
    alive = np.ones(n, dtype=bool)
    t = 0
    while alive.any():
        idx = rows[alive]
        usable = ace[idx] & (hard[idx] + 10 <= 21)
        s = state_index(hard[idx] + 10 * usable, dealer_show[idx], usable)
        if t == 0 and start_action is not None:
            a = start_action[idx]
        elif actions_table is not None:
            a = actions_table[s]
        else:
            a = (rng.random(idx.size) < probs[s, HIT]).astype(np.int64)
        S[t, idx], A[t, idx] = s, a
        hitting, sticking = idx[a == HIT], idx[a == STICK]
        card = take(hitting)
        hard[hitting] += card
        ace[hitting] |= card == 1
        natural[hitting] = False
        bust = hitting[hard[hitting] > 21]
        R[t, bust] = -1.0
        alive[bust] = False
        R[t, sticking] = _dealer_plays(sticking, hard, ace, natural, dealer_show, dealer_hidden, take)
        alive[sticking] = False
        t += 1
    return Episodes.from_padded(S[:t], A[:t], R[:t])


def _dealer_plays(idx, hard, ace, natural, dealer_show, dealer_hidden, take) -> np.ndarray:
    """The dealer's turn for the episodes `idx` whose player stuck; returns their rewards [len(idx)]."""
    if idx.size == 0:
        return np.zeros(0)
    d_hard = dealer_show[idx] + dealer_hidden[idx]
    d_ace = (dealer_show[idx] == 1) | (dealer_hidden[idx] == 1)
    d_natural = d_ace & (d_hard == 11)

    def total(h, a):
        return h + 10 * (a & (h + 10 <= 21))

    while True:
        need = total(d_hard, d_ace) < 17
        if not need.any():
            break
        card = take(idx[need])
        d_hard[need] += card
        d_ace[need] |= card == 1
    player = total(hard[idx], ace[idx])
    dealer = np.where(total(d_hard, d_ace) > 21, 0, total(d_hard, d_ace))  # a bust scores 0
    reward = np.sign(player - dealer).astype(float)
    return np.where(natural[idx] & ~d_natural, 1.0, reward)


class EpisodeSampler:
    """Single Blackjack episodes in plain Python, fast enough for Monte Carlo control, which needs a
    new policy for every episode. Cards come from a buffer refilled from `rng`.

        sampler = EpisodeSampler(rng)
        states, actions, rewards = sampler.episode(start_state, start_action, policy)
    """

    def __init__(self, rng: np.random.Generator, buffer: int = 1 << 16):
        self.rng = rng
        self._buffer = buffer
        self._cards: list[int] = []
        self._next = 0

    def _card(self) -> int:
        if self._next == len(self._cards):
            self._cards = draw_cards(self.rng, self._buffer).tolist()
            self._next = 0
        self._next += 1
        return self._cards[self._next - 1]

    def episode(self, start_state: int, start_action: int, policy: Sequence[int]) -> tuple[list, list, list]:
        """One episode from `start_state` (a decision state, not a natural) with first action
        `start_action`, then following `policy` (actions [360]).
        -> (states [T], actions [T], rewards [T]) as Python lists."""
        start_state = int(start_state)
        if not 0 <= start_state < N_STATES:
            raise ValueError(f"start_state must be a state number 0..{N_STATES - 1}, got {start_state}")
        usable, rest = divmod(start_state, N_SUMS * N_DEALER)  # decode(), without numpy's overhead
        player_sum, dealer = divmod(rest, N_DEALER)
        player_sum, dealer = player_sum + MIN_SUM, dealer + 1
        hard, ace = player_sum - 10 * usable, bool(usable)  # hard total counts aces as 1
        states, actions, rewards = [], [], []
        action = int(start_action)
        while True:
            usable = ace and hard <= 11
            # state_index, written out: usable * 180 + (sum - 4) * 10 + (dealer - 1)
            state = 180 * usable + (hard + 10 * usable - MIN_SUM) * 10 + dealer - 1
            if states:
                action = int(policy[state])
            states.append(state)
            actions.append(action)
            if action == HIT:
                card = self._card()
                hard += card
                ace = ace or card == 1
                rewards.append(-1.0 if hard > 21 else 0.0)
                if hard > 21:
                    return states, actions, rewards
                continue
            player = hard + 10 * usable
            hidden = self._card()
            d_hard, d_ace = dealer + hidden, dealer == 1 or hidden == 1
            while d_hard + 10 * (d_ace and d_hard <= 11) < 17:
                card = self._card()
                d_hard += card
                d_ace = d_ace or card == 1
            score = d_hard + 10 * (d_ace and d_hard <= 11)
            score = 0 if score > 21 else score  # a dealer bust scores 0, as in Gymnasium
            # No natural can occur: the player's start is never one; a dealer natural beats any sum
            # below 21 anyway, and against a three-card 21 it is a draw (both score 21).
            rewards.append(float((player > score) - (player < score)))
            return states, actions, rewards


def play_episode(env: Any, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode in a Gymnasium Blackjack environment, following a deterministic policy [360].

    Calls env.reset() without a seed: seed the environment once beforehand, then each call plays
    the next episode of the seeded sequence.
    -> (states [T] int, actions [T] int, rewards [T] float); states[t] is the state in which
    actions[t] was taken and rewards[t] the reward that followed it.
    """
    obs, _ = env.reset()
    states, actions, rewards = [], [], []
    done = False
    while not done:
        s = obs_index(obs)
        a = int(policy[s])
        obs, reward, terminated, truncated, _ = env.step(a)
        states.append(s)
        actions.append(a)
        rewards.append(float(reward))
        done = terminated or truncated
    return np.array(states, dtype=np.int64), np.array(actions, dtype=np.int64), np.array(rewards)


def gymnasium_cards(env: Any) -> list[int]:
    """The cards a finished Gymnasium Blackjack episode used, in the order they were dealt
    (dealer face-up, dealer hidden, player's cards, dealer's draws): for replaying it exactly."""
    game = env.unwrapped
    return list(game.dealer[:2]) + list(game.player) + list(game.dealer[2:])
