"""Planted-bug variants of the chapter 01 pieces: realistic mistakes the checks must catch.

`UNIT_BUGS[check_name]` lists (description, buggy function) for each unit check;
`AGENT_BUGS[class_name]` lists (description, buggy agent class) for each curve check.
The agent variants are vectorized like rlcore's, so the calibration can run them over many
replicates (autograder/calibration/calibrate.py).
"""

from __future__ import annotations

import numpy as np

from rlcore.tabular import bandits as ref

# ------------------------------------------------------------------------------------------
# Unit pieces
# ------------------------------------------------------------------------------------------


def argmax_first(values, rng):
    return values.argmax(axis=1)  # ties always to the first arm


def argmax_last(values, rng):
    k = values.shape[1]
    return k - 1 - values[:, ::-1].argmax(axis=1)  # ties always to the last arm


def argmax_random_any_arm(values, rng):
    # Breaks "ties" by picking uniformly among all arms whenever any tie exists in the row.
    tied = (values == values.max(axis=1, keepdims=True)).sum(axis=1) > 1
    return np.where(tied, rng.integers(values.shape[1], size=values.shape[0]), values.argmax(axis=1))


def eps_ignored(Q, epsilon, rng):
    return ref.argmax_random_ties(Q, rng)  # never explores


def eps_explore_non_greedy(Q, epsilon, rng):
    # Exploration excludes the greedy arm: greedy is chosen 90%, not 91%, of the time.
    n, k = Q.shape
    greedy = ref.argmax_random_ties(Q, rng)
    other = (greedy + rng.integers(1, k, size=n)) % k
    return np.where(rng.random(n) < epsilon, other, greedy)


def eps_as_greedy_probability(Q, epsilon, rng):
    n, k = Q.shape
    greedy = ref.argmax_random_ties(Q, rng)
    return np.where(rng.random(n) < epsilon, greedy, rng.integers(k, size=n))


def eps_ties_first(Q, epsilon, rng):
    n, k = Q.shape
    return np.where(rng.random(n) < epsilon, rng.integers(k, size=n), Q.argmax(axis=1))


def update_count_after(Q, N, actions, rewards, alpha=None):
    # Step 1/(N+1) computed before counting, then N not incremented at all.
    rows = np.arange(Q.shape[0])
    step = 1.0 / (N[rows, actions] + 1) if alpha is None else alpha
    Q = Q.astype(float).copy()
    Q[rows, actions] += step * (rewards - Q[rows, actions])
    return Q, N.copy()


def update_all_arms(Q, N, actions, rewards, alpha=None):
    rows = np.arange(Q.shape[0])
    N = N.copy()
    N[rows, actions] += 1
    step = (1.0 / N[rows, actions])[:, None] if alpha is None else alpha
    return Q + step * (rewards[:, None] - Q), N


def update_alpha_ignored(Q, N, actions, rewards, alpha=None):
    return ref.update_estimates(Q, N, actions, rewards, None)


def update_sign_flipped(Q, N, actions, rewards, alpha=None):
    rows = np.arange(Q.shape[0])
    N = N.copy()
    N[rows, actions] += 1
    step = 1.0 / N[rows, actions] if alpha is None else alpha
    Q = Q.astype(float).copy()
    Q[rows, actions] += step * (Q[rows, actions] - rewards)
    return Q, N


def ucb_plus_one(Q, N, t, c, rng):
    # Avoids the division by zero with N + 1: untried arms are no longer tried first.
    return ref.argmax_random_ties(Q + c * np.sqrt(np.log(t) / (N + 1)), rng)


def ucb_no_log(Q, N, t, c, rng):
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(N == 0, np.inf, Q + c * np.sqrt(t / N))
    return ref.argmax_random_ties(scores, rng)


def ucb_c_ignored(Q, N, t, c, rng):
    return ref.ucb(Q, N, t, 2.0, rng)


def ucb_ties_first(Q, N, t, c, rng):
    return ref.ucb_scores(Q, N, t, c).argmax(axis=1)


def grad_no_baseline(H, actions, rewards, baseline, alpha):
    return ref.gradient_bandit_update(H, actions, rewards, 0.0, alpha)


def grad_chosen_only(H, actions, rewards, baseline, alpha):
    pi = ref.softmax(H)
    rows = np.arange(H.shape[0])
    H = H.copy()
    H[rows, actions] += alpha * (rewards - baseline) * (1 - pi[rows, actions])
    return H


def grad_sign_others(H, actions, rewards, baseline, alpha):
    n, k = H.shape
    pi = ref.softmax(H)
    chosen = np.zeros((n, k))
    chosen[np.arange(n), actions] = 1.0
    # The pulled arm moves by (1 - pi) as it should, but every other arm by +pi instead of -pi.
    direction = np.where(chosen == 1.0, 1.0 - pi, pi)
    return H + alpha * (np.asarray(rewards) - baseline)[:, None] * direction


