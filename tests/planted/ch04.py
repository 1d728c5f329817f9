"""Planted-bug variants of the chapter 04 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, arguments for the check) for each check; each variant is
the solution with one mistake. Functions take the exercise's signatures.
"""

from __future__ import annotations

import numpy as np

from rlcore.tabular import td as ref
from rlcore.tabular.bandits import argmax_random_ties, epsilon_greedy

# ------------------------------------------------------------------------------------------
# TD(0) and constant-alpha MC along one episode
# ------------------------------------------------------------------------------------------


def td0_offline(V, states, rewards, alpha, gamma=1.0):
    # Every target computed from V as it was at the start of the episode (updates not seen).
    old = np.array(V, dtype=float)
    V = old.copy()
    for t in range(len(rewards)):
        V[states[t]] += alpha * (rewards[t] + gamma * old[states[t + 1]] - old[states[t]])
    return V


def td0_gamma_ignored(V, states, rewards, alpha, gamma=1.0):
    return ref.td0_episode(V, states, rewards, alpha, 1.0)


def td0_reward_shifted(V, states, rewards, alpha, gamma=1.0):
    # R_t instead of R_{t+1}: the reward of the previous step.
    V = np.array(V, dtype=float)
    for t in range(len(rewards)):
        r = rewards[t - 1] if t > 0 else 0.0
        V[states[t]] += alpha * (r + gamma * V[states[t + 1]] - V[states[t]])
    return V


def td0_sign_flipped(V, states, rewards, alpha, gamma=1.0):
    V = np.array(V, dtype=float)
    for t in range(len(rewards)):
        V[states[t]] -= alpha * (rewards[t] + gamma * V[states[t + 1]] - V[states[t]])
    return V


def mc_first_visit(V, states, rewards, alpha, gamma=1.0):
    V = np.array(V, dtype=float)
    G = np.zeros(len(rewards))
    future = 0.0
    for t in reversed(range(len(rewards))):
        future = rewards[t] + gamma * future
        G[t] = future
    seen = set()
    for t in range(len(rewards)):
        if states[t] not in seen:
            seen.add(states[t])
            V[states[t]] += alpha * (G[t] - V[states[t]])
    return V


def mc_undiscounted(V, states, rewards, alpha, gamma=1.0):
    return ref.mc_episode(V, states, rewards, alpha, 1.0)


def mc_immediate_reward(V, states, rewards, alpha, gamma=1.0):
    # The target is the next reward only, not the whole return.
    V = np.array(V, dtype=float)
    for t in range(len(rewards)):
        V[states[t]] += alpha * (rewards[t] - V[states[t]])
    return V


def mc_return_from_start(V, states, rewards, alpha, gamma=1.0):
    # The sum of rewards *before* t (accumulated forwards) instead of the return after t.
    V = np.array(V, dtype=float)
    total = 0.0
    for t in range(len(rewards)):
        total = total + gamma**t * rewards[t]
        V[states[t]] += alpha * (total - V[states[t]])
    return V


# ------------------------------------------------------------------------------------------
# The random-walk experiment
# ------------------------------------------------------------------------------------------


def _rms(V, truth):
    return np.sqrt(np.mean((V[1:-1] - truth) ** 2))


def rms_start_at_zero(update, walk, alpha, n_runs, n_episodes, rng):
    truth = walk.true_values()
    errors = np.zeros((n_runs, n_episodes + 1))
    for run in range(n_runs):
        V = np.zeros(walk.n_states + 2)  # 0 instead of 0.5
        errors[run, 0] = _rms(V, truth)
        for e in range(1, n_episodes + 1):
            V = update(V, *walk.episode(rng), alpha)
            errors[run, e] = _rms(V, truth)
    return errors


