"""Dynamic programming on a finite MDP (Sutton & Barto, 2nd ed., chapter 4), vectorized.

Every function takes a `FiniteMDP` (rlcore.tabular.mdp): P [S, A, S], R [S, A], gamma, terminal [S],
allowed [S, A]. Values and policies are arrays:

    v   [S]     state values                  q  [S, A]  action values
    pi  [S, A]  a policy: pi[s, a] = probability of action a in state s; rows sum to 1, and a
                forbidden action has probability 0. A deterministic policy is one-hot.

One Bellman backup of every state at once is a matrix product, q = R + gamma * P @ v, so a
synchronous sweep over 441 states x 11 actions (Jack's car rental) costs about a millisecond.

Sections: backups -> policy evaluation -> policy improvement -> policy iteration -> value iteration.
Everything here is deterministic: no random numbers are drawn anywhere.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from rlcore.tabular.mdp import FiniteMDP

DEFAULT_THETA = 1e-8
MAX_SWEEPS = 100_000  # a safety net: a loop that has not converged by then never will
TIE_TOL = 1e-9  # action values this close to the best count as tied (floating-point noise)


def _check_v(mdp: FiniteMDP, v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (mdp.n_states,):
        raise ValueError(f"v must have shape [S] = ({mdp.n_states},), got {v.shape}.")
    return v


def _check_pi(mdp: FiniteMDP, pi) -> np.ndarray:
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"pi must have shape [S, A] = {(mdp.n_states, mdp.n_actions)}, got {pi.shape}; "
                         "for a deterministic policy given as actions [S], use deterministic_policy(mdp, actions).")
    if pi.min() < 0 or np.abs(pi.sum(axis=1) - 1).max() > 1e-9:
        raise ValueError("every row of pi must be a probability distribution over actions (non-negative, sum 1).")
    if np.any(pi[~mdp.allowed] > 0):
        s, a = np.argwhere((pi > 0) & ~mdp.allowed)[0]
        raise ValueError(f"pi gives probability {pi[s, a]:.3g} to action {a} in state {s}, which is not allowed there.")
    return pi


# ---------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------


def uniform_policy(mdp: FiniteMDP) -> np.ndarray:
    """The equiprobable random policy over each state's allowed actions. -> pi [S, A]"""
    return mdp.allowed / mdp.allowed.sum(axis=1, keepdims=True)


def deterministic_policy(mdp: FiniteMDP, actions) -> np.ndarray:
    """One-hot policy from one action index per state. actions [S] int -> pi [S, A]"""
    actions = np.asarray(actions)
    if actions.shape != (mdp.n_states,) or not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"actions must be integer indices of shape ({mdp.n_states},), got {actions.dtype} {actions.shape}.")
    pi = np.zeros((mdp.n_states, mdp.n_actions))
    pi[np.arange(mdp.n_states), actions] = 1.0
    return _check_pi(mdp, pi)


# ---------------------------------------------------------------------------------------------
# Backups
# ---------------------------------------------------------------------------------------------


def q_from_v(mdp: FiniteMDP, v) -> np.ndarray:
    """One-step lookahead: q(s, a) = R(s, a) + gamma * sum_s' P(s' | s, a) v(s').

    v [S] -> q [S, A] (every action, the forbidden ones included: mask them before taking a max).
    """
    v = _check_v(mdp, v)
    return mdp.R + mdp.gamma * (mdp.P @ v)  # [S, A, S] @ [S] -> [S, A]


def evaluation_sweep(mdp: FiniteMDP, pi, v, *, in_place: bool = False) -> np.ndarray:
    """One sweep of iterative policy evaluation (eq. 4.5): for every state,

        v(s) <- sum_a pi(a|s) [R(s, a) + gamma * sum_s' P(s'|s, a) v(s')].

    Synchronous (in_place=False): every state is backed up from the old v, in one matrix product.
    In place (in_place=True): states are backed up in index order 0..S-1, each one already using
    the new values of the states before it (one state at a time; usually converges in fewer sweeps).
    pi [S, A], v [S] -> the new v [S] (the input is not modified).
    """
    pi, v = _check_pi(mdp, pi), _check_v(mdp, v)
    if not in_place:
        return (pi * q_from_v(mdp, v)).sum(axis=1)
    v = v.copy()
    r_pi = (pi * mdp.R).sum(axis=1)  # [S] expected reward under pi
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)  # [S, S] state-to-state transitions under pi
    for s in range(mdp.n_states):
        v[s] = r_pi[s] + mdp.gamma * (P_pi[s] @ v)
    return v


