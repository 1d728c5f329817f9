"""Multi-armed bandits (Sutton & Barto, 2nd ed., chapter 2), vectorized over independent runs.

Every array carries a leading *run* axis R, so one call advances all runs of an experiment at
once: 2000 runs x 1000 steps is 1000 numpy calls, not two million Python iterations.

    Q  [R, k]  action-value estimates            N  [R, k]  how often each arm was pulled
    H  [R, k]  action preferences (gradient)     pi [R, k]  action probabilities
    actions [R] (int), rewards [R] (float)       t          the current step, 1-based

Sections: action selection -> estimate updates -> agents -> the testbed and the experiment loop.
The agents keep no global random state: each takes a `numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

# ---------------------------------------------------------------------------------------------
# Action selection
# ---------------------------------------------------------------------------------------------


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of the largest value in each row, ties broken uniformly at random.

    `np.argmax` always returns the *first* maximum. With Q initialised to 0 every arm is tied at
    the start, so a first-index argmax would make every run pull arm 0 first and, in greedy
    phases, keep preferring low-numbered arms.

    values [R, k] -> actions [R]
    """
    if np.isnan(values).any():
        # NaN compares unequal to everything, so the row would silently pick arm 0.
        row = int(np.isnan(values).any(axis=1).argmax())
        raise ValueError(f"values contain NaN (first in row {row}); an estimate became NaN upstream.")
    is_max = values == values.max(axis=1, keepdims=True)  # [R, k]; +inf == +inf counts as tied
    # A random key on every maximal entry and -1 elsewhere: the argmax of the keys is a uniform
    # draw among the maxima.
    keys = np.where(is_max, rng.random(values.shape), -1.0)  # [R, k]
    return keys.argmax(axis=1)