def grad_pi_uniform(H, actions, rewards, baseline, alpha):
    n, k = H.shape
    chosen = np.zeros((n, k))
    chosen[np.arange(n), actions] = 1.0
    return H + alpha * (np.asarray(rewards) - baseline)[:, None] * (chosen - 1.0 / k)


UNIT_BUGS = {
    "argmax_random_ties": [("ties always to the first arm (np.argmax)", argmax_first),
                           ("ties always to the last arm", argmax_last),
                           ("a tie anywhere picks any arm at random", argmax_random_any_arm)],
    "epsilon_greedy": [("epsilon ignored (always greedy)", eps_ignored),
                       ("exploration excludes the greedy arm", eps_explore_non_greedy),
                       ("epsilon used as the probability of being greedy", eps_as_greedy_probability),
                       ("greedy ties to the first arm", eps_ties_first)],
    "update_estimates": [("N never incremented", update_count_after),
                         ("every arm updated, not only the pulled one", update_all_arms),
                         ("alpha ignored (always sample averages)", update_alpha_ignored),
                         ("error sign flipped (Q - R)", update_sign_flipped)],
    "ucb": [("N + 1 in the denominator: no untried-arm rule", ucb_plus_one),
            ("sqrt(t / N) without the log", ucb_no_log),
            ("c ignored (always 2)", ucb_c_ignored),
            ("ties to the first arm", ucb_ties_first)],
    "gradient_bandit_update": [("baseline left out", grad_no_baseline),
                               ("only the pulled arm's preference moves", grad_chosen_only),
                               ("other arms pushed up instead of down", grad_sign_others),
                               ("pi taken as uniform instead of softmax(H)", grad_pi_uniform)],
}

# ------------------------------------------------------------------------------------------
# Agents
# ------------------------------------------------------------------------------------------


class EpsIgnoredAgent(ref.EpsilonGreedy):
    def act(self):
        return ref.argmax_random_ties(self.Q, self.rng)


class InitialIgnoredAgent(ref.EpsilonGreedy):
    def __init__(self, n_runs, k, rng, *, epsilon=0.1, alpha=None, initial=0.0):
        super().__init__(n_runs, k, rng, epsilon=epsilon, alpha=alpha, initial=0.0)


class AlphaIgnoredAgent(ref.EpsilonGreedy):
    def update(self, actions, rewards):
        self.Q, self.N = ref.update_estimates(self.Q, self.N, actions, rewards, None)


class LastRewardAgent(ref.EpsilonGreedy):
    """Q becomes the last reward (step 1 every time: N never counted)."""

    def update(self, actions, rewards):
        self.Q, self.N = update_count_after(self.Q, np.zeros_like(self.N), actions, rewards, self.alpha)


class UCBPlusOneAgent(ref.UCB):
    def act(self):
        self.t += 1
        return ucb_plus_one(self.Q, self.N, self.t, self.c, self.rng)


class UCBFrozenTimeAgent(ref.UCB):
    """t never incremented: ln(1) = 0 removes the exploration bonus after the first round."""

    def act(self):
        return ref.ucb(self.Q, self.N, max(self.t, 1), self.c, self.rng)


class UCBTimeFromZeroAgent(ref.UCB):
    """t starts at 0 and is incremented after choosing: ln(0) on the first step, the spike moves."""

    def act(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = self.Q + self.c * np.sqrt(np.log(self.t) / self.N)
        self.t += 1
        return ref.argmax_random_ties(np.where(np.isnan(scores), -np.inf, scores), self.rng)


class AlwaysBaselineAgent(ref.GradientBandit):
    def __init__(self, n_runs, k, rng, *, alpha=0.1, baseline=True):
        super().__init__(n_runs, k, rng, alpha=alpha, baseline=True)


class NeverBaselineAgent(ref.GradientBandit):
    def __init__(self, n_runs, k, rng, *, alpha=0.1, baseline=True):
        super().__init__(n_runs, k, rng, alpha=alpha, baseline=False)


class ChosenOnlyGradientAgent(ref.GradientBandit):
    def update(self, actions, rewards):
        self.t += 1
        baseline = (rewards if self.t == 1 else self.mean_reward) if self.use_baseline else 0.0
        self.H = grad_chosen_only(self.H, actions, rewards, baseline, self.alpha)
        self.mean_reward = self.mean_reward + (rewards - self.mean_reward) / self.t


AGENT_BUGS = {
    "EpsilonGreedy": [("epsilon ignored (always greedy)", EpsIgnoredAgent),
                      ("initial value ignored (no optimism)", InitialIgnoredAgent),
                      ("alpha ignored (sample averages)", AlphaIgnoredAgent),
                      ("N never counted (Q = last reward)", LastRewardAgent)],
    "UCB": [("N + 1 in the denominator: no untried-arm rule", UCBPlusOneAgent),
            ("t never incremented", UCBFrozenTimeAgent),
            ("t counted from 0", UCBTimeFromZeroAgent)],
    "GradientBandit": [("baseline flag ignored (always on)", AlwaysBaselineAgent),
                       ("baseline left out", NeverBaselineAgent),
                       ("only the pulled arm's preference moves", ChosenOnlyGradientAgent)],
}
