"""Planted-bug variants of the chapter 02 pieces: realistic mistakes the checks must catch, and
legitimate variants (other tie-breaking, other sweep orders, plain Python loops) they must accept.

`UNIT_BUGS[check_name]` lists (description, buggy function) for each unit check;
`FIGURE_BUGS[check_name]` lists (description, arguments) for each reproduction check, the arguments
being the functions the check takes; `LEGIT[check_name]` lists variants that must pass.
Every variant is built on correct pieces from `rlcore.tabular.dp` with one thing changed, so each
one fails for the reason its description gives.
"""

from __future__ import annotations

import numpy as np

from rlcore.tabular import dp as ref


def _masked(mdp, q):
    return np.where(mdp.allowed, q, -np.inf)


def _one_hot(mdp, actions):
    return np.eye(mdp.n_actions)[actions]


# ------------------------------------------------------------------------------------------
# q_from_v
# ------------------------------------------------------------------------------------------


def q_no_gamma(mdp, v):
    return mdp.R + mdp.P @ v


def q_reward_discounted(mdp, v):
    return mdp.gamma * (mdp.R + mdp.P @ v)


def q_current_state(mdp, v):
    return mdp.R + mdp.gamma * v[:, None]  # the value of s itself, not of where (s, a) leads


def q_wrong_axis(mdp, v):
    return mdp.R + mdp.gamma * np.einsum("tas,t->sa", mdp.P, v)  # P[s', a, s] instead of P[s, a, s']


def q_max_next_state(mdp, v):
    # The best reachable next state instead of the expectation ("plans as if it controlled the dice").
    reachable = np.where(mdp.P > 0, v[None, None, :], -np.inf)
    return mdp.R + mdp.gamma * reachable.max(axis=2)


# ------------------------------------------------------------------------------------------
# policy_evaluation (all share the correct loop, with one thing changed)
# ------------------------------------------------------------------------------------------


def _evaluate(mdp, pi, theta, in_place, max_sweeps, *, backup="expectation", stop="max", gamma=None,
              off_by_one=False):
    gamma = mdp.gamma if gamma is None else gamma
    v = np.zeros(mdp.n_states)
    sweeps = 0
    limit = None if max_sweeps is None else max_sweeps + (1 if off_by_one else 0)
    while limit is None or sweeps < limit:
        old = v.copy()
        for s in range(mdp.n_states) if in_place else [None]:
            q = mdp.R + gamma * (mdp.P @ v)  # [S, A] from the current v
            new = (pi * q).sum(axis=1) if backup == "expectation" else _masked(mdp, q).max(axis=1)
            if s is None:
                v = new
            else:
                v[s] = new[s]
        sweeps += 1
        change = np.abs(v - old)
        delta = {"max": change.max(), "mean": change.mean(), "first": change[0]}[stop]
        if delta < theta:
            break
    return v


def pe_always_synchronous(mdp, pi, theta, in_place=False, max_sweeps=None):
    return _evaluate(mdp, pi, theta, False, max_sweeps)


def pe_always_in_place(mdp, pi, theta, in_place=False, max_sweeps=None):
    return _evaluate(mdp, pi, theta, True, max_sweeps)


def pe_max_backup(mdp, pi, theta, in_place=False, max_sweeps=None):
    return _evaluate(mdp, pi, theta, in_place, max_sweeps, backup="max")  # value iteration, pi ignored


def pe_mean_change(mdp, pi, theta, in_place=False, max_sweeps=None):
    return _evaluate(mdp, pi, theta, in_place, max_sweeps, stop="mean")  # stops on the average change


def pe_one_sweep_too_many(mdp, pi, theta, in_place=False, max_sweeps=None):
    return _evaluate(mdp, pi, theta, in_place, max_sweeps, off_by_one=True)


def pe_first_state_change(mdp, pi, theta, in_place=False, max_sweeps=None):
    return _evaluate(mdp, pi, theta, in_place, max_sweeps, stop="first")  # delta of state 0 only


def pe_theta_ignored(mdp, pi, theta, in_place=False, max_sweeps=None):
    return _evaluate(mdp, pi, 1e-3, in_place, max_sweeps)  # a hard-coded threshold


# ------------------------------------------------------------------------------------------
# greedy_policy
# ------------------------------------------------------------------------------------------


def greedy_ignores_allowed(mdp, v):
    return _one_hot(mdp, ref.q_from_v(mdp, v).argmax(axis=1))


