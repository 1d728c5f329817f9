"""Finite Markov decision processes as dense arrays, and the book's examples built as such.

A finite MDP with S states and A actions is, for dynamic programming, nothing more than

    P        [S, A, S]  P[s, a, s'] = Pr(S_{t+1} = s' | S_t = s, A_t = a); every P[s, a] sums to 1
    R        [S, A]     R[s, a] = E[R_{t+1} | S_t = s, A_t = a], the expected immediate reward
    gamma    float      the discount rate, in [0, 1]
    terminal [S] bool   absorbing states: P[s, a, s] = 1 and R[s, a] = 0 for every action
    allowed  [S, A] bool   which actions exist in each state (the gambler cannot stake more than
                        he has); the rows P[s, a] of a forbidden action are placeholders that a
                        policy never uses
    initial  [S]        the distribution of the first state (for the expected return from the start)

With these arrays a Bellman backup is one matrix product: q = R + gamma * P @ v, shape [S, A].

Terminal states are absorbing and pay nothing, so their value is 0 under every policy without any
special case in the algorithms: a sweep that starts from v = 0 keeps v[terminal] = 0 for ever.
Episodic tasks (the 4x4 gridworld, the gambler, FrozenLake) and continuing tasks (the 5x5
gridworld, Jack's car rental) are handled the same way.

Constructors: `gridworld_5x5` (Example 3.5), `gridworld_4x4` (Example 4.1), `gamblers_problem`
(Example 4.3), `jacks_car_rental` (Example 4.2), `from_gymnasium` (any toy-text environment through
its transition table `env.unwrapped.P`, e.g. FrozenLake-v1) and `random_mdp` (for tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as _scipy_stats

PROB_ATOL = 1e-9  # how far a row of P may sum from 1 (rounding in the constructors stays far below)


# ---------------------------------------------------------------------------------------------
# The container
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FiniteMDP:
    """A finite MDP as dense arrays (shapes in the module docstring). Build it with
    `FiniteMDP.build(...)`, which validates every array and makes them read-only.

    P [S, A, S] float, R [S, A] float, gamma float, terminal [S] bool, allowed [S, A] bool,
    initial [S] float; state_labels and action_labels name the states and actions for display.
    """

    P: np.ndarray
    R: np.ndarray
    gamma: float
    terminal: np.ndarray
    allowed: np.ndarray
    initial: np.ndarray
    state_labels: tuple
    action_labels: tuple
    name: str = "MDP"
    shape: tuple | None = None  # a grid shape (rows, cols) when states are cells of a grid

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    def __repr__(self) -> str:
        return (f"FiniteMDP({self.name!r}: {self.n_states} states, {self.n_actions} actions, "
                f"gamma={self.gamma:g}, {int(self.terminal.sum())} terminal)")

    @classmethod
    def build(
        cls,
        P,
        R,
        gamma: float,
        *,
        terminal=None,
        allowed=None,
        initial=None,
        state_labels: Sequence | None = None,
        action_labels: Sequence | None = None,
        name: str = "MDP",
        shape: tuple | None = None,
    ) -> "FiniteMDP":
        """Validate the arrays and return a FiniteMDP whose arrays are read-only copies.

        P [S, A, S]. R [S, A], or [S, A, S] for rewards that depend on the next state too
        (reduced here to the expected reward R[s, a] = sum_s' P[s, a, s'] R[s, a, s']).
        terminal [S] bool (default: none), allowed [S, A] bool (default: all), initial [S]
        (default: uniform over the non-terminal states). Raises ValueError naming what is wrong.
        """
        P = np.array(P, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
            raise ValueError(f"P must have shape [S, A, S] with S, A >= 1, got {P.shape}.")
        S, A, _ = P.shape
        if not np.all(np.isfinite(P)) or P.min() < 0:
            raise ValueError("P must hold finite, non-negative probabilities.")
        sums = P.sum(axis=2)  # [S, A]
        bad = np.abs(sums - 1.0) > PROB_ATOL
        if bad.any():
            s, a = np.argwhere(bad)[0]
            raise ValueError(f"P[{s}, {a}] sums to {sums[s, a]:.12g}, not 1: every row P[s, a, :] must be a "
                             f"probability distribution over next states ({int(bad.sum())} rows are off).")

        R = np.array(R, dtype=np.float64)
        if R.shape == (S, A, S):
            R = (P * R).sum(axis=2)  # expected reward of (s, a)
        if R.shape != (S, A):
            raise ValueError(f"R must have shape [S, A] = {(S, A)} (or [S, A, S]), got {R.shape}.")
        if not np.all(np.isfinite(R)):
            raise ValueError("R must be finite.")

        gamma = float(gamma)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}.")

        terminal = np.zeros(S, dtype=bool) if terminal is None else np.array(terminal, dtype=bool)
        if terminal.shape != (S,):
            raise ValueError(f"terminal must have shape [S] = ({S},), got {terminal.shape}.")
        for s in np.flatnonzero(terminal):
            if not (np.all(P[s, :, s] == 1.0) and np.all(R[s] == 0.0)):
                raise ValueError(f"terminal state {s} must be absorbing with zero reward: P[{s}, a, {s}] = 1 and "
                                 f"R[{s}, a] = 0 for every action a.")

        allowed = np.ones((S, A), dtype=bool) if allowed is None else np.array(allowed, dtype=bool)
        if allowed.shape != (S, A):
            raise ValueError(f"allowed must have shape [S, A] = {(S, A)}, got {allowed.shape}.")
        if not allowed.any(axis=1).all():
            s = int(np.argmin(allowed.any(axis=1)))
            raise ValueError(f"state {s} has no allowed action; every state needs at least one.")

        if initial is None:
            start = ~terminal if (~terminal).any() else np.ones(S, dtype=bool)
            initial = start / start.sum()
        initial = np.array(initial, dtype=np.float64)
        if initial.shape != (S,) or initial.min() < 0 or abs(initial.sum() - 1.0) > PROB_ATOL:
            raise ValueError(f"initial must be a probability distribution over the {S} states.")

        state_labels = tuple(range(S)) if state_labels is None else tuple(state_labels)
        action_labels = tuple(range(A)) if action_labels is None else tuple(action_labels)
        if len(state_labels) != S or len(action_labels) != A:
            raise ValueError(f"expected {S} state labels and {A} action labels, got "
                             f"{len(state_labels)} and {len(action_labels)}.")
        if shape is not None and int(np.prod(shape)) != S:
            raise ValueError(f"grid shape {shape} does not hold {S} states.")

        for arr in (P, R, terminal, allowed, initial):
            arr.flags.writeable = False  # an algorithm that writes into the model is a bug
        return cls(P, R, gamma, terminal, allowed, initial, state_labels, action_labels, name,
                   None if shape is None else tuple(shape))


# ---------------------------------------------------------------------------------------------
# Gridworlds (Examples 3.5 and 4.1)
# ---------------------------------------------------------------------------------------------

GRID_ACTIONS = ("up", "down", "right", "left")
_MOVES = np.array([(-1, 0), (1, 0), (0, 1), (0, -1)])  # (row, col) change of each action


def _grid_moves(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """For every cell (row-major index) and action: the next cell, and whether the move would
    have left the grid (the agent then stays where it is). -> next [S, 4] int, off [S, 4] bool"""
    r, c = np.divmod(np.arange(rows * cols), cols)  # [S]
    nr, nc = r[:, None] + _MOVES[:, 0], c[:, None] + _MOVES[:, 1]  # [S, 4]
    off = (nr < 0) | (nr >= rows) | (nc < 0) | (nc >= cols)
    nxt = np.where(off, r[:, None] * cols + c[:, None], nr * cols + nc)
    return nxt, off


def gridworld_5x5(gamma: float = 0.9) -> FiniteMDP:
    """Example 3.5 (Figures 3.2 and 3.5): a continuing 5x5 grid, states numbered row-major from
    the top-left cell. From A = (0, 1) every action moves to A' = (4, 1) with reward +10; from
    B = (0, 3) to B' = (2, 3) with +5. A move off the grid leaves the state unchanged, reward -1;
    every other move pays 0."""
    rows = cols = 5
    nxt, off = _grid_moves(rows, cols)
    R = np.where(off, -1.0, 0.0)  # [S, 4]
    for (sr, sc), (tr, tc), reward in [((0, 1), (4, 1), 10.0), ((0, 3), (2, 3), 5.0)]:
        nxt[sr * cols + sc] = tr * cols + tc
        R[sr * cols + sc] = reward
    P = np.zeros((rows * cols, 4, rows * cols))
    np.put_along_axis(P, nxt[:, :, None], 1.0, axis=2)
    labels = [f"({r},{c})" for r in range(rows) for c in range(cols)]
    return FiniteMDP.build(P, R, gamma, state_labels=labels, action_labels=GRID_ACTIONS,
                           name="gridworld 5x5 (Example 3.5)", shape=(rows, cols))


def gridworld_4x4(gamma: float = 1.0) -> FiniteMDP:
    """Example 4.1 (Figure 4.1): an episodic 4x4 grid, states 0..15 row-major; the corner cells
    0 and 15 are terminal (the book draws one terminal state twice). Every move from a
    non-terminal cell pays -1; a move off the grid leaves the state unchanged."""
    rows = cols = 4
    nxt, _ = _grid_moves(rows, cols)
    terminal = np.zeros(rows * cols, dtype=bool)
    terminal[[0, rows * cols - 1]] = True
    nxt[terminal] = np.flatnonzero(terminal)[:, None]  # absorbing
    R = np.where(terminal[:, None], 0.0, -1.0) * np.ones((1, 4))
    P = np.zeros((rows * cols, 4, rows * cols))
    np.put_along_axis(P, nxt[:, :, None], 1.0, axis=2)
    return FiniteMDP.build(P, R, gamma, terminal=terminal, action_labels=GRID_ACTIONS,
                           name="gridworld 4x4 (Example 4.1)", shape=(rows, cols))


# ---------------------------------------------------------------------------------------------
# The gambler's problem (Example 4.3)
# ---------------------------------------------------------------------------------------------


def gamblers_problem(p_heads: float = 0.4, goal: int = 100) -> FiniteMDP:
    """Example 4.3 (Figure 4.3). State s = capital 0..goal; action a = stake 0..goal // 2, allowed
    when 1 <= a <= min(s, goal - s). Heads (probability p_heads) wins the stake, tails loses it.
    Reaching the goal pays +1 and ends the episode; so does losing everything (reward 0). gamma = 1,
    so v*(s) is the probability of reaching the goal from s.

    The book also lists the stake 0. It never changes the state, so with gamma = 1 its value equals
    v(s) and it ties with the best stake in every state; we leave it out (a[0] is allowed only in
    the terminal states, where every action is an absorbing self-loop).
    """
    if not 0.0 < p_heads < 1.0:
        raise ValueError(f"p_heads must be in (0, 1), got {p_heads}.")
    if goal < 2:
        raise ValueError(f"goal must be at least 2, got {goal}.")
    S, A = goal + 1, goal // 2 + 1
    s = np.arange(S)[:, None]  # [S, 1]
    a = np.arange(A)[None, :]  # [1, A]
    terminal = np.zeros(S, dtype=bool)
    terminal[[0, goal]] = True
    allowed = (a >= 1) & (a <= np.minimum(s, goal - s))  # [S, A]
    allowed[terminal] = True
    # Forbidden stakes are placeholders: make them self-loops with no reward.
    win = np.where(allowed & ~terminal[:, None], s + a, s)  # [S, A]
    lose = np.where(allowed & ~terminal[:, None], s - a, s)
    rows, cols = np.indices((S, A))
    P = np.zeros((S, A, S))
    np.add.at(P, (rows, cols, win), p_heads)
    np.add.at(P, (rows, cols, lose), 1.0 - p_heads)
    R = p_heads * (win == goal) * ~terminal[:, None]  # +1 on the winning flip that reaches the goal
    return FiniteMDP.build(P, R, 1.0, terminal=terminal, allowed=allowed,
                           action_labels=[f"stake {k}" for k in range(A)],
                           name=f"gambler's problem (Example 4.3, p_h = {p_heads:g})")


# ---------------------------------------------------------------------------------------------
# Jack's car rental (Example 4.2)
# ---------------------------------------------------------------------------------------------


def _poisson_pmf_with_tail(lam: float, n: int) -> np.ndarray:
    """Pr(X = 0..n-1) and Pr(X >= n) for X ~ Poisson(lam), [n + 1]; sums to 1."""
    pmf = _scipy_stats.poisson.pmf(np.arange(n), lam)
    return np.append(pmf, max(1.0 - pmf.sum(), 0.0))


def _rental_site(lam_requests: float, lam_returns: float, max_cars: int) -> tuple[np.ndarray, np.ndarray]:
    """One location over one day, starting with n cars (after the night's moves).

    Requests ~ Poisson(lam_requests); rented = min(requests, n). Returns ~ Poisson(lam_returns)
    arrive at the end of the day (available tomorrow); cars beyond max_cars vanish.
    -> T [n, n'] day-transition matrix, [max_cars + 1]^2, and expected rentals [max_cars + 1].
    """
    M = max_cars + 1
    T = np.zeros((M, M))
    expected_rented = np.zeros(M)
    for n in range(M):
        p_rent = _poisson_pmf_with_tail(lam_requests, n)  # rented = 0..n, the tail lumps requests >= n
        expected_rented[n] = p_rent @ np.arange(n + 1)
        for rented, p in enumerate(p_rent):
            left = n - rented
            p_ret = _poisson_pmf_with_tail(lam_returns, max_cars - left)  # returned 0..(room), tail = full
            T[n, left:] += p * p_ret
    return T, expected_rented


def jacks_car_rental(
    max_cars: int = 20,
    max_move: int = 5,
    rent_reward: float = 10.0,
    move_cost: float = 2.0,
    lam_requests: tuple[float, float] = (3.0, 4.0),
    lam_returns: tuple[float, float] = (3.0, 2.0),
    gamma: float = 0.9,
) -> FiniteMDP:
    """Example 4.2 (Figure 4.2). State (n1, n2): cars at each location at the end of a day,
    index n1 * (max_cars + 1) + n2. Action m in -max_move..max_move, index m + max_move: cars moved
    overnight from location 1 to 2 (negative: from 2 to 1), allowed when the giving location has
    them. Each car moved costs move_cost, each car rented earns rent_reward. Requests and returns
    are Poisson with the book's means; a location never holds more than max_cars (extra cars,
    moved or returned, vanish). Full Poisson tails are kept, so every P[s, a] sums to 1 exactly.

    The two locations are independent given the morning counts, so P[s, a] is the outer product
    of two per-location day transitions: P has (21 * 21) x 11 x (21 * 21) entries, built at once.
    """
    M = max_cars + 1
    T1, rented1 = _rental_site(lam_requests[0], lam_returns[0], max_cars)
    T2, rented2 = _rental_site(lam_requests[1], lam_returns[1], max_cars)
    n1, n2 = np.divmod(np.arange(M * M), M)  # [S] cars at each location
    moves = np.arange(-max_move, max_move + 1)  # [A]
    allowed = (moves[None, :] <= n1[:, None]) & (-moves[None, :] <= n2[:, None])  # [S, A]
    # Morning counts after the moves (forbidden moves are clipped: placeholders, never used).
    m1 = np.clip(n1[:, None] - moves[None, :], 0, max_cars)  # [S, A]
    m2 = np.clip(n2[:, None] + moves[None, :], 0, max_cars)
    P = (T1[m1][:, :, :, None] * T2[m2][:, :, None, :]).reshape(M * M, moves.size, M * M)  # [S, A, S]
    R = rent_reward * (rented1[m1] + rented2[m2]) - move_cost * np.abs(moves)[None, :]
    labels = [(int(a), int(b)) for a, b in zip(n1, n2)]
    return FiniteMDP.build(P, R, gamma, allowed=allowed, state_labels=labels,
                           action_labels=[int(m) for m in moves], name="Jack's car rental (Example 4.2)",
                           shape=(M, M))


# ---------------------------------------------------------------------------------------------
# Gymnasium toy-text environments
# ---------------------------------------------------------------------------------------------


def from_gymnasium(env: Any, gamma: float = 0.99, name: str | None = None) -> FiniteMDP:
    """Convert a Gymnasium toy-text environment (FrozenLake, CliffWalking, Taxi) into a FiniteMDP
    through its transition table `env.unwrapped.P`, where

        P[s][a] = [(probability, next_state, reward, terminated), ...].

    A transition with terminated = True enters a terminal state: those states become absorbing
    with zero reward here (Gymnasium never steps from them, whatever its table lists), so their
    value is 0. The time limit (FrozenLake-v1: 100 steps) is not part of the table: DP plans for
    an unlimited horizon, discounted by gamma.
    """
    base = getattr(env, "unwrapped", env)
    table = getattr(base, "P", None)
    if not isinstance(table, dict):
        raise ValueError("the environment has no transition table env.unwrapped.P; only toy-text "
                         "environments (FrozenLake, CliffWalking, Taxi) expose one.")
    S, A = base.observation_space.n, base.action_space.n
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    ends_in = np.zeros(S, dtype=bool)  # entered by a terminating transition
    continues_in = np.zeros(S, dtype=bool)  # entered by a non-terminating transition
    for s in range(S):
        for a in range(A):
            for prob, s_next, reward, terminated in table[s][a]:
                P[s, a, int(s_next)] += prob
                R[s, a] += prob * reward
                (ends_in if terminated else continues_in)[int(s_next)] = True
    both = ends_in & continues_in
    if both.any():
        raise ValueError(f"state {int(np.argmax(both))} is entered both by terminating and by continuing "
                         "transitions; it cannot be made a terminal state.")
    P[ends_in] = 0.0
    P[ends_in, :, ends_in.nonzero()[0]] = 1.0  # absorbing: P[t, a, t] = 1 for every action
    R[ends_in] = 0.0
    initial = getattr(base, "initial_state_distrib", None)
    shape = getattr(base, "desc", None)
    return FiniteMDP.build(P, R, gamma, terminal=ends_in, initial=initial,
                           name=name or (env.spec.id if getattr(env, "spec", None) else type(base).__name__),
                           shape=None if shape is None else np.asarray(shape).shape)


# ---------------------------------------------------------------------------------------------
# Random MDPs (for tests and checks)
# ---------------------------------------------------------------------------------------------


def random_mdp(
    n_states: int,
    n_actions: int,
    rng: np.random.Generator,
    *,
    gamma: float = 0.9,
    n_terminal: int = 0,
    p_forbidden: float = 0.0,
    branching: int | None = None,
) -> FiniteMDP:
    """A random MDP: each P[s, a] is a random distribution over `branching` next states (all
    states when None), rewards ~ N(0, 1). The last n_terminal states are terminal. Each action is
    forbidden with probability p_forbidden (at least one stays allowed in every state); forbidden
    actions get a large reward (+10), so code that ignores `allowed` shows it.
    """
    S, A = n_states, n_actions
    if not 0 <= n_terminal < S:
        raise ValueError(f"n_terminal must be in [0, {S - 1}], got {n_terminal}.")
    k = S if branching is None else int(branching)
    if not 1 <= k <= S:
        raise ValueError(f"branching must be in [1, {S}], got {branching}.")
    P = np.zeros((S, A, S))
    targets = np.argsort(rng.random((S, A, S)), axis=2)[:, :, :k]  # k distinct next states per (s, a)
    weights = rng.dirichlet(np.ones(k), size=(S, A))  # [S, A, k]
    np.put_along_axis(P, targets, weights, axis=2)
    P /= P.sum(axis=2, keepdims=True)  # exact normalisation after the float sums
    R = rng.normal(size=(S, A))
    allowed = rng.random((S, A)) >= p_forbidden
    allowed[np.arange(S), rng.integers(A, size=S)] = True  # at least one action per state
    R = np.where(allowed, R, 10.0)
    terminal = np.zeros(S, dtype=bool)
    if n_terminal:
        terminal[S - n_terminal:] = True
        P[terminal] = 0.0
        P[terminal, :, np.flatnonzero(terminal)] = 1.0
        R[terminal] = 0.0
        allowed[terminal] = True
    return FiniteMDP.build(P, R, gamma, terminal=terminal, allowed=allowed, name=f"random MDP ({S}x{A})")