def rms_no_reset(update, walk, alpha, n_runs, n_episodes, rng):
    truth = walk.true_values()
    errors = np.zeros((n_runs, n_episodes + 1))
    V = np.zeros(walk.n_states + 2)
    V[1:-1] = 0.5  # created once, outside the loop over runs
    for run in range(n_runs):
        errors[run, 0] = _rms(V, truth)
        for e in range(1, n_episodes + 1):
            V = update(V, *walk.episode(rng), alpha)
            errors[run, e] = _rms(V, truth)
    return errors


def rms_with_terminals(update, walk, alpha, n_runs, n_episodes, rng):
    truth = np.concatenate([[0.0], walk.true_values(), [0.0]])  # the terminals counted as states
    errors = np.zeros((n_runs, n_episodes + 1))
    for run in range(n_runs):
        V = np.zeros(walk.n_states + 2)
        V[1:-1] = 0.5
        errors[run, 0] = np.sqrt(np.mean((V - truth) ** 2))
        for e in range(1, n_episodes + 1):
            V = update(V, *walk.episode(rng), alpha)
            errors[run, e] = np.sqrt(np.mean((V - truth) ** 2))
    return errors


def rms_mean_absolute(update, walk, alpha, n_runs, n_episodes, rng):
    truth = walk.true_values()
    errors = np.zeros((n_runs, n_episodes + 1))
    for run in range(n_runs):
        V = np.zeros(walk.n_states + 2)
        V[1:-1] = 0.5
        errors[run, 0] = np.mean(np.abs(V[1:-1] - truth))
        for e in range(1, n_episodes + 1):
            V = update(V, *walk.episode(rng), alpha)
            errors[run, e] = np.mean(np.abs(V[1:-1] - truth))
    return errors


def rms_recorded_before_update(update, walk, alpha, n_runs, n_episodes, rng):
    truth = walk.true_values()
    errors = np.zeros((n_runs, n_episodes + 1))
    for run in range(n_runs):
        V = np.zeros(walk.n_states + 2)
        V[1:-1] = 0.5
        errors[run, 0] = _rms(V, truth)
        for e in range(1, n_episodes + 1):
            errors[run, e] = _rms(V, truth)  # one episode late
            V = update(V, *walk.episode(rng), alpha)
    return errors


def rms_fixed_seed_per_run(update, walk, alpha, n_runs, n_episodes, rng):
    # A new generator with the same seed in every run: all runs see the same episodes.
    truth = walk.true_values()
    errors = np.zeros((n_runs, n_episodes + 1))
    for run in range(n_runs):
        run_rng = np.random.default_rng(0)
        V = np.zeros(walk.n_states + 2)
        V[1:-1] = 0.5
        errors[run, 0] = _rms(V, truth)
        for e in range(1, n_episodes + 1):
            V = update(V, *walk.episode(run_rng), alpha)
            errors[run, e] = _rms(V, truth)
    return errors


# ------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------


def _future(terminated, values):
    return np.where(terminated, 0.0, values)


def sarsa_uses_max(rewards, next_q, next_actions, terminated, gamma):
    return rewards + gamma * _future(terminated, next_q.max(axis=1))


def sarsa_no_terminal(rewards, next_q, next_actions, terminated, gamma):
    return rewards + gamma * next_q[np.arange(len(rewards)), next_actions]


def sarsa_gamma_ignored(rewards, next_q, next_actions, terminated, gamma):
    return rewards + _future(terminated, next_q[np.arange(len(rewards)), next_actions])


def sarsa_wrong_indexing(rewards, next_q, next_actions, terminated, gamma):
    return rewards + gamma * _future(terminated, next_q[next_actions])  # rows of next_q, not entries


def q_max_over_runs(rewards, next_q, terminated, gamma):
    return rewards + gamma * _future(terminated, next_q.max(axis=0))


def q_no_terminal(rewards, next_q, terminated, gamma):
    return rewards + gamma * next_q.max(axis=1)


def q_mean(rewards, next_q, terminated, gamma):
    return rewards + gamma * _future(terminated, next_q.mean(axis=1))