def greedy_argmin(mdp, v):
    return _one_hot(mdp, np.where(mdp.allowed, ref.q_from_v(mdp, v), np.inf).argmin(axis=1))


def greedy_on_reward(mdp, v):
    return _one_hot(mdp, _masked(mdp, mdp.R).argmax(axis=1))  # myopic: the next state is ignored


def greedy_no_gamma(mdp, v):
    return _one_hot(mdp, _masked(mdp, mdp.R + mdp.P @ v).argmax(axis=1))


def greedy_current_state(mdp, v):
    return _one_hot(mdp, _masked(mdp, q_current_state(mdp, v)).argmax(axis=1))


# ------------------------------------------------------------------------------------------
# policy_iteration
# ------------------------------------------------------------------------------------------


def _policy_iteration(mdp, theta, *, improvements=None, evaluate=None, greedy=None):
    evaluate = evaluate or (lambda mdp, pi, theta: ref.policy_evaluation(mdp, pi, theta))
    greedy = greedy or ref.greedy_policy
    pi = ref.uniform_policy(mdp)
    done = 0
    while True:
        v = evaluate(mdp, pi, theta)
        new_pi = greedy(mdp, v)
        done += 1
        if np.array_equal(new_pi, pi) or (improvements is not None and done > improvements):
            return pi, v
        pi = new_pi


def pi_one_improvement(mdp, theta):
    pi, v = _policy_iteration(mdp, theta, improvements=1)  # returns after a single improvement
    return pi, v


def pi_three_sweeps(mdp, theta):
    return _policy_iteration(mdp, theta, evaluate=lambda m, p, t: ref.policy_evaluation(m, p, 0.0, False, 3))


def pi_ignores_allowed(mdp, theta):
    return _policy_iteration(mdp, theta, greedy=greedy_ignores_allowed)


def pi_returns_first_values(mdp, theta):
    pi, _ = ref.policy_iteration(mdp, theta)
    return pi, ref.policy_evaluation(mdp, ref.uniform_policy(mdp), theta)  # v of pi_0, not of the result


# ------------------------------------------------------------------------------------------
# value_iteration
# ------------------------------------------------------------------------------------------


def _value_iteration(mdp, theta, *, backup="max", sweeps=None, stop="max", gamma=None, policy=None):
    """Value iteration with one thing changed. stop: which change is compared with theta
    ("max" over states is right; "mean", or "first" = state 0 only, are bugs)."""
    gamma = mdp.gamma if gamma is None else gamma
    v = np.zeros(mdp.n_states)
    done = 0
    while True:
        q = mdp.R + gamma * (mdp.P @ v)
        if backup == "max":
            new = _masked(mdp, q).max(axis=1)
        elif backup == "all actions":
            new = q.max(axis=1)
        else:  # "mean"
            new = (ref.uniform_policy(mdp) * q).sum(axis=1)
        change = np.abs(new - v)
        v = new
        done += 1
        delta = {"max": change.max(), "mean": change.mean(), "first": change[0]}[stop]
        if delta < theta or (sweeps is not None and done >= sweeps):
            break
    return (policy or ref.greedy_policy)(mdp, v), v


def vi_mean_backup(mdp, theta):
    return _value_iteration(mdp, theta, backup="mean")


def vi_ignores_allowed(mdp, theta):
    v = _value_iteration(mdp, theta, backup="all actions")[1]
    return greedy_ignores_allowed(mdp, v), v


def vi_one_sweep(mdp, theta):
    return _value_iteration(mdp, theta, sweeps=1)


def vi_ten_sweeps(mdp, theta):
    return _value_iteration(mdp, theta, sweeps=10)


def vi_loose_threshold(mdp, theta):
    return _value_iteration(mdp, 1e-2)  # theta hard-coded


def vi_first_state_change(mdp, theta):
    return _value_iteration(mdp, theta, stop="first")  # stops as soon as state 0 stops changing


def vi_myopic_policy(mdp, theta):
    return _value_iteration(mdp, theta, policy=greedy_on_reward)


def vi_gamma_one(mdp, theta):
    return _value_iteration(mdp, theta, gamma=1.0, sweeps=2000)  # discount forgotten (capped: it may diverge)


def vi_optimistic_dice(mdp, theta):
    v = np.zeros(mdp.n_states)
    for _ in range(100_000):
        new = _masked(mdp, q_max_next_state(mdp, v)).max(axis=1)
        if np.abs(new - v).max() < theta:
            break
        v = new
    return _one_hot(mdp, _masked(mdp, q_max_next_state(mdp, v)).argmax(axis=1)), v


