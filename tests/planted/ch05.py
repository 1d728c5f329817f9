"""Planted-bug variants of the chapter 05 pieces: realistic mistakes the checks must catch.

`UNIT_BUGS[check_name]` lists (description, buggy function or class) for each exact check;
`LOOP_BUGS[check_name]` lists (description, buggy run loop) for the two curve checks.
Each variant is written the way a learner would write the piece, with one mistake.
"""

from __future__ import annotations

import numpy as np

from rlcore.tabular import nstep as ref_nstep
from rlcore.tabular import planning as ref_planning

# ------------------------------------------------------------------------------------------
# n-step return
# ------------------------------------------------------------------------------------------


def return_bootstrap_gamma_n_minus_1(V, states, rewards, tau, n, gamma):
    T = len(rewards)
    G = sum(gamma ** (i - tau) * rewards[i] for i in range(tau, min(tau + n, T)))
    if tau + n < T:
        G += gamma ** (n - 1) * V[states[tau + n]]  # one discount too few on the bootstrap
    return G


def return_window_late(V, states, rewards, tau, n, gamma):
    # Reads R_{t+1} as rewards[t + 1]: the window starts one reward late.
    T = len(rewards)
    G = sum(gamma ** (i - tau - 1) * rewards[i] for i in range(tau + 1, min(tau + n + 1, T)))
    if tau + n < T:
        G += gamma**n * V[states[tau + n]]
    return G


def return_bootstrap_at_end(V, states, rewards, tau, n, gamma):
    # <= instead of <: bootstraps from V of the terminal state when tau + n == T.
    T = len(rewards)
    G = sum(gamma ** (i - tau) * rewards[i] for i in range(tau, min(tau + n, T)))
    if tau + n <= T:
        G += gamma**n * V[states[tau + n]]
    return G


def return_bootstrap_one_short(V, states, rewards, tau, n, gamma):
    T = len(rewards)
    G = sum(gamma ** (i - tau) * rewards[i] for i in range(tau, min(tau + n, T)))
    if tau + n < T:
        G += gamma**n * V[states[tau + n - 1]]  # the state before S_{tau+n}
    return G


# ------------------------------------------------------------------------------------------
# One episode of n-step TD
# ------------------------------------------------------------------------------------------


def episode_tail_missing(V, states, rewards, n, alpha, gamma):
    # The book's loop "for t = 0, 1, ...: tau = t - n + 1" stopped when the episode ends, so the
    # last n - 1 states are never updated.
    T = len(rewards)
    for t in range(T):
        tau = t - n + 1
        if tau >= 0:
            G = ref_nstep.nstep_return(V, states, rewards, tau, n, gamma)
            V[states[tau]] += alpha * (G - V[states[tau]])
    return V


def episode_returns_from_old_values(V, states, rewards, n, alpha, gamma):
    # All targets computed first from the values before the episode, then applied.
    targets = [ref_nstep.nstep_return(V, states, rewards, tau, n, gamma) for tau in range(len(rewards))]
    for tau, G in enumerate(targets):
        V[states[tau]] += alpha * (G - V[states[tau]])
    return V


def episode_alpha_ignored(V, states, rewards, n, alpha, gamma):
    for tau in range(len(rewards)):
        V[states[tau]] = ref_nstep.nstep_return(V, states, rewards, tau, n, gamma)
    return V


# ------------------------------------------------------------------------------------------
# The n-step TD run loop
# ------------------------------------------------------------------------------------------


def run_records_before_update(walk, n, alpha, n_episodes, rng):
    V = np.zeros(walk.n_states + 2)
    history = np.zeros((n_episodes, walk.n_states))
    for e in range(n_episodes):
        history[e] = V[1:-1]  # stored before this episode's updates
        states, rewards = walk.episode(rng)
        ref_nstep.nstep_td_episode(V, states, rewards, n, alpha, 1.0)
    return history


def run_starts_at_half(walk, n, alpha, n_episodes, rng):
    V = np.full(walk.n_states + 2, 0.5)  # copied from the 5-state example
    V[[0, -1]] = 0.0
    history = np.zeros((n_episodes, walk.n_states))
    for e in range(n_episodes):
        states, rewards = walk.episode(rng)
        ref_nstep.nstep_td_episode(V, states, rewards, n, alpha, 1.0)
        history[e] = V[1:-1]
    return history


def shared_values_run():
    """A run loop whose V lives outside the call (a global, in a notebook): every call keeps learning
    from where the previous run stopped. A factory, so each test gets a fresh one."""
    V = np.zeros(21)

    def nstep_td(walk, n, alpha, n_episodes, rng):
        history = np.zeros((n_episodes, walk.n_states))
        for e in range(n_episodes):
            states, rewards = walk.episode(rng)
            ref_nstep.nstep_td_episode(V, states, rewards, n, alpha, 1.0)
            history[e] = V[1:-1]
        return history

    return nstep_td