def policy_evaluation(mdp: FiniteMDP, pi, theta: float = DEFAULT_THETA, in_place: bool = False,
                      max_sweeps: int | None = None) -> np.ndarray:
    """Iterative policy evaluation (section 4.1) from v = 0: sweep until the largest change of any
    state in a sweep is below theta, or until max_sweeps sweeps are done.

    pi [S, A] -> v [S]. max_sweeps=k returns v_k, the k-th iterate (Figure 4.1, left column).
    """
    return iterative_policy_evaluation(mdp, pi, theta, in_place, max_sweeps)[0]


def iterative_policy_evaluation(mdp: FiniteMDP, pi, theta: float = DEFAULT_THETA, in_place: bool = False,
                                max_sweeps: int | None = None, v0=None) -> tuple[np.ndarray, int]:
    """`policy_evaluation` that also reports its cost, and may start from v0 [S] instead of 0
    (policy iteration starts each evaluation from the previous values).

    -> (v [S], the number of sweeps done)
    """
    if theta < 0:
        raise ValueError(f"theta must be >= 0, got {theta}.")
    if max_sweeps is None and theta == 0:
        raise ValueError("theta = 0 never stops on its own: give max_sweeps as well.")
    limit = MAX_SWEEPS if max_sweeps is None else int(max_sweeps)
    pi = _check_pi(mdp, pi)
    v = np.zeros(mdp.n_states) if v0 is None else _check_v(mdp, v0).copy()
    for sweep in range(1, limit + 1):
        v_new = evaluation_sweep(mdp, pi, v, in_place=in_place)
        delta = np.abs(v_new - v).max()  # each state changes once per sweep, in place or not
        v = v_new
        if not np.isfinite(delta):
            raise FloatingPointError("policy evaluation diverged: with gamma = 1 the policy must end every "
                                     "episode (start policy iteration from a policy that does).")
        if delta < theta:
            return v, sweep
    if max_sweeps is None:
        raise RuntimeError(f"policy evaluation did not converge to theta = {theta:g} in {MAX_SWEEPS} sweeps; "
                           "with gamma = 1 the policy may never end an episode.")
    return v, limit


def policy_evaluation_exact(mdp: FiniteMDP, pi) -> np.ndarray:
    """v_pi by solving the Bellman equation as a linear system, (I - gamma P_pi) v = r_pi, on the
    non-terminal states (terminal values are 0). pi [S, A] -> v [S].

    Raises ValueError when the system is singular: with gamma = 1, a policy that can run for ever
    without reaching a terminal state has no finite value in general.
    """
    pi = _check_pi(mdp, pi)
    live = ~mdp.terminal
    r_pi = (pi * mdp.R).sum(axis=1)  # [S]
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)  # [S, S]
    A = np.eye(int(live.sum())) - mdp.gamma * P_pi[np.ix_(live, live)]
    v = np.zeros(mdp.n_states)
    try:
        v[live] = np.linalg.solve(A, r_pi[live])
    except np.linalg.LinAlgError:
        raise ValueError("I - gamma P_pi is singular: this policy never ends some episodes (gamma = 1).") from None
    if np.linalg.cond(A) > 1e12:
        raise ValueError("I - gamma P_pi is (nearly) singular: this policy never ends some episodes (gamma = 1).")
    return v


# ---------------------------------------------------------------------------------------------
# Policy improvement
# ---------------------------------------------------------------------------------------------


def greedy_actions(mdp: FiniteMDP, v, *, previous=None, tol: float = TIE_TOL) -> np.ndarray:
    """A greedy action per state: argmax over the allowed actions of q_from_v(mdp, v).

    Actions within `tol` (relative to the scale of q) of the best count as tied, and the tie goes
    to the `previous` action when it is among them (so policy iteration stops instead of flipping
    between equally good actions, Exercise 4.4), otherwise to the lowest index.
    v [S], previous [S] int or None -> actions [S] int
    """
    q = np.where(mdp.allowed, q_from_v(mdp, v), -np.inf)  # [S, A]
    best = q.max(axis=1, keepdims=True)  # [S, 1]
    tied = q >= best - tol * np.maximum(1.0, np.abs(best))  # [S, A]
    actions = tied.argmax(axis=1)  # the lowest tied index
    if previous is not None:
        previous = np.asarray(previous)
        keep = tied[np.arange(mdp.n_states), previous]
        actions = np.where(keep, previous, actions)
    return actions


