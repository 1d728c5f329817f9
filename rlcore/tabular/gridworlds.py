"""The book's small control problems as tables, and a vectorized environment that runs R
independent copies of one of them (Sutton & Barto, 2nd ed., chapter 6).

    cliff_walking()        Example 6.6 (Figure 6.4): 4 x 12 grid, falling off the cliff costs -100
                           and sends the agent back to the start; the episode goes on.
    windy_gridworld()      Example 6.5: 7 x 10 grid, an upward wind in the middle columns.
    maximization_bias()    Example 6.7 (Figure 6.5): A -> right ends the episode, A -> left leads to
                           B, whose 10 actions all end it with a reward drawn from N(-0.1, 1).

Every problem is a `TabularMDP`: deterministic transitions `next_state[s, a]` and rewards with a
mean and a standard deviation per (s, a) (0 except in the maximization-bias MDP). Grid states are
numbered row-major, `state = row * n_cols + col`, row 0 at the top, and the four moves are numbered
as in Gymnasium's CliffWalking-v1:

    UP = 0, RIGHT = 1, DOWN = 2, LEFT = 3

A move off the grid leaves the agent where it is (and still costs the step's reward).

`VecEnv(mdp, n_runs, rng)` steps R copies at once, [R] arrays in and out, like every vectorized
loop of the course. It resets an episode that ends *in the same step* ("same-step autoreset"):
`step` returns terminated[r] = True and, in next_states[r], the start state of run r's next
episode. The terminal state itself is never returned: the TD target of a terminal transition does
not use it (there is nothing after the end), so the agent needs only the flag. The environment,
not the agent, records what the grader and the figures use: each episode's return and length,
and the first action of each episode.

There is no time limit, as in the book: an episode runs until it reaches the goal. Since a policy
that never reaches the goal would never stop, `VecEnv` takes an optional `max_total_steps`, a safety
cap on the number of vector steps that raises an error when it is exceeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVES = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}
MOVE_NAMES = ("up", "right", "down", "left")


@dataclass(frozen=True)
class TabularMDP:
    """An episodic MDP with deterministic transitions, given as tables.

    next_state [S, A] int      where action a leads from state s
    reward     [S, A] float    mean reward of that step
    reward_sd  [S, A] float    its standard deviation (rewards are Normal; 0 means deterministic)
    terminal   [S] bool        states in which an episode ends
    n_valid    [S] int         actions 0 .. n_valid[s] - 1 exist in s (all A of them in a grid)
    start      int             the state every episode starts in
    shape      (rows, cols) for a grid (state = row * cols + col), None otherwise
    info       named states and layout details (goal, cliff cells, wind, ...)
    """

    name: str
    next_state: np.ndarray
    reward: np.ndarray
    reward_sd: np.ndarray
    terminal: np.ndarray
    n_valid: np.ndarray
    start: int
    shape: tuple[int, int] | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_states(self) -> int:
        return self.next_state.shape[0]

    @property
    def n_actions(self) -> int:
        return self.next_state.shape[1]

    @property
    def stochastic_rewards(self) -> bool:
        return bool(np.any(self.reward_sd > 0))

    @property
    def masked(self) -> bool:
        """True when some state has fewer than n_actions actions."""
        return bool(np.any(self.n_valid < self.n_actions))

    def valid(self, states) -> np.ndarray:
        """Which actions exist in each of `states` [R]: a bool mask [R, A]."""
        return np.arange(self.n_actions) < self.n_valid[np.asarray(states)][..., None]

    def position(self, state: int) -> tuple[int, int]:
        """(row, col) of a grid state."""
        if self.shape is None:
            raise ValueError(f"{self.name} is not a grid")
        return divmod(int(state), self.shape[1])


def _grid(name: str, rows: int, cols: int, start: tuple[int, int], goal: tuple[int, int],
          wind=None, cliff=(), cliff_reward: float = -100.0, step_reward: float = -1.0,
          info: dict | None = None) -> TabularMDP:
    """A grid with the four moves; `wind[col]` pushes the agent up by that many rows, using the
    column it moves *from*; entering a `cliff` cell costs `cliff_reward` and returns to `start`."""
    n_states = rows * cols
    wind = np.zeros(cols, dtype=int) if wind is None else np.asarray(wind, dtype=int)
    next_state = np.empty((n_states, 4), dtype=np.int64)
    reward = np.full((n_states, 4), step_reward)
    start_state = start[0] * cols + start[1]
    goal_state = goal[0] * cols + goal[1]
    cliff_states = {r * cols + c for r, c in cliff}
    for s in range(n_states):
        r, c = divmod(s, cols)
        for a, (dr, dc) in MOVES.items():
            nr = min(max(r + dr - wind[c], 0), rows - 1)
            nc = min(max(c + dc, 0), cols - 1)
            nxt = nr * cols + nc
            if nxt in cliff_states:
                nxt, reward[s, a] = start_state, cliff_reward
            next_state[s, a] = nxt
    terminal = np.zeros(n_states, dtype=bool)
    terminal[goal_state] = True
    return TabularMDP(
        name=name, next_state=next_state, reward=reward, reward_sd=np.zeros((n_states, 4)),
        terminal=terminal, n_valid=np.full(n_states, 4), start=start_state, shape=(rows, cols),
        info={"goal": goal_state, **(info or {})},
    )


def cliff_walking() -> TabularMDP:
    """Example 6.6: a 4 x 12 grid, start bottom-left (state 36), goal bottom-right (state 47),
    the cliff is the bottom row between them (states 37..46). Reward -1 per step; a step into the
    cliff gives -100 and "sends the agent instantly back to the start" (the episode continues).
    Undiscounted. Identical to Gymnasium's CliffWalking-v1 with is_slippery=False (the default).
    """
    cliff = [(3, c) for c in range(1, 11)]
    return _grid("cliff walking (Example 6.6)", 4, 12, start=(3, 0), goal=(3, 11), cliff=cliff,
                 info={"cliff": [3 * 12 + c for c in range(1, 11)]})


WINDY_WIND = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)


def windy_gridworld() -> TabularMDP:
    """Example 6.5: a 7 x 10 grid, start (3, 0), goal (3, 7), reward -1 per step until the goal.
    The wind of the column the agent moves from, (0 0 0 1 1 1 2 2 1 0), shifts it up that many
    rows (never off the grid). The shortest path takes 15 steps."""
    return _grid("windy gridworld (Example 6.5)", 7, 10, start=(3, 0), goal=(3, 7), wind=WINDY_WIND,
                 info={"wind": list(WINDY_WIND), "shortest_path": 15})


# The maximization-bias MDP: state numbers follow the book's picture, left to right.
MAXBIAS_LEFT_END, MAXBIAS_B, MAXBIAS_A, MAXBIAS_RIGHT_END = 0, 1, 2, 3
MAXBIAS_LEFT, MAXBIAS_RIGHT = 0, 1  # the two actions in A


def maximization_bias(n_b_actions: int = 10, b_mean: float = -0.1, b_sd: float = 1.0) -> TabularMDP:
    """Example 6.7: episodes start in A. In A, `left` (action 0) leads to B and `right` (action 1)
    ends the episode, both with reward 0. Every action in B ends the episode with a reward drawn
    from N(b_mean, b_sd). The book does not say how many actions B has; 10 is the common choice.

    Going left is a mistake on average (its value is b_mean = -0.1 < 0), yet the largest of the
    noisy estimates of B's actions is positive early on, which lures Q-learning left.

    States: 0 = left end (terminal), 1 = B, 2 = A (start), 3 = right end (terminal). A has 2 actions,
    B has n_b_actions: tables have n_b_actions columns and `n_valid` says which exist.
    """
    if isinstance(n_b_actions, bool) or not isinstance(n_b_actions, (int, np.integer)) or n_b_actions < 2:
        raise ValueError(f"n_b_actions must be an integer >= 2, got {n_b_actions!r}.")
    n_actions = int(n_b_actions)
    next_state = np.zeros((4, n_actions), dtype=np.int64)
    next_state[MAXBIAS_B, :] = MAXBIAS_LEFT_END
    next_state[MAXBIAS_A, :] = MAXBIAS_A  # columns beyond A's two actions do not exist
    next_state[MAXBIAS_A, MAXBIAS_LEFT] = MAXBIAS_B
    next_state[MAXBIAS_A, MAXBIAS_RIGHT] = MAXBIAS_RIGHT_END
    next_state[MAXBIAS_LEFT_END, :] = MAXBIAS_LEFT_END
    next_state[MAXBIAS_RIGHT_END, :] = MAXBIAS_RIGHT_END
    reward = np.zeros((4, n_actions))
    reward_sd = np.zeros((4, n_actions))
    reward[MAXBIAS_B, :] = b_mean
    reward_sd[MAXBIAS_B, :] = b_sd
    terminal = np.array([True, False, False, True])
    n_valid = np.array([n_actions, n_actions, 2, n_actions])
    return TabularMDP(
        name="maximization bias (Example 6.7)", next_state=next_state, reward=reward, reward_sd=reward_sd,
        terminal=terminal, n_valid=n_valid, start=MAXBIAS_A,
        info={"A": MAXBIAS_A, "B": MAXBIAS_B, "left": MAXBIAS_LEFT, "right": MAXBIAS_RIGHT,
              "b_mean": b_mean, "b_sd": b_sd},
    )


# ---------------------------------------------------------------------------------------------
# The vectorized environment
# ---------------------------------------------------------------------------------------------


class VecEnv:
    """R independent copies of a TabularMDP, stepped together with same-step autoreset.

        env = VecEnv(cliff_walking(), n_runs=50, rng=np.random.default_rng(0))
        states = env.reset()                                 # [R] int, every run at the start
        next_states, rewards, terminated = env.step(actions) # [R] int, [R] float, [R] bool

    Where terminated[r] is True, run r just finished an episode and next_states[r] is already the
    start of its next one. `episodes_done` [R] counts finished episodes per run; a learning loop
    runs `while env.episodes_done.min() < n_episodes`. Runs that are ahead keep going: their extra
    episodes are recorded too, and the figures use the first n_episodes of every run.

    Recorded per run r and episode e (the environment keeps these, not the agent):
        returns(n) [R, n]   sum of rewards of each episode
        lengths(n) [R, n]   number of steps of each episode
        first_actions(n) [R, n]   the action taken in the start state (A in Figure 6.5)
    """

    def __init__(self, mdp: TabularMDP, n_runs: int, rng: np.random.Generator, *,
                 max_total_steps: int | None = None):
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp must be a TabularMDP (e.g. cliff_walking()), got {type(mdp).__name__}.")
        if isinstance(n_runs, bool) or not isinstance(n_runs, (int, np.integer)) or n_runs < 1:
            raise ValueError(f"n_runs must be a positive integer, got {n_runs!r}.")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}.")
        self.mdp = mdp
        self.n_runs = int(n_runs)
        self.n_states, self.n_actions = mdp.n_states, mdp.n_actions
        self.rng = rng
        self.max_total_steps = max_total_steps
        self._stochastic, self._masked = mdp.stochastic_rewards, mdp.masked  # looked up once, not per step
        self._states: np.ndarray | None = None
        self._clear()

    def _clear(self) -> None:
        self.total_steps = 0
        self.episodes_done = np.zeros(self.n_runs, dtype=np.int64)  # [R]
        self._return = np.zeros(self.n_runs)  # [R] return of the episode in progress
        self._length = np.zeros(self.n_runs, dtype=np.int64)  # [R]
        self._first = np.full(self.n_runs, -1, dtype=np.int64)  # [R] first action of this episode
        capacity = 64
        self._returns = np.zeros((self.n_runs, capacity))
        self._lengths = np.zeros((self.n_runs, capacity), dtype=np.int64)
        self._firsts = np.zeros((self.n_runs, capacity), dtype=np.int64)

    def __repr__(self) -> str:
        return f"VecEnv({self.mdp.name}, n_runs={self.n_runs})"

    def reset(self) -> np.ndarray:
        """Start (or restart) every run at the start state and clear the records: states [R]."""
        self._clear()
        self._states = np.full(self.n_runs, self.mdp.start, dtype=np.int64)
        return self._states.copy()

    @property
    def states(self) -> np.ndarray:
        """The current state of every run, [R] (a copy)."""
        if self._states is None:
            raise RuntimeError("call env.reset() before using the environment")
        return self._states.copy()

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Take one action per run: actions [R] int -> (next_states [R] int, rewards [R] float,
        terminated [R] bool). A run whose episode ended is already back at the start in next_states."""
        if self._states is None:
            raise RuntimeError("call env.reset() before env.step(actions)")
        a = self._validate(actions)
        s = self._states
        if self.max_total_steps is not None and self.total_steps >= self.max_total_steps:
            worst = int(self.episodes_done.min())
            raise RuntimeError(
                f"the environment has been stepped {self.total_steps} times and the slowest run has finished "
                f"only {worst} episodes; stopping here. Does the loop end when every run has finished its "
                f"episodes (env.episodes_done.min() >= n_episodes), and does the agent learn (is Q updated)?"
            )
        nxt = self.mdp.next_state[s, a]  # [R]
        rewards = self.mdp.reward[s, a]  # [R], a new array (fancy indexing copies)
        if self._stochastic:
            rewards = rewards + self.mdp.reward_sd[s, a] * self.rng.standard_normal(self.n_runs)
        terminated = self.mdp.terminal[nxt]  # [R] bool
        self.total_steps += 1
        # Records: first action of an episode, running return and length.
        starting = self._length == 0
        self._first[starting] = a[starting]
        self._return += rewards
        self._length += 1
        if terminated.any():
            self._finish(np.flatnonzero(terminated))
            nxt = np.where(terminated, self.mdp.start, nxt)
        self._states = nxt
        return nxt.copy(), rewards, terminated

    def _finish(self, rows: np.ndarray) -> None:
        """Store the episodes that just ended in `rows` and start new ones."""
        slot = self.episodes_done[rows]
        if self.episodes_done.max() >= self._returns.shape[1]:
            grow = self._returns.shape[1]
            self._returns = np.pad(self._returns, ((0, 0), (0, grow)))
            self._lengths = np.pad(self._lengths, ((0, 0), (0, grow)))
            self._firsts = np.pad(self._firsts, ((0, 0), (0, grow)))
        self._returns[rows, slot] = self._return[rows]
        self._lengths[rows, slot] = self._length[rows]
        self._firsts[rows, slot] = self._first[rows]
        self.episodes_done[rows] += 1
        self._return[rows] = 0.0
        self._length[rows] = 0

    def _validate(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (self.n_runs,):
            raise ValueError(
                f"env.step got actions of shape {a.shape}; expected ({self.n_runs},), one action per run. "
                "Choose actions for all runs at once, e.g. epsilon_greedy(Q[rows, states], epsilon, rng)."
            )
        if a.dtype.kind not in "iu":
            if not (a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a))):
                raise ValueError(f"env.step got {a.dtype} actions (e.g. {a.flat[0]!r}); expected integer actions.")
            a = a.astype(np.int64)
        if not self._masked and a.min() >= 0 and a.max() < self.n_actions:
            return a
        limit = self.mdp.n_valid[self._states]  # [R]
        bad = (a < 0) | (a >= limit)
        if bad.any():
            r = int(bad.argmax())
            raise ValueError(
                f"env.step got action {int(a[r])} for run {r} in state {int(self._states[r])}, which has actions "
                f"0..{int(limit[r]) - 1}."
            )
        return a

    # -- what the environment recorded ------------------------------------------------------------

    def _recorded(self, table: np.ndarray, n_episodes: int | None, what: str) -> np.ndarray:
        n = int(self.episodes_done.min()) if n_episodes is None else int(n_episodes)
        if n > self.episodes_done.min():
            raise ValueError(
                f"{what}({n}): run {int(self.episodes_done.argmin())} has finished only "
                f"{int(self.episodes_done.min())} episodes."
            )
        return table[:, :n].copy()

    def returns(self, n_episodes: int | None = None) -> np.ndarray:
        """Sum of rewards of each of the first n_episodes of every run, [R, n] (default: as many as
        every run has finished)."""
        return self._recorded(self._returns, n_episodes, "returns")

    def lengths(self, n_episodes: int | None = None) -> np.ndarray:
        """Steps taken in each of the first n_episodes of every run, [R, n] int."""
        return self._recorded(self._lengths, n_episodes, "lengths")

    def first_actions(self, n_episodes: int | None = None) -> np.ndarray:
        """The action taken in the start state in each of the first n_episodes, [R, n] int."""
        return self._recorded(self._firsts, n_episodes, "first_actions")