UNIT_BUGS = {
    "q_from_v": [
        ("gamma left out", q_no_gamma),
        ("the reward discounted too", q_reward_discounted),
        ("the value of the current state instead of the next", q_current_state),
        ("P summed over its first axis", q_wrong_axis),
        ("the best next state instead of the expectation", q_max_next_state),
    ],
    "policy_evaluation": [
        ("in_place ignored: always synchronous", pe_always_synchronous),
        ("in_place ignored: always in place", pe_always_in_place),
        ("a max over actions instead of the expectation under pi", pe_max_backup),
        ("stops when the mean change is below theta", pe_mean_change),
        ("max_sweeps off by one", pe_one_sweep_too_many),
        ("stops on the change of state 0 only", pe_first_state_change),
        ("theta ignored (1e-3 hard-coded)", pe_theta_ignored),
    ],
    "greedy_policy": [
        ("forbidden actions not masked", greedy_ignores_allowed),
        ("argmin instead of argmax", greedy_argmin),
        ("greedy on the immediate reward only", greedy_on_reward),
        ("gamma left out of the lookahead", greedy_no_gamma),
        ("the current state's value instead of the next", greedy_current_state),
    ],
    "policy_iteration": [
        ("returns after one improvement", pi_one_improvement),
        ("evaluation truncated at 3 sweeps", pi_three_sweeps),
        ("improvement ignores forbidden actions", pi_ignores_allowed),
        ("returns the values of the first policy", pi_returns_first_values),
    ],
    "value_iteration": [
        ("an average over actions instead of the max", vi_mean_backup),
        ("forbidden actions not masked", vi_ignores_allowed),
        ("a single sweep", vi_one_sweep),
        ("theta ignored (1e-2 hard-coded)", vi_loose_threshold),
        ("stops on the change of state 0", vi_first_state_change),
        ("the policy is greedy on the immediate reward", vi_myopic_policy),
    ],
}

FIGURE_BUGS = {
    "gridworld_figures": [
        ("evaluation always in place", (pe_always_in_place, ref.value_iteration)),
        ("max_sweeps off by one", (pe_one_sweep_too_many, ref.value_iteration)),
        ("evaluation stops on the change of state 0", (pe_first_state_change, ref.value_iteration)),
        ("value iteration averages over actions", (ref.policy_evaluation, vi_mean_backup)),
        ("value iteration stops after 10 sweeps", (ref.policy_evaluation, vi_ten_sweeps)),
    ],
    "gambler": [
        ("stakes larger than the capital allowed", (vi_ignores_allowed,)),
        ("value iteration stops after 10 sweeps", (vi_ten_sweeps,)),
        ("theta ignored (1e-2 hard-coded)", (vi_loose_threshold,)),
        ("stops on the change of state 0 (a terminal state)", (vi_first_state_change,)),
    ],
    "frozen_lake": [
        ("discount forgotten (gamma = 1)", (vi_gamma_one,)),
        ("the policy is greedy on the immediate reward", (vi_myopic_policy,)),
        ("value iteration stops after 10 sweeps", (vi_ten_sweeps,)),
        ("plans as if the ice were not slippery", (vi_optimistic_dice,)),
    ],
}


# ------------------------------------------------------------------------------------------
# Legitimate variants: the checks must accept them
# ------------------------------------------------------------------------------------------


def q_masked(mdp, v):
    return np.where(mdp.allowed, ref.q_from_v(mdp, v), -np.inf)  # forbidden actions are not graded


def greedy_uniform_over_ties(mdp, v):
    q = _masked(mdp, ref.q_from_v(mdp, v))
    best = q >= q.max(axis=1, keepdims=True) - 1e-12
    return best / best.sum(axis=1, keepdims=True)


def greedy_last_tie(mdp, v):
    q = _masked(mdp, ref.q_from_v(mdp, v))[:, ::-1]
    return _one_hot(mdp, mdp.n_actions - 1 - q.argmax(axis=1))


def pe_stop_at_or_below(mdp, pi, theta, in_place=False, max_sweeps=None):
    # "delta <= theta" instead of "delta < theta", and the number of sweeps counted differently.
    v = np.zeros(mdp.n_states)
    for sweep in range(10**6 if max_sweeps is None else max_sweeps):
        new = ref.evaluation_sweep(mdp, pi, v, in_place=in_place)
        delta = np.abs(new - v).max()
        v = new
        if delta <= theta:
            break
    return v


