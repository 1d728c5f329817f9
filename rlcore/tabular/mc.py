"""Monte Carlo methods (Sutton & Barto, 2nd ed., chapter 5) for any tabular task.

Monte Carlo methods learn from complete episodes: the value of a state is the average of the
returns that followed visits to it. No model of the environment is needed, only episodes.

An episode is a triple (states [T], actions [T], rewards [T]): states[t] = S_t, actions[t] = A_t,
rewards[t] = R_{t+1}, the reward that followed A_t. The terminal state is not stored (its value
is 0 by definition). Many episodes travel together as an `Episodes` batch: the steps of all
episodes laid end to end in flat arrays, plus the offsets where each episode starts, so methods
can work on all of them with array operations:

    states, actions, rewards [M]   M = total number of steps
    offsets [E + 1]                episode i is the slice offsets[i]:offsets[i + 1]

An `Episodes` batch is also a sequence of (states, actions, rewards) triples: `len(episodes)`,
`episodes[i]`, `for states, actions, rewards in episodes`. Every function here accepts either an
`Episodes` batch or a plain list of triples.

Sections: the Episodes batch -> returns -> prediction -> control with exploring starts ->
off-policy prediction by importance sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

# ---------------------------------------------------------------------------------------------
# A batch of episodes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episodes:
    """Episodes laid end to end: states, actions [M] int, rewards [M] float, offsets [E + 1] int."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    offsets: np.ndarray

    def __post_init__(self):
        m = self.states.shape[0]
        if self.actions.shape != (m,) or self.rewards.shape != (m,) or self.states.ndim != 1:
            raise ValueError(f"states, actions and rewards must be 1-D of one length, got shapes "
                             f"{self.states.shape}, {self.actions.shape}, {self.rewards.shape}")
        if self.offsets.ndim != 1 or self.offsets.size < 1 or self.offsets[0] != 0 or self.offsets[-1] != m:
            raise ValueError(f"offsets must run from 0 to the number of steps ({m}), got {self.offsets[:3]}...")
        if np.any(np.diff(self.offsets) < 1):
            raise ValueError("every episode needs at least one step")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_list(cls, episodes: Iterable[tuple[Sequence, Sequence, Sequence]]) -> "Episodes":
        """From (states [T], actions [T], rewards [T]) triples."""
        episodes = list(episodes)
        lengths = []
        for i, ep in enumerate(episodes):
            if len(ep) != 3:
                raise ValueError(f"episode {i} is not a (states, actions, rewards) triple")
            if not len(ep[0]) == len(ep[1]) == len(ep[2]):
                raise ValueError(f"episode {i}: states, actions and rewards have lengths "
                                 f"{len(ep[0])}, {len(ep[1])}, {len(ep[2])}; they must be equal")
            lengths.append(len(ep[0]))
        if not episodes:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty.copy(), np.zeros(0), np.zeros(1, dtype=np.int64))
        cat = lambda k, dtype: np.concatenate([np.asarray(ep[k], dtype=dtype).reshape(-1) for ep in episodes])
        return cls(cat(0, np.int64), cat(1, np.int64), cat(2, float),
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    @classmethod
    def from_padded(cls, states: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> "Episodes":
        """From time-major padded arrays [T, E] where states < 0 marks the steps after an episode ended."""
        valid = (states >= 0).T  # [E, T]: episode-major, so the flat order is episode by episode
        lengths = valid.sum(axis=1)
        return cls(states.T[valid], actions.T[valid], rewards.T[valid].astype(float),
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    @classmethod
    def coerce(cls, episodes) -> "Episodes":
        """An Episodes batch as is; a list of triples converted."""
        return episodes if isinstance(episodes, cls) else cls.from_list(episodes)

    # -- sequence of triples --------------------------------------------------------------------

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, i):
        """episodes[i] -> (states, actions, rewards) of episode i (views); episodes[a:b] -> Episodes."""
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                raise ValueError("only contiguous slices of episodes are supported")
            stop = max(stop, start)
            lo, hi = self.offsets[start], self.offsets[stop]
            return Episodes(self.states[lo:hi], self.actions[lo:hi], self.rewards[lo:hi], self.offsets[start:stop + 1] - lo)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"episode {i} of {n}")
        i %= n
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.states[lo:hi], self.actions[lo:hi], self.rewards[lo:hi]

    def __iter__(self):
        bounds = self.offsets.tolist()
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            yield self.states[lo:hi], self.actions[lo:hi], self.rewards[lo:hi]

    # -- per-step bookkeeping -------------------------------------------------------------------

    @property
    def lengths(self) -> np.ndarray:
        """Steps per episode [E]."""
        return np.diff(self.offsets)

    @property
    def episode_of_step(self) -> np.ndarray:
        """Which episode each step belongs to [M]."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def returns(self, gamma: float = 1.0) -> np.ndarray:
        """G_t for every step [M]: the discounted sum of the rewards from that step to the end
        of its episode, G_t = R_{t+1} + gamma * G_{t+1} (G = 0 after the last step)."""
        return returns_per_step(self, gamma)


# ---------------------------------------------------------------------------------------------
# Returns
# ---------------------------------------------------------------------------------------------


def returns_per_step(episodes, gamma: float = 1.0) -> np.ndarray:
    """G_t for every step of every episode, flat [M] (see Episodes).

    Vectorized over episodes: the steps that are k steps before their episode's end are computed
    together, for k = 0, 1, ..., so there are as many numpy calls as the longest episode has steps.
    """
    ep = Episodes.coerce(episodes)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    G = np.zeros(ep.rewards.size)
    if G.size == 0:
        return G
    to_end = np.repeat(ep.offsets[1:], ep.lengths) - np.arange(G.size) - 1  # [M]: steps left after this one
    order = np.argsort(to_end, kind="stable")
    bounds = np.searchsorted(to_end[order], np.arange(to_end.max() + 2))
    for k in range(to_end.max() + 1):
        idx = order[bounds[k]:bounds[k + 1]]  # steps with k steps after them
        G[idx] = ep.rewards[idx] + (gamma * G[idx + 1] if k > 0 else 0.0)
    return G


def episode_returns(episodes, gamma: float = 1.0) -> np.ndarray:
    """The return of each whole episode, G_0 [E]."""
    ep = Episodes.coerce(episodes)
    return returns_per_step(ep, gamma)[ep.offsets[:-1]]


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------


def _check_states(ep: Episodes, n_states: int, n_actions: int | None = None) -> None:
    if ep.states.size and (ep.states.min() < 0 or ep.states.max() >= n_states):
        raise ValueError(f"states must be 0..{n_states - 1}, got values {ep.states.min()}..{ep.states.max()}")
    if n_actions is not None and ep.actions.size and (ep.actions.min() < 0 or ep.actions.max() >= n_actions):
        raise ValueError(f"actions must be 0..{n_actions - 1}, got values {ep.actions.min()}..{ep.actions.max()}")
    if not np.all(np.isfinite(ep.rewards)):
        raise ValueError("rewards contain NaN or infinite values")


def first_visit_mask(episodes, n_states: int) -> np.ndarray:
    """[M] bool: True where a step is the first visit to its state within its episode."""
    ep = Episodes.coerce(episodes)
    key = ep.episode_of_step * n_states + ep.states  # one key per (episode, state)
    mask = np.zeros(ep.states.size, dtype=bool)
    mask[np.unique(key, return_index=True)[1]] = True  # unique returns the first index of each key
    return mask


def mc_prediction(episodes, n_states: int, gamma: float = 1.0, first_visit: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo prediction of v_pi from episodes generated by pi (book section 5.1).

    V(s) is the average of the returns that followed visits to s: the first visit of each
    episode (first_visit=True), or every visit. States never visited keep V = 0.

    episodes: Episodes or a list of (states, actions, rewards) triples; n_states: the number of states.
    -> (V [n_states] float, N [n_states] int: the number of returns averaged per state)
    """
    ep = Episodes.coerce(episodes)
    _check_states(ep, n_states)
    G = returns_per_step(ep, gamma)  # [M]
    used = first_visit_mask(ep, n_states) if first_visit else np.ones(G.size, dtype=bool)
    N = np.bincount(ep.states[used], minlength=n_states)
    total = np.bincount(ep.states[used], weights=G[used], minlength=n_states)
    V = np.divide(total, N, out=np.zeros(n_states), where=N > 0)
    return V, N


# ---------------------------------------------------------------------------------------------
# Control: Monte Carlo with exploring starts
# ---------------------------------------------------------------------------------------------


def mc_es(
    generate_episode: Callable[[int, int, np.ndarray], tuple[Sequence, Sequence, Sequence]],
    n_episodes: int,
    rng: np.random.Generator,
    *,
    start_states: np.ndarray,
    n_states: int,
    n_actions: int = 2,
    initial_policy: np.ndarray | None = None,
    gamma: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo control with exploring starts, first-visit, sample averages (book section 5.3).

    Each episode starts from a state drawn uniformly from `start_states` and an action drawn
    uniformly from all actions, then follows the current greedy policy. After the episode, every
    first-visited (state, action) pair moves its Q to the average of its returns so far, and the
    policy at that state becomes greedy (ties to the lower action number).

    generate_episode(start_state, start_action, policy [n_states] int) -> (states, actions, rewards).
    initial_policy: [n_states] int (default: action 0 everywhere).
    -> (Q [n_states, n_actions], policy [n_states] int)
    """
    if n_episodes < 0:
        raise ValueError(f"n_episodes must be >= 0, got {n_episodes}")
    start_states = np.asarray(start_states)
    Q = np.zeros((n_states, n_actions))
    N = np.zeros((n_states, n_actions), dtype=np.int64)
    policy = np.zeros(n_states, dtype=np.int64) if initial_policy is None else np.array(initial_policy, dtype=np.int64)
    # The exploring starts, drawn up front: a state and an action for every episode.
    starts = rng.choice(start_states, size=n_episodes).tolist()
    first_actions = rng.integers(n_actions, size=n_episodes).tolist()
    for s0, a0 in zip(starts, first_actions):
        states, actions, rewards = generate_episode(s0, a0, policy)
        first = {}
        for t, pair in enumerate(zip(states, actions)):
            first.setdefault(pair, t)
        G = 0.0
        for t in range(len(states) - 1, -1, -1):
            G = gamma * G + rewards[t]
            s, a = states[t], actions[t]
            if first[s, a] != t:
                continue  # not the first visit of (s, a) in this episode
            N[s, a] += 1
            Q[s, a] += (G - Q[s, a]) / N[s, a]
            policy[s] = int(np.argmax(Q[s]))
    return Q, policy


# ---------------------------------------------------------------------------------------------
# Off-policy prediction by importance sampling
# ---------------------------------------------------------------------------------------------


def importance_ratios(episodes, target: np.ndarray, behavior: np.ndarray) -> np.ndarray:
    """rho = prod_t target(A_t | S_t) / behavior(A_t | S_t) over each whole episode [E] (eq. 5.3).

    target, behavior: action probabilities [n_states, n_actions]. The behavior must give every
    action the episodes took a nonzero probability (it generated them)."""
    ep = Episodes.coerce(episodes)
    target, behavior = np.asarray(target, dtype=float), np.asarray(behavior, dtype=float)
    if target.shape != behavior.shape or target.ndim != 2:
        raise ValueError(f"target and behavior must be [n_states, n_actions] of one shape, got "
                         f"{target.shape} and {behavior.shape}")
    _check_states(ep, target.shape[0], target.shape[1])
    b = behavior[ep.states, ep.actions]  # [M]
    if np.any(b <= 0):
        raise ValueError("an episode took an action its behavior policy gives probability 0")
    step_ratio = target[ep.states, ep.actions] / b  # [M]
    if len(ep) == 0:
        return np.zeros(0)
    return np.multiply.reduceat(step_ratio, ep.offsets[:-1])


def off_policy_estimates(episodes, target: np.ndarray, behavior: np.ndarray, gamma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary and weighted importance-sampling estimates of v_target(s0) after each episode
    (book eqs. 5.5 and 5.6), from episodes that all start in s0 and follow `behavior`.

    With X_i = rho_i * G_i (the i-th episode's ratio times its return):
        ordinary[k] = (X_1 + ... + X_k) / k
        weighted[k] = (X_1 + ... + X_k) / (rho_1 + ... + rho_k), and 0 while the denominator is 0.

    -> (ordinary [E], weighted [E]); entry k - 1 is the estimate after k episodes.
    """
    ep = Episodes.coerce(episodes)
    rho = importance_ratios(ep, target, behavior)  # [E]
    G = episode_returns(ep, gamma)  # [E]
    numerator = np.cumsum(rho * G)
    ordinary = numerator / np.arange(1, rho.size + 1)
    denominator = np.cumsum(rho)
    weighted = np.divide(numerator, denominator, out=np.zeros(rho.size), where=denominator > 0)
    return ordinary, weighted
