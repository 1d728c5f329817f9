"""Temporal-difference learning (Sutton & Barto, 2nd ed., chapter 6).

Prediction (estimating v_pi of the random walk, Examples 6.2 and 6.3):

    td0_episode, mc_episode       one episode of TD(0) / constant-alpha MC updates on a table V [S]
    td0_episodes, mc_episodes     the same, one episode per run for R runs at once, V [R, S]
    rms_curve, prediction_curves  the experiment of Example 6.2 (per-run loop / vectorized)
    batch_values, batch_sweep     batch updating (Figure 6.2): the fixed points and one sweep

Control (learning q* on the grids of rlcore.tabular.gridworlds, Figures 6.4 and 6.5):

    epsilon_greedy, epsilon_greedy_probs           behaviour and target policy
    sarsa_target, q_learning_target, expected_sarsa_target
    td_control                                     the training loop for those three
    double_q_update, double_q_learning             Double Q-learning
    run_control                                    one call: fresh environment, loop, records

Every update has the same shape, new estimate = old + alpha * (target - old); the methods differ
only in the target:

    TD(0)            R + gamma V(S')                       bootstraps from the estimate of S'
    constant-a MC    G (the whole return)                  waits for the end of the episode
    Sarsa            R + gamma Q(S', A')                   A' the action it will really take
    Q-learning       R + gamma max_a Q(S', a)              the greedy action, whatever it takes
    Expected Sarsa   R + gamma sum_a pi(a|S') Q(S', a)     the average over its own policy
    Double Q         R + gamma Q2(S', argmax_a Q1(S', a))  one table picks, the other evaluates

and a terminal S' contributes nothing after R ("the value of a terminal state is 0").

Shapes: one episode is `states [L + 1]` (ending in a terminal state) and `rewards [L]`, as produced
by `rlcore.tabular.random_walk.RandomWalk.episode`; value tables include the terminal states, whose
entries stay 0. Control code is vectorized over R independent runs: Q [R, S, A], and every per-step
array (states, actions, rewards, terminated) is [R]. No function here uses global random state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rlcore.returns import returns_to_go
from rlcore.tabular.bandits import argmax_random_ties
from rlcore.tabular.bandits import epsilon_greedy as _epsilon_greedy_unmasked
from rlcore.tabular.gridworlds import TabularMDP, VecEnv
from rlcore.tabular.random_walk import RandomWalk


def _check_step_sizes(alpha, gamma) -> tuple[float, float]:
    a, g = float(alpha), float(gamma)
    if not 0.0 < a <= 1.0:
        raise ValueError(f"alpha must be a step size in (0, 1], got {alpha!r}.")
    if not 0.0 <= g <= 1.0:
        raise ValueError(f"gamma must be a discount factor in [0, 1], got {gamma!r}.")
    return a, g


def _check_episode(V: np.ndarray, states, rewards) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(states)
    r = np.asarray(rewards, dtype=float)
    if s.ndim != 1 or r.ndim != 1 or s.size != r.size + 1:
        raise ValueError(f"an episode is states [L + 1] and rewards [L]; got shapes {s.shape} and {r.shape}.")
    if not np.issubdtype(s.dtype, np.integer) or s.min() < 0 or s.max() >= V.shape[-1]:
        raise ValueError(f"states must be integers in 0..{V.shape[-1] - 1} (indices into V), got {s[:8]}...")
    return s, r


# =============================================================================================
# Prediction: one episode at a time
# =============================================================================================


def td0_episode(V: np.ndarray, states, rewards, alpha: float, gamma: float = 1.0) -> np.ndarray:
    """TD(0) along one episode (eq. 6.2), updating as it goes:

        for t = 0 .. L-1:   V[S_t] += alpha * (R_{t+1} + gamma * V[S_{t+1}] - V[S_t])

    V [S] includes the terminal states, whose entries must be 0 and are never updated, so the last
    target is just the final reward. Updates are *online*: the target at step t uses V as changed by
    the updates at steps < t (it matters when a state is visited twice in a row of the walk).

    V [S], states [L + 1] int, rewards [L] -> V [S] (a new array)
    """
    alpha, gamma = _check_step_sizes(alpha, gamma)
    V = np.array(V, dtype=float)  # a copy
    s, r = _check_episode(V, states, rewards)
    s, r = s.tolist(), r.tolist()  # Python numbers: a plain loop over them is several times faster
    for t in range(len(r)):
        V[s[t]] += alpha * (r[t] + gamma * V[s[t + 1]] - V[s[t]])
    return V


def mc_episode(V: np.ndarray, states, rewards, alpha: float, gamma: float = 1.0) -> np.ndarray:
    """Every-visit constant-alpha Monte Carlo (eq. 6.1) after the episode has ended:

        for t = 0 .. L-1:   V[S_t] += alpha * (G_t - V[S_t]),   G_t = R_{t+1} + gamma * G_{t+1}

    applied in time order, each update seeing the previous ones (a state visited twice moves twice).

    V [S], states [L + 1] int, rewards [L] -> V [S] (a new array)
    """
    alpha, gamma = _check_step_sizes(alpha, gamma)
    V = np.array(V, dtype=float)
    s, r = _check_episode(V, states, rewards)
    G = returns_to_go(r, gamma).tolist()  # [L]
    s = s.tolist()
    for t in range(len(G)):
        V[s[t]] += alpha * (G[t] - V[s[t]])
    return V


def rms_error(V: np.ndarray, true_values: np.ndarray) -> np.ndarray | float:
    """Root-mean-square error over the non-terminal states, the y axis of Example 6.2.

    V [..., n + 2] (a table with both terminals, as above), true_values [n] -> [...] (a float for one V)
    """
    V = np.asarray(V, dtype=float)
    v = np.asarray(true_values, dtype=float)
    if V.shape[-1] != v.size + 2:
        raise ValueError(f"V has {V.shape[-1]} entries; expected {v.size + 2} (the {v.size} states and 2 terminals).")
    err = np.sqrt(np.mean((V[..., 1:-1] - v) ** 2, axis=-1))
    return float(err) if err.ndim == 0 else err


Update = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def rms_curve(update: Update, walk: RandomWalk, alpha: float, n_runs: int, n_episodes: int,
              rng: np.random.Generator, *, initial: float = 0.5) -> np.ndarray:
    """The experiment of Example 6.2 (undiscounted), one run and one episode at a time.

    For every run: V starts at `initial` for the non-terminal states (0.5, halfway between the
    rewards, in the book) and 0 at the terminals; then `n_episodes` times, play one episode of
    `walk` and apply `V = update(V, states, rewards, alpha)` (td0_episode or mc_episode).
    Records the RMS error before the first episode and after each one.

    -> errors [n_runs, n_episodes + 1]; errors[:, 0] is the error of the initial guess
    """
    truth = walk.true_values()
    errors = np.empty((n_runs, n_episodes + 1))
    for run in range(n_runs):
        V = np.zeros(walk.n_states + 2)
        V[1:-1] = initial
        errors[run, 0] = rms_error(V, truth)
        for episode in range(1, n_episodes + 1):
            states, rewards = walk.episode(rng)
            V = update(V, states, rewards, alpha)
            errors[run, episode] = rms_error(V, truth)
    return errors


# =============================================================================================
# Prediction vectorized over runs
# =============================================================================================


def td0_episodes(V: np.ndarray, states: np.ndarray, rewards: np.ndarray, lengths: np.ndarray,
                 alpha: float, gamma: float = 1.0) -> np.ndarray:
    """`td0_episode` for R runs at once, each run along its own episode (padded, RandomWalk.pad).

    V [R, S], states [R, L + 1], rewards [R, L], lengths [R] -> V [R, S] (a new array).
    All runs take step t together; a run whose episode is shorter than t + 1 steps sits it out.
    """
    alpha, gamma = _check_step_sizes(alpha, gamma)
    V = np.array(V, dtype=float)
    rows = np.arange(V.shape[0])
    for t in range(rewards.shape[1]):
        live = t < lengths  # [R]
        s, s_next = states[:, t], states[:, t + 1]
        delta = rewards[:, t] + gamma * V[rows, s_next] - V[rows, s]  # [R] TD errors
        V[rows, s] += np.where(live, alpha * delta, 0.0)
    return V


def mc_episodes(V: np.ndarray, states: np.ndarray, rewards: np.ndarray, lengths: np.ndarray,
                alpha: float, gamma: float = 1.0) -> np.ndarray:
    """`mc_episode` for R runs at once (padded episodes, as in td0_episodes).

    V [R, S], states [R, L + 1], rewards [R, L], lengths [R] -> V [R, S] (a new array)
    """
    alpha, gamma = _check_step_sizes(alpha, gamma)
    V = np.array(V, dtype=float)
    rows = np.arange(V.shape[0])
    G = np.zeros_like(rewards)  # [R, L]; rewards are 0 after the end, so G is too
    future = np.zeros(V.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        future = rewards[:, t] + gamma * future
        G[:, t] = future
    for t in range(rewards.shape[1]):
        live = t < lengths
        s = states[:, t]
        V[rows, s] += np.where(live, alpha * (G[:, t] - V[rows, s]), 0.0)
    return V


def prediction_curves(walk: RandomWalk, method: str, alpha: float, n_runs: int, n_episodes: int,
                      rng: np.random.Generator, *, initial: float = 0.5, gamma: float = 1.0) -> np.ndarray:
    """`rms_curve` vectorized over runs: the same experiment, one numpy call per time step for all
    runs (for the reference runs, thousands of them). method: "td" or "mc".

    -> errors [n_runs, n_episodes + 1]
    """
    update = {"td": td0_episodes, "mc": mc_episodes}.get(method)
    if update is None:
        raise ValueError(f"method must be 'td' or 'mc', got {method!r}.")
    truth = walk.true_values(gamma)
    V = np.zeros((n_runs, walk.n_states + 2))
    V[:, 1:-1] = initial
    errors = np.empty((n_runs, n_episodes + 1))
    errors[:, 0] = rms_error(V, truth)
    for episode in range(1, n_episodes + 1):
        states, rewards, lengths = walk.padded_episodes(n_runs, rng)
        V = update(V, states, rewards, lengths, alpha, gamma)
        errors[:, episode] = rms_error(V, truth)
    return errors


# =============================================================================================
# Batch updating (Example 6.3, Figure 6.2)
# =============================================================================================


def batch_sweep(V: np.ndarray, episodes, method: str, alpha: float, gamma: float = 1.0) -> np.ndarray:
    """One sweep of batch updating: the increments of every step of every episode are computed
    with the same V and summed, then applied once (section 6.3).

    V [S], episodes: list of (states [L_i + 1], rewards [L_i]) -> V [S] (a new array)
    Repeating sweeps with a small alpha converges to `batch_values`.
    """
    alpha, gamma = _check_step_sizes(alpha, gamma)
    V = np.asarray(V, dtype=float)
    increment = np.zeros_like(V)
    for states, rewards in episodes:
        s = np.asarray(states)
        if method == "td":
            targets = rewards + gamma * V[s[1:]]
        elif method == "mc":
            targets = returns_to_go(rewards, gamma)
        else:
            raise ValueError(f"method must be 'td' or 'mc', got {method!r}.")
        np.add.at(increment, s[:-1], alpha * (targets - V[s[:-1]]))
    return V + increment


def _batch_statistics(states: np.ndarray, rewards: np.ndarray, lengths: np.ndarray, n_states: int,
                      gamma: float) -> dict[str, np.ndarray]:
    """Sufficient statistics of R batches of padded episodes (states [R, N, L + 1], rewards
    [R, N, L], lengths [R, N]): per run, visits [R, S], transition counts [R, S, S], sums of the
    immediate rewards [R, S] and of the returns [R, S] that followed each visit. They add up over
    episodes, so a growing batch is summarized episode by episode."""
    n_runs, size = states.shape[0], n_states + 2
    live = np.arange(rewards.shape[2]) < lengths[..., None]  # [R, N, L]: the real steps
    run = np.broadcast_to(np.arange(n_runs)[:, None, None], live.shape)[live]  # one entry per real step
    s, s_next = states[:, :, :-1][live], states[:, :, 1:][live]
    G = np.zeros_like(rewards)  # [R, N, L] returns; rewards are 0 after the end, so G is too
    future = np.zeros(rewards.shape[:2])
    for t in range(rewards.shape[2] - 1, -1, -1):
        future = rewards[:, :, t] + gamma * future
        G[:, :, t] = future
    stats = {"visits": np.zeros((n_runs, size)), "counts": np.zeros((n_runs, size, size)),
             "reward_sum": np.zeros((n_runs, size)), "return_sum": np.zeros((n_runs, size))}
    np.add.at(stats["visits"], (run, s), 1.0)
    np.add.at(stats["counts"], (run, s, s_next), 1.0)
    np.add.at(stats["reward_sum"], (run, s), rewards[live])
    np.add.at(stats["return_sum"], (run, s), G[live])
    return stats


def _batch_solve(stats: dict[str, np.ndarray], method: str, initial: float, gamma: float) -> np.ndarray:
    """The fixed point of batch TD(0) ("td") or batch every-visit MC ("mc") from the statistics."""
    visits = stats["visits"]
    n_runs, size = visits.shape
    visited = visits > 0
    if method == "mc":
        V = np.where(visited, stats["return_sum"] / np.maximum(visits, 1.0), initial)
    elif method == "td":
        inner = slice(1, size - 1)  # the non-terminal states; terminal values are 0
        n_states = size - 2
        n = np.maximum(visits[:, inner], 1.0)  # [R, n]
        P = stats["counts"][:, inner, inner] / n[:, :, None]  # [R, n, n] estimated transitions among them
        A = np.eye(n_states) - gamma * P
        b = stats["reward_sum"][:, inner] / n  # [R, n] mean immediate reward
        unvisited = ~visited[:, inner]  # such a row becomes V(s) = initial
        A = np.where(unvisited[:, :, None], np.eye(n_states), A)
        b = np.where(unvisited, initial, b)
        V = np.zeros((n_runs, size))
        V[:, inner] = np.linalg.solve(A, b[..., None])[..., 0]
    else:
        raise ValueError(f"method must be 'td' or 'mc', got {method!r}.")
    V[:, 0] = V[:, -1] = 0.0
    return V


def batch_values(states: np.ndarray, rewards: np.ndarray, lengths: np.ndarray, n_states: int,
                 method: str, *, initial: float = 0.5, gamma: float = 1.0) -> np.ndarray:
    """Where batch updating converges, for R runs at once, each with its own batch of episodes.

    states [R, N, L + 1], rewards [R, N, L], lengths [R, N]: N padded episodes per run (padding as in
    RandomWalk.pad); n_states: non-terminal states 1..n_states (terminals 0 and n_states + 1).
    -> V [R, n_states + 2]

    - "mc": every state's value is the average of the returns that followed its visits (every-visit);
    - "td": the value of the maximum-likelihood Markov model of the batch (certainty equivalence):
      V(s) = mean reward after s + gamma * sum_s' P_hat(s'|s) V(s'), a linear system per run.
    A state never visited keeps `initial`.
    """
    if method not in ("td", "mc"):
        raise ValueError(f"method must be 'td' or 'mc', got {method!r}.")
    return _batch_solve(_batch_statistics(states, rewards, lengths, n_states, gamma), method, initial, gamma)


def batch_curves(walk: RandomWalk, n_runs: int, n_episodes: int, rng: np.random.Generator, *,
                 initial: float = 0.5, gamma: float = 1.0) -> dict[str, np.ndarray]:
    """Figure 6.2: after each new episode, batch TD(0) and batch MC are run to convergence on all
    episodes so far (computed exactly with the fixed points of `batch_values`).

    -> {"td": errors [R, E + 1], "mc": errors [R, E + 1]}
    """
    truth = walk.true_values(gamma)
    out = {m: np.empty((n_runs, n_episodes + 1)) for m in ("td", "mc")}
    stats = None
    for e in range(n_episodes + 1):
        if e > 0:
            states, rewards, lengths = walk.padded_episodes(n_runs, rng)  # episode e of every run
            new = _batch_statistics(states[:, None], rewards[:, None], lengths[:, None], walk.n_states, gamma)
            stats = new if stats is None else {k: stats[k] + new[k] for k in stats}
        for m in out:
            if stats is None:
                V = np.full((n_runs, walk.n_states + 2), initial)
                V[:, [0, -1]] = 0.0
            else:
                V = _batch_solve(stats, m, initial, gamma)
            out[m][:, e] = rms_error(V, truth)
    return out


# =============================================================================================
# Control: policies and targets
# =============================================================================================


def epsilon_greedy_probs(q: np.ndarray, epsilon: float, valid: np.ndarray | None = None) -> np.ndarray:
    """The probabilities of the epsilon-greedy policy with random tie-breaking.

    Each action gets epsilon / n (n = the number of actions that exist), and the greedy actions
    share the remaining 1 - epsilon equally: with Q = 0 everywhere, every action is greedy and the
    policy is uniform. q [..., A], valid [..., A] bool or None (all exist) -> pi [..., A]
    """
    q = np.asarray(q, dtype=float)
    if valid is None:
        valid = np.ones(q.shape, dtype=bool)
    masked = np.where(valid, q, -np.inf)
    greedy = valid & (masked == masked.max(axis=-1, keepdims=True))  # [..., A]
    n_valid = valid.sum(axis=-1, keepdims=True)
    n_greedy = greedy.sum(axis=-1, keepdims=True)
    return np.where(valid, epsilon / n_valid, 0.0) + np.where(greedy, (1.0 - epsilon) / n_greedy, 0.0)


def epsilon_greedy(q: np.ndarray, epsilon: float, rng: np.random.Generator,
                   valid: np.ndarray | None = None) -> np.ndarray:
    """Epsilon-greedy actions, one per row, ties broken at random (chapter 01's function, plus an
    optional mask of the actions that exist in each row's state).

    q [R, A], valid [R, A] bool or None -> actions [R] int
    """
    if valid is None:
        return _epsilon_greedy_unmasked(q, epsilon, rng)
    q = np.asarray(q, dtype=float)
    greedy = argmax_random_ties(np.where(valid, q, -np.inf), rng)  # [R]
    explore = rng.random(q.shape[0]) < epsilon
    random_valid = np.where(valid, rng.random(q.shape), -1.0).argmax(axis=1)  # uniform among existing
    return np.where(explore, random_valid, greedy)


def _bootstrap(rewards, values, terminated, gamma: float) -> np.ndarray:
    """R + gamma * values, with nothing after R where the episode terminated."""
    return np.asarray(rewards, dtype=float) + gamma * np.where(terminated, 0.0, values)


def sarsa_target(rewards, next_q, next_actions, terminated, gamma: float) -> np.ndarray:
    """R + gamma * Q(S', A'), with A' the action the agent will take in S' (on-policy, eq. 6.7).

    rewards [R], next_q [R, A] (= Q[rows, S']), next_actions [R] int, terminated [R] bool -> [R]
    """
    next_q = np.asarray(next_q, dtype=float)
    chosen = next_q[np.arange(next_q.shape[0]), next_actions]  # [R]: Q(S', A') in every run
    return _bootstrap(rewards, chosen, terminated, gamma)


def q_learning_target(rewards, next_q, terminated, gamma: float) -> np.ndarray:
    """R + gamma * max_a Q(S', a): the value of the greedy policy, whatever the agent does next
    (off-policy, eq. 6.8). rewards [R], next_q [R, A], terminated [R] bool -> [R]"""
    return _bootstrap(rewards, np.asarray(next_q, dtype=float).max(axis=-1), terminated, gamma)


def expected_sarsa_target(rewards, next_q, epsilon: float, terminated, gamma: float) -> np.ndarray:
    """R + gamma * sum_a pi(a|S') Q(S', a), pi the agent's own epsilon-greedy policy with ties
    shared (eq. 6.9). rewards [R], next_q [R, A], terminated [R] bool -> [R]"""
    next_q = np.asarray(next_q, dtype=float)
    expected = (epsilon_greedy_probs(next_q, epsilon) * next_q).sum(axis=-1)
    return _bootstrap(rewards, expected, terminated, gamma)


METHODS = ("sarsa", "q_learning", "expected_sarsa")


def td_control(env: VecEnv, method: str, n_episodes: int, alpha: float, epsilon: float, gamma: float,
               rng: np.random.Generator, *, target: Callable | None = None) -> np.ndarray:
    """Sarsa, Q-learning or Expected Sarsa (the boxes of sections 6.4-6.6) on R runs at once.

    env: a VecEnv (it records returns; reset here). Q starts at 0 in every run. Each step:
        S' , R, terminated = env.step(A)
        Sarsa:  choose A' in S' (epsilon-greedy on Q), then update with R + gamma Q(S', A')
        others: update with their target, then choose A' in S' with the updated Q
        Q(S, A) += alpha * (target - Q(S, A));  S, A <- S', A'
    until every run has finished n_episodes episodes. `target` replaces the method's target
    function (same signature), so the grader can run a learner's target in this loop.

    -> Q [R, S, A]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    alpha, gamma = _check_step_sizes(alpha, gamma)
    if method == "expected_sarsa" and env.mdp.masked:
        raise ValueError("expected_sarsa needs every action to exist in every state; this MDP has fewer in some.")
    mdp = env.mdp
    masked = mdp.masked
    Q = np.zeros((env.n_runs, env.n_states, env.n_actions))
    rows = np.arange(env.n_runs)

    def act(states):
        return epsilon_greedy(Q[rows, states], epsilon, rng, mdp.valid(states) if masked else None)

    target_fn = target or {"sarsa": sarsa_target, "q_learning": q_learning_target,
                           "expected_sarsa": expected_sarsa_target}[method]
    states = env.reset()
    actions = act(states)
    while env.episodes_done.min() < n_episodes:
        next_states, rewards, terminated = env.step(actions)
        next_q = Q[rows, next_states]  # [R, A]; for a finished run, the next episode's start
        if method == "sarsa":
            next_actions = act(next_states)  # A' is chosen before the update, and then taken
            targets = target_fn(rewards, next_q, next_actions, terminated, gamma)
        elif method == "q_learning":
            targets = target_fn(rewards, next_q, terminated, gamma)
        else:
            targets = target_fn(rewards, next_q, epsilon, terminated, gamma)
        Q[rows, states, actions] += alpha * (targets - Q[rows, states, actions])
        if method != "sarsa":
            next_actions = act(next_states)  # chosen with the updated Q, as in the book's box
        states, actions = next_states, next_actions
    return Q


# =============================================================================================
# Double Q-learning (section 6.7)
# =============================================================================================


def double_q_update(Q1: np.ndarray, Q2: np.ndarray, states, actions, rewards, next_states, terminated,
                    alpha: float, gamma: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One Double Q-learning step in every run (the box of section 6.7).

    With probability 1/2, independently per run, Q1 learns:
        A* = argmax_a Q1(S', a)  (ties broken at random)
        Q1(S, A) += alpha * (R + gamma * Q2(S', A*) - Q1(S, A))
    otherwise the same with Q1 and Q2 swapped. One table picks the action, the other says what it
    is worth, so the noise that made an action look best is not also the noise that values it.

    Q1, Q2 [R, S, A]; states, actions, next_states [R] int; rewards [R]; terminated [R] bool
    -> (Q1, Q2), new arrays
    """
    Q1, Q2 = np.array(Q1, dtype=float), np.array(Q2, dtype=float)
    rows = np.arange(Q1.shape[0])
    first = rng.random(Q1.shape[0]) < 0.5  # [R]: which table learns in each run
    learner = np.where(first[:, None], Q1[rows, next_states], Q2[rows, next_states])  # [R, A] picks A*
    critic = np.where(first[:, None], Q2[rows, next_states], Q1[rows, next_states])  # [R, A] values it
    best = argmax_random_ties(learner, rng)  # [R]
    targets = _bootstrap(rewards, critic[rows, best], terminated, gamma)
    for table, mine in ((Q1, first), (Q2, ~first)):
        r = rows[mine]
        s, a = np.asarray(states)[mine], np.asarray(actions)[mine]
        table[r, s, a] += alpha * (targets[mine] - table[r, s, a])
    return Q1, Q2


def double_q_learning(env: VecEnv, n_episodes: int, alpha: float, epsilon: float, gamma: float,
                      rng: np.random.Generator, *, update: Callable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Double Q-learning on R runs: act epsilon-greedily on Q1 + Q2, learn with `double_q_update`
    (or `update`, same signature), until every run has finished n_episodes. -> (Q1, Q2) [R, S, A]"""
    alpha, gamma = _check_step_sizes(alpha, gamma)
    mdp = env.mdp
    Q1 = np.zeros((env.n_runs, env.n_states, env.n_actions))
    Q2 = np.zeros_like(Q1)
    rows = np.arange(env.n_runs)
    update = update or double_q_update
    states = env.reset()
    while env.episodes_done.min() < n_episodes:
        both = Q1[rows, states] + Q2[rows, states]  # [R, A]
        actions = epsilon_greedy(both, epsilon, rng, mdp.valid(states) if mdp.masked else None)
        next_states, rewards, terminated = env.step(actions)
        Q1, Q2 = update(Q1, Q2, states, actions, rewards, next_states, terminated, alpha, gamma, rng)
        states = next_states
    return Q1, Q2


# =============================================================================================
# One experiment in one call
# =============================================================================================


@dataclass
class ControlRun:
    """What `run_control` recorded, first n_episodes episodes of every run.

    returns [R, E] (sum of rewards per episode, Figure 6.4's y axis), lengths [R, E] int,
    first_actions [R, E] int (the action in the start state, Figure 6.5), Q [R, S, A] at the end
    (for Double Q-learning, Q1 + Q2).
    """

    returns: np.ndarray
    lengths: np.ndarray
    first_actions: np.ndarray
    Q: np.ndarray


def run_control(mdp: TabularMDP, method: str, *, n_runs: int, n_episodes: int, alpha: float, epsilon: float,
                gamma: float = 1.0, seed: int | np.random.SeedSequence = 0,
                max_total_steps: int | None = None) -> ControlRun:
    """Run `method` ("sarsa", "q_learning", "expected_sarsa" or "double_q") on n_runs fresh copies
    of `mdp`. The environment and the agent draw from separate streams spawned from `seed`, so
    every method given the same seed meets the same reward noise stream (common random numbers)."""
    if isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    env_rng, agent_rng = np.random.default_rng(seed).spawn(2)
    env = VecEnv(mdp, n_runs, env_rng, max_total_steps=max_total_steps)
    if method == "double_q":
        Q1, Q2 = double_q_learning(env, n_episodes, alpha, epsilon, gamma, agent_rng)
        Q = Q1 + Q2
    else:
        Q = td_control(env, method, n_episodes, alpha, epsilon, gamma, agent_rng)
    return ControlRun(returns=env.returns(n_episodes), lengths=env.lengths(n_episodes),
                      first_actions=env.first_actions(n_episodes), Q=Q)