def vi_in_place(mdp, theta):
    v = np.zeros(mdp.n_states)
    while True:
        delta = 0.0
        for s in range(mdp.n_states):
            best = np.where(mdp.allowed[s], mdp.R[s] + mdp.gamma * (mdp.P[s] @ v), -np.inf).max()
            delta = max(delta, abs(best - v[s]))
            v[s] = best
        if delta < theta:
            return greedy_uniform_over_ties(mdp, v), v


def pi_book_stability(mdp, theta):
    # The book's loop: stop when the greedy actions equal the previous ones (no tie handling).
    return _policy_iteration(mdp, theta)


LEGIT = {
    "q_from_v": [("forbidden actions set to -inf", q_masked)],
    "policy_evaluation": [("stops when delta <= theta", pe_stop_at_or_below)],
    "greedy_policy": [("uniform over tied actions", greedy_uniform_over_ties), ("ties to the last action", greedy_last_tie)],
    "policy_iteration": [("the book's stability test", pi_book_stability)],
    "value_iteration": [("in-place sweeps, uniform over ties", vi_in_place)],
}


# ------------------------------------------------------------------------------------------
# A straightforward learner: the book's pseudocode with Python loops over s, a and s'
# (no numpy vectorization). The checks must accept it, within their time budgets.
# ------------------------------------------------------------------------------------------


def loops_q_from_v(mdp, v):
    S, A = mdp.n_states, mdp.n_actions
    q = np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            total = mdp.R[s, a]
            for s2 in range(S):
                total += mdp.gamma * mdp.P[s, a, s2] * v[s2]
            q[s, a] = total
    return q


def loops_policy_evaluation(mdp, pi, theta, in_place=False, max_sweeps=None):
    S, A = mdp.n_states, mdp.n_actions
    v = [0.0] * S
    sweeps = 0
    while max_sweeps is None or sweeps < max_sweeps:
        delta = 0.0
        old = list(v)
        for s in range(S):
            source = v if in_place else old
            new = 0.0
            for a in range(A):
                if pi[s, a] == 0:
                    continue
                total = mdp.R[s, a]
                for s2 in range(S):
                    total += mdp.gamma * mdp.P[s, a, s2] * source[s2]
                new += pi[s, a] * total
            delta = max(delta, abs(new - old[s]))
            v[s] = new
        sweeps += 1
        if delta < theta:
            break
    return np.array(v)


def loops_greedy_policy(mdp, v):
    S, A = mdp.n_states, mdp.n_actions
    q = loops_q_from_v(mdp, v)
    pi = np.zeros((S, A))
    for s in range(S):
        best, best_q = None, -np.inf
        for a in range(A):
            if mdp.allowed[s, a] and q[s, a] > best_q:
                best, best_q = a, q[s, a]
        pi[s, best] = 1.0
    return pi


def loops_policy_iteration(mdp, theta):
    S, A = mdp.n_states, mdp.n_actions
    pi = np.zeros((S, A))
    for s in range(S):
        n = sum(mdp.allowed[s])
        for a in range(A):
            if mdp.allowed[s, a]:
                pi[s, a] = 1.0 / n
    while True:
        v = loops_policy_evaluation(mdp, pi, theta)
        q = loops_q_from_v(mdp, v)
        stable = True
        for s in range(S):
            best = max(q[s, a] for a in range(A) if mdp.allowed[s, a])
            current = sum(pi[s, a] * q[s, a] for a in range(A) if mdp.allowed[s, a])
            if best > current + 1e-9 * max(1.0, abs(best)):
                stable = False
        if stable:
            return pi, v
        pi = loops_greedy_policy(mdp, v)


def loops_value_iteration(mdp, theta):
    S, A = mdp.n_states, mdp.n_actions
    v = np.zeros(S)
    while True:
        q = loops_q_from_v(mdp, v)
        delta = 0.0
        new_v = np.zeros(S)
        for s in range(S):
            new_v[s] = max(q[s, a] for a in range(A) if mdp.allowed[s, a])
            delta = max(delta, abs(new_v[s] - v[s]))
        v = new_v
        if delta < theta:
            return loops_greedy_policy(mdp, v), v


LOOPS = {
    "q_from_v": loops_q_from_v,
    "policy_evaluation": loops_policy_evaluation,
    "greedy_policy": loops_greedy_policy,
    "policy_iteration": loops_policy_iteration,
    "value_iteration": loops_value_iteration,
}