def greedy_policy(mdp: FiniteMDP, v, tol: float = TIE_TOL) -> np.ndarray:
    """The deterministic greedy policy with respect to v (policy improvement, eq. 4.9), ties to the
    lowest action index. v [S] -> pi [S, A], one-hot."""
    return deterministic_policy(mdp, greedy_actions(mdp, v, tol=tol))


# ---------------------------------------------------------------------------------------------
# Policy iteration
# ---------------------------------------------------------------------------------------------


def policy_iteration_steps(mdp: FiniteMDP, theta: float = DEFAULT_THETA, pi0=None,
                           max_iterations: int = 1000) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Policy iteration (section 4.3), one evaluated policy at a time: yields (pi_k, v_pi_k, sweeps_k)
    for k = 0, 1, 2, ... (sweeps_k: the evaluation sweeps spent on pi_k) and stops after the first
    policy that improvement leaves unchanged.

    pi0 [S, A] (default: the uniform random policy, which ends every episode of the book's
    episodic examples). Each evaluation starts from the previous value function, which is closer
    than 0 and saves sweeps. Improvement keeps an action while it is still greedy (ties up to
    TIE_TOL), so the loop ends on a stable policy.
    """
    pi = uniform_policy(mdp) if pi0 is None else _check_pi(mdp, pi0)
    v = np.zeros(mdp.n_states)
    one_hot = pi0 is not None and np.all((pi == 0) | (pi == 1))
    previous = pi.argmax(axis=1) if one_hot else None  # a stochastic pi0 is never "stable"
    for _ in range(max_iterations):
        v, sweeps = iterative_policy_evaluation(mdp, pi, theta, v0=v)
        yield pi, v, sweeps
        actions = greedy_actions(mdp, v, previous=previous)
        if previous is not None and np.array_equal(actions, previous):
            return
        previous = actions
        pi = deterministic_policy(mdp, actions)
    raise RuntimeError(f"policy iteration did not stabilise in {max_iterations} improvements.")


def policy_iteration(mdp: FiniteMDP, theta: float = DEFAULT_THETA, pi0=None) -> tuple[np.ndarray, np.ndarray]:
    """Policy iteration until the policy is stable. -> (pi [S, A] one-hot, v [S] = v_pi)."""
    for pi, v, _ in policy_iteration_steps(mdp, theta, pi0):
        pass
    return pi, v


# ---------------------------------------------------------------------------------------------
# Value iteration
# ---------------------------------------------------------------------------------------------


def value_iteration_steps(mdp: FiniteMDP, theta: float = DEFAULT_THETA,
                          max_sweeps: int = MAX_SWEEPS) -> Iterator[np.ndarray]:
    """Value iteration (section 4.4) from v = 0, one synchronous sweep at a time:

        v(s) <- max_{a allowed in s} [R(s, a) + gamma * sum_s' P(s'|s, a) v(s')],

    yields v after each sweep and stops after the first sweep that changes no state by theta or more.
    """
    if theta <= 0:
        raise ValueError(f"theta must be > 0, got {theta}.")
    v = np.zeros(mdp.n_states)
    for _ in range(max_sweeps):
        v_new = np.where(mdp.allowed, q_from_v(mdp, v), -np.inf).max(axis=1)
        delta = np.abs(v_new - v).max()
        v = v_new
        yield v
        if delta < theta:
            return
    raise RuntimeError(f"value iteration did not converge to theta = {theta:g} in {max_sweeps} sweeps.")


def value_iteration(mdp: FiniteMDP, theta: float = DEFAULT_THETA) -> tuple[np.ndarray, np.ndarray]:
    """Value iteration, then the greedy policy of the final values.

    -> (pi [S, A] one-hot, v [S]); v is within about theta * gamma / (1 - gamma) of v* when gamma < 1.
    """
    for v in value_iteration_steps(mdp, theta):
        pass
    return greedy_policy(mdp, v), v