def greedy_path_lengths(mdp: TabularMDP, Q: np.ndarray) -> np.ndarray:
    """Follow the greedy policy argmax_a Q[r, s, a] from the start in every run.

    Q [R, S, A] -> lengths [R] int: the steps to reach a terminal state, or -1 when the greedy path
    never gets there. Transitions are deterministic (in all of this module's MDPs), so a path that
    has not arrived after S steps has repeated a state and loops for ever (falling off the cliff
    counts: it returns to the start). Ties go to the lowest action number (np.argmax); a tie on a
    trained path is rare.
    """
    Q = np.asarray(Q, dtype=float)
    if Q.ndim != 3 or Q.shape[1:] != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"Q must have shape [R, {mdp.n_states}, {mdp.n_actions}], got {Q.shape}.")
    n_runs = Q.shape[0]
    rows = np.arange(n_runs)
    exists = np.arange(mdp.n_actions) < mdp.n_valid[:, None]  # [S, A]
    greedy = np.where(exists, Q, -np.inf).argmax(axis=2)  # [R, S]
    states = np.full(n_runs, mdp.start)
    lengths = np.full(n_runs, -1)
    for step in range(1, mdp.n_states + 1):
        states = mdp.next_state[states, greedy[rows, states]]
        arrived = mdp.terminal[states] & (lengths < 0)
        lengths[arrived] = step
        if (lengths >= 0).all():
            break
    return lengths
