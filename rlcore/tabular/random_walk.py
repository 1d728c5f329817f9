"""The random walk of Sutton & Barto (Example 6.2, Example 7.1): the testbed of TD prediction.

A row of n non-terminal states between two terminal ones, numbered

    0 (left terminal) | 1  2  ...  n | n + 1 (right terminal)

Every episode starts in the middle state, n // 2 + 1 (state C = 3 of the 5-state walk), and each
step moves one state left or right with probability 1/2, whatever the agent does: the walk has no
actions, so it is a Markov reward process and the right testbed for *prediction* (estimating v_pi).
Entering the right terminal pays `right_reward`, entering the left one `left_reward`, every other
step pays 0.

    RandomWalk(5)                      Example 6.2: true values 1/6, 2/6, ..., 5/6
    RandomWalk(19, left_reward=-1.0)   Example 7.1: true values -18/20, -16/20, ..., 18/20

Shapes in this module (one episode of L steps):

    states   [L + 1] int    S_0 = start, ..., S_L = a terminal state (0 or n + 1)
    rewards  [L]     float  rewards[t] is R_{t+1}, the reward for the step S_t -> S_{t+1}

So a value table for the walk has n + 2 entries, V[0] and V[n + 1] (the terminals) being 0, and
V[states[t]] is the estimate of the state the walker is in at step t. `true_values` returns only
the n non-terminal values, for states 1..n.
"""

from __future__ import annotations

import numpy as np

# Steps are drawn in chunks: one numpy call per CHUNK steps instead of one per step. Most episodes
# of the 5-state walk are shorter than 16 steps; longer ones take another chunk.
_CHUNK = 16


def _check_generator(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy Generator, got {type(rng).__name__}. Create one with "
            "rng = np.random.default_rng(seed) and pass the same generator to every call, so that "
            "episodes differ from each other and the whole experiment is reproducible from `seed`."
        )
    return rng


class RandomWalk:
    """Sutton & Barto's random walk: non-terminal states 1..n_states, terminals 0 and n_states + 1,
    start in the middle (n_states // 2 + 1), each step moves left or right with probability 1/2.
    Reward right_reward on entering the right terminal, left_reward on entering the left one,
    0 otherwise."""

    def __init__(self, n_states: int = 5, left_reward: float = 0.0, right_reward: float = 1.0):
        if isinstance(n_states, bool) or not isinstance(n_states, (int, np.integer)) or n_states < 1:
            raise ValueError(f"n_states must be a positive integer (5 for Example 6.2, 19 for Example 7.1), "
                             f"got {n_states!r}.")
        rewards = []
        for name, value in (("left_reward", left_reward), ("right_reward", right_reward)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {value!r}.") from None
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}.")
            rewards.append(value)
        self.n_states: int = int(n_states)
        self.left_reward, self.right_reward = rewards
        self.start: int = self.n_states // 2 + 1
        self.left_terminal: int = 0
        self.right_terminal: int = self.n_states + 1

    def __repr__(self) -> str:
        return (f"RandomWalk(n_states={self.n_states}, left_reward={self.left_reward:g}, "
                f"right_reward={self.right_reward:g})")

    # -- values ---------------------------------------------------------------------------------

    def true_values(self, gamma: float = 1.0) -> np.ndarray:
        """v(s) for s = 1..n_states under the random policy, [n_states] float.

        Bellman's equation for the walk, v(s) = 1/2 (r_left(s) + gamma v(s - 1)) + 1/2 (r_right(s) +
        gamma v(s + 1)) with v = 0 at the terminals, is a tridiagonal linear system; it is solved
        directly. With gamma = 1 the answer is the straight line from left_reward to right_reward:
        v(s) = left_reward + (right_reward - left_reward) * s / (n_states + 1).
        """
        try:
            g = float(gamma)
        except (TypeError, ValueError):
            raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}.") from None
        if not 0.0 <= g <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}.")
        n = self.n_states
        A = np.eye(n)  # [n, n]: (I - gamma P) restricted to the non-terminal states
        idx = np.arange(n - 1)
        A[idx, idx + 1] -= g / 2
        A[idx + 1, idx] -= g / 2
        b = np.zeros(n)  # expected immediate reward from each state
        b[0] += self.left_reward / 2
        b[-1] += self.right_reward / 2
        return np.linalg.solve(A, b)

    # -- episodes -------------------------------------------------------------------------------

    def episode(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One episode: states [L+1] int (from start, ending with the terminal), rewards [L] float."""
        rng = _check_generator(rng)
        right = self.right_terminal
        pieces = [np.array([self.start])]
        position = self.start
        while True:
            path = position + np.cumsum(rng.integers(0, 2, size=_CHUNK) * 2 - 1)  # [CHUNK] next states
            ended = (path <= 0) | (path >= right)
            if ended.any():
                end = int(ended.argmax())  # the first step that enters a terminal
                pieces.append(path[: end + 1])
                break
            pieces.append(path)
            position = int(path[-1])
        states = np.concatenate(pieces).astype(np.int64)  # [L + 1]
        rewards = np.zeros(states.size - 1)  # [L]
        rewards[-1] = self.right_reward if states[-1] == right else self.left_reward
        return states, rewards

    def episodes(self, n_runs: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        """`n_runs` independent episodes, as a list of (states [L_i + 1], rewards [L_i])."""
        rng = _check_generator(rng)
        return [self.episode(rng) for _ in range(int(n_runs))]

    def padded_episodes(self, n_episodes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`n_episodes` independent episodes simulated side by side, already padded (see `pad`):
        one numpy call per time step for all of them instead of a Python loop over episodes.

        -> states [N, L_max + 1] int, rewards [N, L_max] float, lengths [N] int
        (the same distribution as `episode`, drawn in a different order from `rng`)
        """
        rng = _check_generator(rng)
        n = int(n_episodes)
        position = np.full(n, self.start, dtype=np.int64)
        lengths = np.zeros(n, dtype=np.int64)
        path = [position.copy()]
        live = np.ones(n, dtype=bool)
        while live.any():
            step = rng.integers(0, 2, size=n) * 2 - 1  # [N] +-1
            position = np.where(live, position + step, position)  # finished walks stay put
            lengths += live
            path.append(position.copy())
            live &= (position > 0) & (position < self.right_terminal)
        states = np.stack(path, axis=1)  # [N, L_max + 1]
        rewards = np.zeros((n, states.shape[1] - 1))
        last = np.arange(n), lengths - 1
        rewards[last] = np.where(states[np.arange(n), lengths] == self.right_terminal,
                                 self.right_reward, self.left_reward)
        return states, rewards, lengths

    @staticmethod
    def pad(episodes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stack episodes of different lengths into rectangular arrays, for updates vectorized
        over episodes (one numpy call per time step for all of them).

        episodes: N pairs (states [L_i + 1], rewards [L_i]) ->
            states [N, L_max + 1] int   each row continues with its terminal state after it ends
            rewards [N, L_max] float    0 after the end
            lengths [N] int             L_i; step t of row i is real when t < lengths[i]
        """
        lengths = np.array([r.size for _, r in episodes], dtype=np.int64)  # [N]
        longest = int(lengths.max()) if lengths.size else 0
        states = np.empty((len(episodes), longest + 1), dtype=np.int64)
        rewards = np.zeros((len(episodes), longest))
        for i, (s, r) in enumerate(episodes):
            states[i, : s.size] = s
            states[i, s.size :] = s[-1]  # stay in the terminal state
            rewards[i, : r.size] = r
        return states, rewards, lengths
