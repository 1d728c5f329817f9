"""Planning with a learned model: the Dyna maze and Dyna-Q (Sutton & Barto, 2nd ed., chapter 8).

Dyna-Q interleaves three things after every real step: direct reinforcement learning (a Q-learning
update from the real transition), model learning (remember what that state-action pair led to), and
planning (n Q-learning updates from transitions replayed out of the model). With n = 0 it is plain
one-step Q-learning.

States are integers: cell (row, col) of the grid is state row * cols + col. Shapes:

    Q            [S, A]        action values of one run         (S = rows * cols, A = 4)
    Q (batch)    [R, S, A]     one table per run                (R independent runs)
    steps        [E] / [E, R]  steps taken in each episode      (episode-major, like [T, N] rollouts)

Sections: the maze -> the pieces of Dyna-Q (epsilon-greedy, the Q-learning update, the model) ->
one run, written as the book's pseudocode -> many runs at once (vectorized over runs).
No function uses numpy's global random state: every random choice takes a Generator.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from rlcore.tabular.bandits import epsilon_greedy as _epsilon_greedy_rows

# ---------------------------------------------------------------------------------------------
# The maze (Example 8.1)
# ---------------------------------------------------------------------------------------------

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
ACTION_NAMES = ("up", "down", "left", "right")
_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (d_row, d_col) of each action

# The maze of Figure 8.2: 6 rows x 9 columns, start S = (2, 0), goal G = (0, 8).
DYNA_MAZE_WALLS = ((1, 2), (2, 2), (3, 2), (0, 7), (1, 7), (2, 7), (4, 5))


class DynaMaze:
    """A deterministic grid maze (Example 8.1, Figure 8.2).

    Four actions: 0 up, 1 down, 2 left, 3 right. A move into a wall or off the grid leaves the agent
    where it is. Every step gives reward 0, except the step that enters the goal, which gives +1 and
    ends the episode; the next episode starts again at the start cell.

    Attributes: rows, cols, n_states (= rows * cols), n_actions (= 4), start and goal (state
    indices), walls (a frozenset of (row, col)), and the transition tables next_state [S, A] (int)
    and reward [S, A] (float) that the vectorized code and the lesson use.
    """

    n_actions = 4

    def __init__(
        self,
        rows: int = 6,
        cols: int = 9,
        start: tuple[int, int] = (2, 0),
        goal: tuple[int, int] = (0, 8),
        walls=DYNA_MAZE_WALLS,
    ):
        self.rows, self.cols = int(rows), int(cols)
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"the maze needs at least one row and one column, got {rows} x {cols}")
        self.walls = frozenset((int(r), int(c)) for r, c in walls)
        for name, cell in (("start", start), ("goal", goal)):
            if not self._inside(*cell):
                raise ValueError(f"{name} {cell} is outside the {rows} x {cols} grid")
            if tuple(cell) in self.walls:
                raise ValueError(f"{name} {cell} is a wall")
        if tuple(start) == tuple(goal):
            raise ValueError(f"start and goal are the same cell {start}")
        self.n_states = self.rows * self.cols
        self.start = self.state(*start)
        self.goal = self.state(*goal)
        # The whole dynamics as two tables: next_state[s, a] and reward[s, a].
        self.next_state = np.empty((self.n_states, self.n_actions), dtype=np.int64)
        for s in range(self.n_states):
            row, col = self.cell(s)
            if (row, col) in self.walls:  # a wall cell is a state index no one can reach: it stays put
                self.next_state[s] = s
                continue
            for a, (dr, dc) in enumerate(_MOVES):
                r2, c2 = row + dr, col + dc
                blocked = not self._inside(r2, c2) or (r2, c2) in self.walls
                self.next_state[s, a] = s if blocked else self.state(r2, c2)
        self.reward = (self.next_state == self.goal).astype(float)  # [S, A]
        # The goal is terminal: no step starts there. Its row says so (it stays put, reward 0).
        self.next_state[self.goal] = self.goal
        self.reward[self.goal] = 0.0
        self._position: int | None = None

    def _inside(self, row: int, col: int) -> bool:
        return 0 <= row < self.rows and 0 <= col < self.cols

    def state(self, row: int, col: int) -> int:
        """The state index of cell (row, col)."""
        return row * self.cols + col

    def cell(self, state: int) -> tuple[int, int]:
        """The (row, col) of a state index."""
        return divmod(int(state), self.cols)

    # -- the episode interface ------------------------------------------------------------------

    def reset(self) -> int:
        """Start an episode: returns the start state."""
        self._position = self.start
        return self._position

    def step(self, action: int) -> tuple[int, float, bool]:
        """Take one action: returns (next_state, reward, terminated)."""
        if self._position is None:
            raise RuntimeError("step() called before reset(), or after the episode ended at the goal; "
                               "call reset() to start an episode")
        a = _check_action(action, self.n_actions)
        s_next = int(self.next_state[self._position, a])
        reward = float(self.reward[self._position, a])
        terminated = s_next == self.goal
        self._position = None if terminated else s_next
        return s_next, reward, terminated

    # -- facts about the maze --------------------------------------------------------------------

    def shortest_path_length(self) -> int:
        """The fewest steps from start to goal (breadth-first search): 14 for the Dyna maze."""
        distance = {self.start: 0}
        queue = deque([self.start])
        while queue:
            s = queue.popleft()
            if s == self.goal:
                return distance[s]
            for s2 in self.next_state[s]:
                if int(s2) not in distance:
                    distance[int(s2)] = distance[s] + 1
                    queue.append(int(s2))
        raise ValueError("the goal cannot be reached from the start")

    def random_episode_length(self) -> tuple[float, float]:
        """Mean and SD of the length of an episode of uniformly random actions, computed exactly.

        While Q is all zero, epsilon-greedy with random ties picks every action with probability
        1/4, so the first episode of Dyna-Q (for any n: nothing can be learned before the first
        reward) is this random walk. Its expected hitting time m solves (I - P) m = 1 over the
        non-goal cells, P the walk's transition matrix; the second moment solves
        (I - P) s = 1 + 2 P m. About 869 +- 789 steps for the Dyna maze.
        """
        cells = [s for s in range(self.n_states) if self.cell(s) not in self.walls and s != self.goal]
        index = {s: i for i, s in enumerate(cells)}
        P = np.zeros((len(cells), len(cells)))  # transitions among non-goal cells
        for s in cells:
            for s2 in self.next_state[s]:
                if int(s2) in index:
                    P[index[s], index[int(s2)]] += 1 / self.n_actions
        I_minus_P = np.eye(len(cells)) - P
        mean = np.linalg.solve(I_minus_P, np.ones(len(cells)))
        second = np.linalg.solve(I_minus_P, 1 + 2 * P @ mean)
        i = index[self.start]
        return float(mean[i]), float(np.sqrt(second[i] - mean[i] ** 2))

    def render(self, marks: dict[int, str] | None = None) -> str:
        """The maze as text: S start, G goal, # wall, . free; `marks` maps states to a character."""
        marks = marks or {}
        lines = []
        for row in range(self.rows):
            chars = []
            for col in range(self.cols):
                s = self.state(row, col)
                if (row, col) in self.walls:
                    chars.append("#")
                elif s in marks:
                    chars.append(marks[s])
                elif s == self.start:
                    chars.append("S")
                elif s == self.goal:
                    chars.append("G")
                else:
                    chars.append(".")
            lines.append(" ".join(chars))
        return "\n".join(lines)