def epsilon_greedy(Q: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """With probability epsilon a uniformly random arm (any arm, the greedy one included),
    otherwise a greedy arm with ties broken at random.

    Q [R, k] -> actions [R]
    """
    n_runs, k = Q.shape
    greedy = argmax_random_ties(Q, rng)  # [R]
    explore = rng.random(n_runs) < epsilon  # [R] bool
    random_arms = rng.integers(k, size=n_runs)  # [R]
    return np.where(explore, random_arms, greedy)


def ucb_scores(Q: np.ndarray, N: np.ndarray, t: int, c: float) -> np.ndarray:
    """Upper-confidence-bound scores Q + c * sqrt(ln t / N) (book eq. 2.10).

    An arm never pulled (N = 0) is "considered a maximizing action": it scores +inf, so every
    arm is tried once before any is tried twice; that is what makes the reward spike at t = 11.

    Q, N [R, k], t >= 1 -> scores [R, k]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        bonus = c * np.sqrt(np.log(t) / N)  # [R, k]; N = 0 gives inf or nan, replaced below
    return np.where(N == 0, np.inf, Q + bonus)


def ucb(Q: np.ndarray, N: np.ndarray, t: int, c: float, rng: np.random.Generator) -> np.ndarray:
    """UCB action selection: the arm with the highest `ucb_scores`, ties broken at random.

    Q, N [R, k], t >= 1 (the step being chosen) -> actions [R]
    """
    return argmax_random_ties(ucb_scores(Q, N, t, c), rng)


def softmax(H: np.ndarray) -> np.ndarray:
    """Row-wise softmax (Gibbs distribution, eq. 2.11). Subtracting the row max keeps exp()
    finite for any preferences without changing the result.

    H [R, k] -> pi [R, k], rows sum to 1
    """
    z = np.exp(H - H.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def sample_actions(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one arm per row from the distribution pi (inverse-CDF sampling, vectorized).

    pi [R, k] -> actions [R]
    """
    cdf = pi.cumsum(axis=1)  # [R, k]
    u = rng.random((pi.shape[0], 1)) * cdf[:, -1:]  # [R, 1]; scaling absorbs rounding in the sum
    return (u >= cdf).sum(axis=1).clip(max=pi.shape[1] - 1)


# ---------------------------------------------------------------------------------------------
# Estimate updates
# ---------------------------------------------------------------------------------------------


def update_estimates(
    Q: np.ndarray,
    N: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    alpha: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Incremental update of the pulled arm only: Q <- Q + step * (R - Q)  (eq. 2.3 / 2.5).

    step = 1 / N(a) after counting this pull (sample averages) when alpha is None, otherwise the
    constant alpha (a recency-weighted average, for nonstationary problems). Returns new arrays
    and leaves the inputs untouched.

    Q, N [R, k], actions [R], rewards [R] -> (Q [R, k], N [R, k])
    """
    rows = np.arange(Q.shape[0])
    N = N.copy()
    N[rows, actions] += 1
    step = 1.0 / N[rows, actions] if alpha is None else alpha  # [R] or scalar
    Q = Q.astype(float, copy=True)
    Q[rows, actions] += step * (rewards - Q[rows, actions])
    return Q, N


def gradient_bandit_update(
    H: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    baseline: np.ndarray | float,
    alpha: float,
) -> np.ndarray:
    """One stochastic-gradient-ascent step on the preferences (eq. 2.12):

        H(a) <- H(a) + alpha * (R - baseline) * (1[a == A] - pi(a))   for every arm a,

    with pi = softmax(H) *before* the update. Pass baseline = 0 for the no-baseline variant.

    H [R, k], actions [R], rewards [R], baseline [R] or scalar -> H [R, k] (a new array)
    """
    n_runs, k = H.shape
    pi = softmax(H)  # [R, k]
    chosen = np.zeros((n_runs, k))
    chosen[np.arange(n_runs), actions] = 1.0
    advantage = np.asarray(rewards, dtype=float) - baseline  # [R]
    return H + alpha * advantage[:, None] * (chosen - pi)


# ---------------------------------------------------------------------------------------------
# Agents: state plus the two calls an experiment makes, act() and update()
# ---------------------------------------------------------------------------------------------


class BanditAgent(Protocol):
    """What `run_testbed` needs from an agent; one instance plays all R runs at once."""

    def act(self) -> np.ndarray:
        """Choose one arm per run: actions [R] (integers in [0, k))."""

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from the arms just pulled, actions [R], and their rewards [R]."""


class EpsilonGreedy:
    """Action-value agent: epsilon-greedy selection, sample-average or constant-step estimates,
    optionally optimistic initial values (Q1 = initial, Fig 2.3)."""

    def __init__(
        self,
        n_runs: int,
        k: int,
        rng: np.random.Generator,
        *,
        epsilon: float = 0.1,
        alpha: float | None = None,
        initial: float = 0.0,
    ):
        self.rng, self.epsilon, self.alpha = rng, epsilon, alpha
        self.Q = np.full((n_runs, k), float(initial))
        self.N = np.zeros((n_runs, k), dtype=np.int64)

    def act(self) -> np.ndarray:
        return epsilon_greedy(self.Q, self.epsilon, self.rng)

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.Q, self.N = update_estimates(self.Q, self.N, actions, rewards, self.alpha)


class UCB:
    """Upper-confidence-bound action selection over sample-average (or constant-step) estimates."""

    def __init__(
        self,
        n_runs: int,
        k: int,
        rng: np.random.Generator,
        *,
        c: float = 2.0,
        alpha: float | None = None,
    ):
        self.rng, self.c, self.alpha = rng, c, alpha
        self.Q = np.zeros((n_runs, k))
        self.N = np.zeros((n_runs, k), dtype=np.int64)
        self.t = 0

    def act(self) -> np.ndarray:
        self.t += 1  # ln t uses the step being chosen: t = 1 on the first pull
        return ucb(self.Q, self.N, self.t, self.c, self.rng)

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.Q, self.N = update_estimates(self.Q, self.N, actions, rewards, self.alpha)


class GradientBandit:
    """Softmax policy over preferences H, updated by stochastic gradient ascent.

    The baseline is the average of the rewards received *before* this step (the book's text,
    2020 printing: "up to but not including time t", with baseline_1 = R_1, so the very first
    update is zero). The 2018 printing and some reproductions include R_t; the curves barely differ.
    """

    def __init__(
        self,
        n_runs: int,
        k: int,
        rng: np.random.Generator,
        *,
        alpha: float = 0.1,
        baseline: bool = True,
    ):
        self.rng, self.alpha, self.use_baseline = rng, alpha, baseline
        self.H = np.zeros((n_runs, k))
        self.mean_reward = np.zeros(n_runs)  # average of the rewards before this step, [R]
        self.t = 0

    def act(self) -> np.ndarray:
        return sample_actions(softmax(self.H), self.rng)

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.t += 1
        if not self.use_baseline:
            baseline = 0.0
        elif self.t == 1:
            baseline = rewards  # baseline_1 = R_1
        else:
            baseline = self.mean_reward
        self.H = gradient_bandit_update(self.H, actions, rewards, baseline, self.alpha)
        self.mean_reward = self.mean_reward + (rewards - self.mean_reward) / self.t


# ---------------------------------------------------------------------------------------------
# The 10-armed testbed and the experiment loop
# ---------------------------------------------------------------------------------------------


class Testbed:
    """R independent k-armed bandit problems (section 2.3): q*(a) ~ N(mean, 1) per run,
    reward ~ N(q*(A), 1). `mean = 4` gives the shifted testbed of Fig 2.5."""

    __test__ = False  # the name starts with "Test": tell pytest it is not a test class

    def __init__(self, n_runs: int, k: int = 10, *, mean: float = 0.0, rng: np.random.Generator):
        self.n_runs, self.k, self.rng = n_runs, k, rng
        self.q_star = rng.normal(mean, 1.0, size=(n_runs, k))  # [R, k]
        self.optimal_action = self.q_star.argmax(axis=1)  # [R]; continuous q*, so no ties

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Pull one arm per run: actions [R] -> rewards [R]."""
        return self._pull(validate_actions(actions, self.n_runs, self.k))

    def _pull(self, actions: np.ndarray) -> np.ndarray:
        """`step` for actions already validated (the experiment loop validates once per step)."""
        mean = self.q_star[np.arange(self.n_runs), actions]
        return mean + self.rng.standard_normal(self.n_runs)


def validate_actions(actions, n_runs: int, k: int) -> np.ndarray:
    """Return actions as an int array [R], or raise a ValueError that says what is wrong."""
    arr = np.asarray(actions)
    if arr.shape != (n_runs,):
        raise ValueError(
            f"act() returned an array of shape {arr.shape}; expected ({n_runs},), one arm per run. "
            "Keep the run axis first and choose with array operations over all runs at once."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        whole = (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                 and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2**62))
        if not whole:
            raise ValueError(f"act() returned {arr.dtype} values that are not whole numbers (e.g. "
                             f"{arr.flat[0]!r}); expected integer arm indices in [0, {k}).")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(f"act() returned arm {int(arr.min() if arr.min() < 0 else arr.max())}; arms are 0..{k - 1}.")
    return arr


@dataclass
class BanditRun:
    """What an experiment recorded: rewards and whether the optimal arm was pulled.

    rewards [T, R] float32, optimal [T, R] bool (time-major, like every rollout in the course).
    """

    rewards: np.ndarray
    optimal: np.ndarray

    def mean_reward(self) -> np.ndarray:
        """Average reward over runs at each step, [T] (the y axis of Fig 2.2, top)."""
        return self.rewards.mean(axis=1)

    def fraction_optimal(self) -> np.ndarray:
        """Fraction of runs that pulled the optimal arm at each step, [T] (Fig 2.2, bottom)."""
        return self.optimal.mean(axis=1)

    def per_run(self, metric: str, first: int, last: int) -> np.ndarray:
        """Per-run average of `metric` ("reward" or "optimal") over steps first..last (1-based,
        inclusive): one number per run, [R], the sample the autograder's statistics use."""
        if metric not in ("reward", "optimal"):
            raise ValueError(f"metric must be 'reward' or 'optimal', got {metric!r}")
        if not 1 <= first <= last <= self.rewards.shape[0]:
            raise ValueError(f"steps {first}..{last} are outside 1..{self.rewards.shape[0]}")
        data = self.rewards if metric == "reward" else self.optimal
        return data[first - 1 : last].mean(axis=0, dtype=np.float64)


AgentFactory = Callable[[int, int, np.random.Generator], BanditAgent]


def run_testbed(
    make_agent: AgentFactory,
    *,
    n_runs: int = 2000,
    n_steps: int = 1000,
    k: int = 10,
    mean: float = 0.0,
    seed: int | np.random.SeedSequence = 0,
    progress: bool = False,
) -> BanditRun:
    """Play `n_steps` steps on `n_runs` fresh testbed problems with one vectorized agent.

    make_agent(n_runs, k, rng) builds the agent. The testbed and the agent get independent
    random streams spawned from `seed`, so the problems are the same for every agent given
    the same seed (common random numbers make comparisons between agents sharper).
    The rewards are recorded here, by the experiment, never taken from the agent.
    """
    if isinstance(seed, np.random.SeedSequence):
        # spawn() advances a SeedSequence's counter: copy it so the same object reproduces the run.
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    testbed_rng, agent_rng = np.random.default_rng(seed).spawn(2)
    testbed = Testbed(n_runs, k, mean=mean, rng=testbed_rng)
    agent = make_agent(n_runs, k, agent_rng)
    rewards = np.empty((n_steps, n_runs), dtype=np.float32)
    optimal = np.empty((n_steps, n_runs), dtype=bool)
    steps = range(n_steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="bandit steps", leave=False)
    for t in steps:
        actions = validate_actions(agent.act(), n_runs, k)
        r = testbed._pull(actions)
        agent.update(actions, r)
        rewards[t] = r
        optimal[t] = actions == testbed.optimal_action
    return BanditRun(rewards=rewards, optimal=optimal)