def es_exploration_excludes_greedy(rewards, next_q, epsilon, terminated, gamma):
    # Exploration picks among the other actions only: greedy 1 - epsilon, each other epsilon / (A - 1).
    n, k = next_q.shape
    pi = np.full((n, k), epsilon / (k - 1))
    pi[np.arange(n), next_q.argmax(axis=1)] = 1 - epsilon
    return rewards + gamma * _future(terminated, (pi * next_q).sum(axis=1))


def es_no_epsilon_share_for_greedy(rewards, next_q, epsilon, terminated, gamma):
    # Greedy actions get only 1 - epsilon (their epsilon / k share forgotten): pi sums to < 1.
    n, k = next_q.shape
    greedy = next_q == next_q.max(axis=1, keepdims=True)
    pi = np.where(greedy, (1 - epsilon) / greedy.sum(axis=1, keepdims=True), epsilon / k)
    return rewards + gamma * _future(terminated, (pi * next_q).sum(axis=1))


def es_uniform(rewards, next_q, epsilon, terminated, gamma):
    return rewards + gamma * _future(terminated, next_q.mean(axis=1))


def es_no_terminal(rewards, next_q, epsilon, terminated, gamma):
    return ref.expected_sarsa_target(rewards, next_q, epsilon, np.zeros_like(terminated), gamma)


# ------------------------------------------------------------------------------------------
# The training loop
# ------------------------------------------------------------------------------------------


def _loop(env, method, n_episodes, alpha, epsilon, gamma, rng, *, sarsa_max=False, greedy=False,
          stop_at_first=False, ignore_terminated=False):
    Q = np.zeros((env.n_runs, env.n_states, env.n_actions))
    rows = np.arange(env.n_runs)
    eps = 0.0 if greedy else epsilon
    states = env.reset()
    actions = epsilon_greedy(Q[rows, states], eps, rng)
    def running():
        finished = env.episodes_done.max() if stop_at_first else env.episodes_done.min()
        return finished < n_episodes

    while running():
        next_states, rewards, terminated = env.step(actions)
        if ignore_terminated:
            terminated = np.zeros_like(terminated)
        next_q = Q[rows, next_states]
        if method == "sarsa" and not sarsa_max:
            next_actions = epsilon_greedy(next_q, eps, rng)
            targets = ref.sarsa_target(rewards, next_q, next_actions, terminated, gamma)
        elif method in ("q_learning", "sarsa"):
            targets = ref.q_learning_target(rewards, next_q, terminated, gamma)
        else:
            targets = ref.expected_sarsa_target(rewards, next_q, epsilon, terminated, gamma)
        Q[rows, states, actions] += alpha * (targets - Q[rows, states, actions])
        if method != "sarsa" or sarsa_max:
            next_actions = epsilon_greedy(Q[rows, next_states], eps, rng)
        states, actions = next_states, next_actions
    return Q


def loop_sarsa_is_q_learning(env, method, n_episodes, alpha, epsilon, gamma, rng):
    return _loop(env, method, n_episodes, alpha, epsilon, gamma, rng, sarsa_max=True)


def loop_never_explores(env, method, n_episodes, alpha, epsilon, gamma, rng):
    return _loop(env, method, n_episodes, alpha, epsilon, gamma, rng, greedy=True)


def loop_stops_at_first_run(env, method, n_episodes, alpha, epsilon, gamma, rng):
    return _loop(env, method, n_episodes, alpha, epsilon, gamma, rng, stop_at_first=True)


def loop_bootstraps_across_episodes(env, method, n_episodes, alpha, epsilon, gamma, rng):
    return _loop(env, method, n_episodes, alpha, epsilon, gamma, rng, ignore_terminated=True)


# ------------------------------------------------------------------------------------------
# Double Q-learning
# ------------------------------------------------------------------------------------------