def _check_action(action, n_actions: int) -> int:
    """Return action as an int in [0, n_actions), or raise a ValueError that says what is wrong."""
    try:
        a = int(action)
    except (TypeError, ValueError):
        raise ValueError(f"an action must be an integer 0..{n_actions - 1}, got {action!r}") from None
    if a != action or not 0 <= a < n_actions:
        raise ValueError(f"an action must be an integer 0..{n_actions - 1} (up, down, left, right), got {action!r}")
    return a


# ---------------------------------------------------------------------------------------------
# The pieces of Dyna-Q
# ---------------------------------------------------------------------------------------------


def epsilon_greedy_action(q: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """One epsilon-greedy action from the action values of one state, ties broken at random.

    With probability epsilon an action drawn uniformly from all actions, otherwise a greedy one.
    Random ties matter here: at the start every Q is 0, and a first-index argmax would walk the
    agent into the top wall ("up") over and over.

    q [A] -> an int in [0, A)
    """
    if rng.random() < epsilon:
        return int(rng.integers(q.size))
    best = np.flatnonzero(q == q.max())  # every greedy action
    return int(best[rng.integers(best.size)])


def q_learning_update(
    Q: np.ndarray, state: int, action: int, reward: float, next_state: int, alpha: float, gamma: float
) -> np.ndarray:
    """One-step tabular Q-learning (eq. 6.8), in place:

        Q[s, a] <- Q[s, a] + alpha * (r + gamma * max_a' Q[s', a'] - Q[s, a]).

    Dyna-Q uses it twice: on every real transition, and on every transition replayed from the
    model. The goal is terminal: its row of Q is never updated (no step starts there), so it stays
    0 and the target of a step into the goal is just the reward.

    Q [S, A] (modified and returned).
    """
    target = reward + gamma * Q[next_state].max()
    Q[state, action] += alpha * (target - Q[state, action])
    return Q


class TabularModel:
    """A deterministic model learned from experience: (state, action) -> (reward, next_state).

    `add` remembers the last outcome of each state-action pair (the maze is deterministic, so the
    last is the only one). `sample` follows the Dyna-Q pseudocode: "S <- random previously observed
    state, A <- random action previously taken in S", both uniform. So a state counts once however
    often it was visited, and a state where one action was tried gives that pair twice the chance
    of a pair from a state where two were tried.
    """

    def __init__(self):
        self._outcome: dict[tuple[int, int], tuple[float, int]] = {}
        self._states: list[int] = []  # distinct states, in the order first seen
        self._actions: dict[int, list[int]] = {}  # state -> distinct actions taken there

    def add(self, state: int, action: int, reward: float, next_state: int) -> None:
        """Remember that `action` in `state` gave `reward` and led to `next_state`."""
        state, action = int(state), int(action)
        if state not in self._actions:
            self._states.append(state)
            self._actions[state] = []
        if (state, action) not in self._outcome:
            self._actions[state].append(action)
        self._outcome[state, action] = (float(reward), int(next_state))

    def sample(self, rng: np.random.Generator) -> tuple[int, int, float, int]:
        """A previously observed state, an action taken there, and the stored outcome:
        (state, action, reward, next_state)."""
        if not self._states:
            raise ValueError("the model is empty: add() a transition before sampling from it")
        state = self._states[rng.integers(len(self._states))]
        actions = self._actions[state]
        action = actions[rng.integers(len(actions))]
        reward, next_state = self._outcome[state, action]
        return state, action, reward, next_state

    def __len__(self) -> int:
        """The number of distinct state-action pairs observed."""
        return len(self._outcome)

    def __contains__(self, pair) -> bool:
        return tuple(pair) in self._outcome


# ---------------------------------------------------------------------------------------------
# One run of Dyna-Q, as in the book's pseudocode
# ---------------------------------------------------------------------------------------------


def dyna_q(
    maze: DynaMaze,
    n_planning: int,
    n_episodes: int,
    rng: np.random.Generator,
    alpha: float = 0.1,
    epsilon: float = 0.1,
    gamma: float = 0.95,
    *,
    Q: np.ndarray | None = None,
) -> np.ndarray:
    """Tabular Dyna-Q for `n_episodes` episodes on `maze`; Q starts at 0.

    Every real step: (a) choose A epsilon-greedily from Q(S); (b) take it, observe R, S';
    (c) Q-learning update from (S, A, R, S'); (d) store (R, S') in the model; (e) n_planning
    Q-learning updates from pairs drawn from the model. Planning also follows the step that
    reaches the goal.

    Q: pass a zero array [S, A] to look at what was learned afterwards: it is updated in place.

    Returns steps [n_episodes] (int): how many actions each episode took (Figure 8.2's y axis).
    """
    _check_dyna_args(n_planning, n_episodes, alpha, epsilon, gamma)
    if Q is None:
        Q = np.zeros((maze.n_states, maze.n_actions))
    elif Q.shape != (maze.n_states, maze.n_actions):
        raise ValueError(f"Q must have shape {(maze.n_states, maze.n_actions)} (states, actions), got {Q.shape}")
    model = TabularModel()
    steps = np.zeros(n_episodes, dtype=np.int64)
    for episode in range(n_episodes):
        state, terminated = maze.reset(), False
        while not terminated:
            action = epsilon_greedy_action(Q[state], epsilon, rng)
            next_state, reward, terminated = maze.step(action)
            q_learning_update(Q, state, action, reward, next_state, alpha, gamma)  # direct RL
            model.add(state, action, reward, next_state)  # model learning
            for _ in range(n_planning):  # planning: replay remembered transitions
                s, a, r, s_next = model.sample(rng)
                q_learning_update(Q, s, a, r, s_next, alpha, gamma)
            state = next_state
            steps[episode] += 1
    return steps


def _check_dyna_args(n_planning, n_episodes, alpha, epsilon, gamma) -> None:
    if int(n_planning) != n_planning or n_planning < 0:
        raise ValueError(f"n_planning must be a whole number >= 0 (0 is plain Q-learning), got {n_planning!r}")
    if int(n_episodes) != n_episodes or n_episodes < 1:
        raise ValueError(f"n_episodes must be a whole number >= 1, got {n_episodes!r}")
    for name, value in (("alpha", alpha), ("epsilon", epsilon), ("gamma", gamma)):
        if not 0.0 <= float(value) <= 1.0:  # also False for NaN
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")


# ---------------------------------------------------------------------------------------------
# Many runs at once
# ---------------------------------------------------------------------------------------------


def dyna_q_runs(
    maze: DynaMaze,
    n_planning: int,
    n_episodes: int,
    n_runs: int,
    seed: int | np.random.SeedSequence = 0,
    alpha: float = 0.1,
    epsilon: float = 0.1,
    gamma: float = 0.95,
) -> np.ndarray:
    """Dyna-Q on `n_runs` independent runs at once, the same algorithm as `dyna_q`.

    The runs play episode k together: each real step is one numpy call over the runs still in
    episode k, and so is each of the n planning updates that follow it. A run that reaches the goal
    waits for the others before episode k + 1 starts (runs are independent, so waiting changes
    nothing but the order of the work).

    Returns steps [n_episodes, n_runs] (int): steps of episode e in run r.
    """
    _check_dyna_args(n_planning, n_episodes, alpha, epsilon, gamma)
    if int(n_runs) != n_runs or n_runs < 1:
        raise ValueError(f"n_runs must be a whole number >= 1, got {n_runs!r}")
    rng = np.random.default_rng(seed)
    R, S, A = int(n_runs), maze.n_states, maze.n_actions
    Q = np.zeros((R, S, A))
    # The model of each run: outcome tables, the list of distinct states seen, and for each state
    # the list of distinct actions taken there, so "a random observed state, then a random action
    # taken in it" is two uniform indices below the counts.
    model_next = np.zeros((R, S, A), dtype=np.int64)
    model_reward = np.zeros((R, S, A))
    seen = np.zeros((R, S, A), dtype=bool)
    seen_states = np.zeros((R, S), dtype=np.int64)
    n_states_seen = np.zeros(R, dtype=np.int64)
    seen_actions = np.zeros((R, S, A), dtype=np.int64)
    n_actions_seen = np.zeros((R, S), dtype=np.int64)
    # Until a run's model holds a nonzero reward, its Q and all its stored rewards are 0, so every
    # replayed update would change nothing: such runs skip planning (the same result for far less
    # work; it is also why the first episode is a pure random walk whatever n is).
    has_reward = np.zeros(R, dtype=bool)
    # Flat views for the planning loop: one-dimensional gathers are much cheaper than fancy
    # indexing with two or three index arrays, and that loop is the hot spot.
    Q_flat, Q_rows = Q.reshape(-1), Q.reshape(-1, A)  # [R * S * A], [R * S, A]

    steps = np.zeros((n_episodes, R), dtype=np.int64)
    for episode in range(n_episodes):
        state = np.full(R, maze.start)  # [R]
        playing = np.ones(R, dtype=bool)  # [R]: still in this episode
        while playing.any():
            rows = np.flatnonzero(playing)  # [R']
            s = state[rows]
            action = _epsilon_greedy_rows(Q[rows, s], epsilon, rng)  # [R']
            next_state = maze.next_state[s, action]  # [R']
            reward = maze.reward[s, action]  # [R']
            # Direct RL: Q[rows, next_state] is [R', A], the next state's row in each run.
            target = reward + gamma * Q[rows, next_state].max(axis=1)
            Q[rows, s, action] += alpha * (target - Q[rows, s, action])
            # Model learning: a state or a pair seen for the first time joins its list.
            new_state = n_actions_seen[rows, s] == 0
            seen_states[rows[new_state], n_states_seen[rows[new_state]]] = s[new_state]
            n_states_seen[rows[new_state]] += 1
            new_pair = ~seen[rows, s, action]
            r_new, s_new = rows[new_pair], s[new_pair]
            seen_actions[r_new, s_new, n_actions_seen[r_new, s_new]] = action[new_pair]
            n_actions_seen[r_new, s_new] += 1
            seen[rows, s, action] = True
            model_next[rows, s, action] = next_state
            model_reward[rows, s, action] = reward
            has_reward[rows] |= reward != 0
            # Planning: n replayed Q-learning updates in every run that has something to replay.
            plan = rows[has_reward[rows]] if n_planning else rows[:0]  # [P]
            if plan.size:
                base = plan * S  # [P]: offset of each run's first state in [R * S]
                n_states_p = n_states_seen[plan]
                u = rng.random((n_planning, 2, plan.size))  # uniform numbers for the state and action draws
                for u_state, u_action in u:
                    s_p = seen_states.reshape(-1)[base + (u_state * n_states_p).astype(np.int64)]  # [P]
                    row_p = base + s_p  # [P]: index of (run, s_p) in [R * S]
                    n_actions_p = n_actions_seen.reshape(-1)[row_p]
                    pair = row_p * A + seen_actions.reshape(-1)[row_p * A + (u_action * n_actions_p).astype(np.int64)]
                    # pair [P]: index of (run, s_p, a_p) in [R * S * A]
                    next_p = base + model_next.reshape(-1)[pair]
                    target = model_reward.reshape(-1)[pair] + gamma * Q_rows[next_p].max(axis=1)
                    Q_flat[pair] += alpha * (target - Q_flat[pair])
            # Count the step; a run that reached the goal records the episode and waits.
            steps[episode, rows] += 1
            done = next_state == maze.goal
            playing[rows[done]] = False
            state[rows] = next_state
    return steps


def first_episode_below(mean_steps: np.ndarray, threshold: float = 20.0) -> int | None:
    """The first episode (1-based) whose mean steps fall below `threshold`, or None.

    mean_steps [E]: steps per episode averaged over runs. The book's reading of Figure 8.2: the
    agent without planning needs about 25 episodes to reach near-optimal paths, n = 5 about five,
    n = 50 only three.
    """
    below = np.flatnonzero(np.asarray(mean_steps) < threshold)
    return int(below[0]) + 1 if below.size else None