def run_n_ignored(walk, n, alpha, n_episodes, rng):
    V = np.zeros(walk.n_states + 2)
    history = np.zeros((n_episodes, walk.n_states))
    for e in range(n_episodes):
        states, rewards = walk.episode(rng)
        ref_nstep.nstep_td_episode(V, states, rewards, 1, alpha, 1.0)  # always TD(0)
        history[e] = V[1:-1]
    return history


# ------------------------------------------------------------------------------------------
# Q-learning update
# ------------------------------------------------------------------------------------------


def q_mean_not_max(Q, state, action, reward, next_state, alpha, gamma):
    Q[state, action] += alpha * (reward + gamma * Q[next_state].mean() - Q[state, action])
    return Q


def q_current_state_max(Q, state, action, reward, next_state, alpha, gamma):
    Q[state, action] += alpha * (reward + gamma * Q[state].max() - Q[state, action])
    return Q


def q_gamma_ignored(Q, state, action, reward, next_state, alpha, gamma):
    Q[state, action] += alpha * (reward + Q[next_state].max() - Q[state, action])
    return Q


def q_sign_flipped(Q, state, action, reward, next_state, alpha, gamma):
    Q[state, action] += alpha * (Q[state, action] - reward - gamma * Q[next_state].max())
    return Q


# ------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------


class ModelTransitionList:
    """Replays a list of every transition seen: frequent pairs are replayed more often."""

    def __init__(self):
        self.transitions = []

    def add(self, state, action, reward, next_state):
        self.transitions.append((state, action, reward, next_state))

    def sample(self, rng):
        return self.transitions[rng.integers(len(self.transitions))]


class ModelUniformPairs:
    """Uniform over distinct pairs instead of a random state, then a random action taken there."""

    def __init__(self):
        self.outcome = {}

    def add(self, state, action, reward, next_state):
        self.outcome[state, action] = (reward, next_state)

    def sample(self, rng):
        pairs = list(self.outcome)
        state, action = pairs[rng.integers(len(pairs))]
        return (state, action, *self.outcome[state, action])


class ModelKeepsFirst:
    """Never overwrites: a pair keeps the outcome it had the first time."""

    def __init__(self):
        self.model = ref_planning.TabularModel()

    def add(self, state, action, reward, next_state):
        if (state, action) not in self.model:
            self.model.add(state, action, reward, next_state)

    def sample(self, rng):
        return self.model.sample(rng)


class ModelMisaligned:
    """Parallel lists: pairs are deduplicated but outcomes appended every time, so they drift apart."""

    def __init__(self):
        self.states, self.actions, self.outcomes = [], {}, []
        self.pairs = []

    def add(self, state, action, reward, next_state):
        if state not in self.actions:
            self.states.append(state)
            self.actions[state] = []
        if action not in self.actions[state]:
            self.actions[state].append(action)
            self.pairs.append((state, action))
        self.outcomes.append((reward, next_state))

    def sample(self, rng):
        state = self.states[rng.integers(len(self.states))]
        action = self.actions[state][rng.integers(len(self.actions[state]))]
        reward, next_state = self.outcomes[self.pairs.index((state, action))]
        return state, action, reward, next_state


# ------------------------------------------------------------------------------------------
# The Dyna-Q loop
# ------------------------------------------------------------------------------------------


def shared_q_dyna():
    """A Dyna-Q loop whose Q lives outside the call: later runs start with what earlier ones learned.
    A factory, so each test gets a fresh one."""
    Q = np.zeros((54, 4))

    def dyna_q(maze, n_planning, n_episodes, rng, alpha=0.1, epsilon=0.1, gamma=0.95):
        model = ref_planning.TabularModel()
        steps = np.zeros(n_episodes, dtype=int)
        for e in range(n_episodes):
            state, done = maze.reset(), False
            while not done:
                action = ref_planning.epsilon_greedy_action(Q[state], epsilon, rng)
                next_state, reward, done = maze.step(action)
                ref_planning.q_learning_update(Q, state, action, reward, next_state, alpha, gamma)
                model.add(state, action, reward, next_state)
                for _ in range(n_planning):
                    ref_planning.q_learning_update(Q, *model.sample(rng), alpha, gamma)
                state = next_state
                steps[e] += 1
        return steps

    return dyna_q