def _double(Q1, Q2, states, actions, rewards, next_states, terminated, alpha, gamma, rng, *, same_table=False,
            always_first=False, first_index=False, critic_max=False):
    rows = np.arange(len(states))
    first = np.ones(len(states), dtype=bool) if always_first else rng.random(len(states)) < 0.5
    for learner, critic, mine in ((Q1, Q2, first), (Q2, Q1, ~first)):
        r, s, a, s_next = rows[mine], states[mine], actions[mine], next_states[mine]
        picks = learner[r, s_next]
        best = picks.argmax(axis=1) if first_index else argmax_random_ties(picks, rng)
        if critic_max:
            value = critic[r, s_next].max(axis=1)
        else:
            value = (learner if same_table else critic)[r, s_next, best]
        targets = rewards[mine] + gamma * np.where(terminated[mine], 0.0, value)
        learner[r, s, a] += alpha * (targets - learner[r, s, a])
    return Q1, Q2


def dq_same_table(*args):
    return _double(*args, same_table=True)


def dq_always_q1(*args):
    return _double(*args, always_first=True)


def dq_ties_first(*args):
    return _double(*args, first_index=True)


def dq_critic_own_max(*args):
    return _double(*args, critic_max=True)


BUGS = {
    "td0_episode": [("targets from V before the episode (offline)", (td0_offline,)),
                    ("gamma ignored", (td0_gamma_ignored,)),
                    ("reward of the previous step (R_t for R_t+1)", (td0_reward_shifted,)),
                    ("TD error subtracted", (td0_sign_flipped,))],
    "mc_episode": [("first-visit instead of every-visit", (mc_first_visit,)),
                   ("gamma ignored", (mc_undiscounted,)),
                   ("next reward instead of the return", (mc_immediate_reward,)),
                   ("rewards accumulated from the start of the episode", (mc_return_from_start,))],
    "rms_curve": [("V starts at 0", (rms_start_at_zero,)),
                  ("V not reset between runs", (rms_no_reset,)),
                  ("terminal states counted in the error", (rms_with_terminals,)),
                  ("mean absolute error instead of RMS", (rms_mean_absolute,)),
                  ("error recorded before the update", (rms_recorded_before_update,)),
                  ("the same seed in every run", (rms_fixed_seed_per_run,))],
    "sarsa_target": [("max over next actions (Q-learning)", (sarsa_uses_max,)),
                     ("terminal transitions bootstrap", (sarsa_no_terminal,)),
                     ("gamma ignored", (sarsa_gamma_ignored,)),
                     ("next_q[next_actions] picks rows", (sarsa_wrong_indexing,))],
    "q_learning_target": [("max over runs (axis 0)", (q_max_over_runs,)),
                          ("terminal transitions bootstrap", (q_no_terminal,)),
                          ("mean instead of max", (q_mean,))],
    "expected_sarsa_target": [("exploration excludes the greedy action", (es_exploration_excludes_greedy,)),
                              ("greedy actions miss their epsilon / A share", (es_no_epsilon_share_for_greedy,)),
                              ("uniform policy", (es_uniform,)),
                              ("terminal transitions bootstrap", (es_no_terminal,))],
    "td_control": [("Sarsa uses the Q-learning target", (loop_sarsa_is_q_learning,)),
                   ("never explores (epsilon ignored)", (loop_never_explores,)),
                   ("stops when the first run has finished", (loop_stops_at_first_run,)),
                   ("bootstraps across the episode boundary", (loop_bootstraps_across_episodes,))],
    "double_q_update": [("one table picks and values", (dq_same_table,)),
                        ("always updates Q1", (dq_always_q1,)),
                        ("ties to the first action", (dq_ties_first,)),
                        ("the other table's own maximum", (dq_critic_own_max,))],
    "maximization_bias": [("Double Q with one table picking and valuing", (ref.q_learning_target, dq_same_table)),
                          ("Double Q always updating Q1", (ref.q_learning_target, dq_always_q1)),
                          ("Q-learning with the mean instead of the max", (q_mean, ref.double_q_update)),
                          ("Q-learning target without terminal masking", (q_no_terminal, ref.double_q_update))],
}