def dyna_plans_at_episode_end(maze, n_planning, n_episodes, rng, alpha=0.1, epsilon=0.1, gamma=0.95):
    # The planning loop is dedented one level: n updates per episode instead of per step.
    Q = np.zeros((maze.n_states, maze.n_actions))
    model = ref_planning.TabularModel()
    steps = np.zeros(n_episodes, dtype=int)
    for e in range(n_episodes):
        state, done = maze.reset(), False
        while not done:
            action = ref_planning.epsilon_greedy_action(Q[state], epsilon, rng)
            next_state, reward, done = maze.step(action)
            ref_planning.q_learning_update(Q, state, action, reward, next_state, alpha, gamma)
            model.add(state, action, reward, next_state)
            state = next_state
            steps[e] += 1
        for _ in range(n_planning):
            ref_planning.q_learning_update(Q, *model.sample(rng), alpha, gamma)
    return steps


def dyna_replays_real_step(maze, n_planning, n_episodes, rng, alpha=0.1, epsilon=0.1, gamma=0.95):
    # "Planning" repeats the update of the step just taken instead of sampling the model.
    Q = np.zeros((maze.n_states, maze.n_actions))
    steps = np.zeros(n_episodes, dtype=int)
    for e in range(n_episodes):
        state, done = maze.reset(), False
        while not done:
            action = ref_planning.epsilon_greedy_action(Q[state], epsilon, rng)
            next_state, reward, done = maze.step(action)
            for _ in range(1 + n_planning):
                ref_planning.q_learning_update(Q, state, action, reward, next_state, alpha, gamma)
            state = next_state
            steps[e] += 1
    return steps


def dyna_model_per_episode(maze, n_planning, n_episodes, rng, alpha=0.1, epsilon=0.1, gamma=0.95):
    # The model is created inside the episode loop: planning only replays the current episode.
    Q = np.zeros((maze.n_states, maze.n_actions))
    steps = np.zeros(n_episodes, dtype=int)
    for e in range(n_episodes):
        model = ref_planning.TabularModel()
        state, done = maze.reset(), False
        while not done:
            action = ref_planning.epsilon_greedy_action(Q[state], epsilon, rng)
            next_state, reward, done = maze.step(action)
            ref_planning.q_learning_update(Q, state, action, reward, next_state, alpha, gamma)
            model.add(state, action, reward, next_state)
            for _ in range(n_planning):
                ref_planning.q_learning_update(Q, *model.sample(rng), alpha, gamma)
            state = next_state
            steps[e] += 1
    return steps


def dyna_greedy_only(maze, n_planning, n_episodes, rng, alpha=0.1, epsilon=0.1, gamma=0.95):
    # epsilon never reaches the action choice: greedy with random ties, no exploration.
    Q = np.zeros((maze.n_states, maze.n_actions))
    model = ref_planning.TabularModel()
    steps = np.zeros(n_episodes, dtype=int)
    for e in range(n_episodes):
        state, done = maze.reset(), False
        while not done:
            action = ref_planning.epsilon_greedy_action(Q[state], 0.0, rng)
            next_state, reward, done = maze.step(action)
            ref_planning.q_learning_update(Q, state, action, reward, next_state, alpha, gamma)
            model.add(state, action, reward, next_state)
            for _ in range(n_planning):
                ref_planning.q_learning_update(Q, *model.sample(rng), alpha, gamma)
            state = next_state
            steps[e] += 1
    return steps


UNIT_BUGS = {
    "nstep_return": [("bootstrap discounted by gamma^(n-1)", return_bootstrap_gamma_n_minus_1),
                     ("reward window one step late", return_window_late),
                     ("bootstraps from the terminal state when tau + n == T", return_bootstrap_at_end),
                     ("bootstraps from states[tau + n - 1]", return_bootstrap_one_short)],
    "nstep_td_episode": [("the last n - 1 updates missing", episode_tail_missing),
                         ("all returns from the values before the episode", episode_returns_from_old_values),
                         ("alpha ignored (V replaced by the return)", episode_alpha_ignored)],
    "q_learning_update": [("mean over next actions instead of max", q_mean_not_max),
                          ("max over the current state's actions", q_current_state_max),
                          ("gamma ignored", q_gamma_ignored),
                          ("error sign flipped", q_sign_flipped)],
    "TabularModel": [("replays a list of all transitions (frequency-weighted)", ModelTransitionList),
                     ("uniform over pairs, not state then action", ModelUniformPairs),
                     ("keeps the first outcome of a pair", ModelKeepsFirst),
                     ("outcomes misaligned with their pairs", ModelMisaligned)],
}

LOOP_BUGS = {
    "nstep_td": [("values recorded before the episode's updates", run_records_before_update),
                 ("V starts at 0.5", run_starts_at_half),
                 ("V shared between calls", shared_values_run()),
                 ("n ignored (always TD(0))", run_n_ignored)],
    "dyna_q": [("Q shared between calls", shared_q_dyna()),
               ("planning once per episode instead of after every step", dyna_plans_at_episode_end),
               ("planning repeats the real transition instead of sampling the model", dyna_replays_real_step),
               ("a new model every episode", dyna_model_per_episode),
               ("epsilon never used (greedy with random ties)", dyna_greedy_only)],
}
