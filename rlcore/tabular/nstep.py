"""n-step TD prediction (Sutton & Barto, 2nd ed., section 7.1), on the random walk.

The n-step return from time tau looks n rewards ahead and then bootstraps from the current
estimate of the state reached,

    G_{tau:tau+n} = R_{tau+1} + gamma R_{tau+2} + ... + gamma^(n-1) R_{tau+n} + gamma^n V(S_{tau+n}),

and is *truncated* at the end of the episode: if tau + n >= T the sum stops at R_T and nothing is
bootstrapped (G_{tau:tau+n} = G_tau, the Monte Carlo return). n = 1 is TD(0); n >= T is Monte Carlo.
n-step TD moves V(S_tau) toward it: V(S_tau) <- V(S_tau) + alpha (G_{tau:tau+n} - V(S_tau)).

Shapes (one episode of T steps, from rlcore.tabular.random_walk):

    states   [T + 1] int    S_0 .. S_T, S_T terminal
    rewards  [T]     float  rewards[t] = R_{t+1}, the reward of the step S_t -> S_{t+1}
    V        [n_states + 2] value table indexed by state, terminals included (their entries are
             never updated and, because of the truncation, never read)
    history  [E, n_states]  the non-terminal values after each of E episodes (one run)
    history  [E, R, A, n_states] (batch) run r, step size alphas[a]

Sections: the n-step return -> one episode of updates -> one run -> many runs and step sizes at
once (vectorized) -> the error measure of Figure 7.2.
"""

from __future__ import annotations

import numpy as np

from rlcore.tabular.random_walk import RandomWalk

# ---------------------------------------------------------------------------------------------
# The n-step return
# ---------------------------------------------------------------------------------------------


def _check_episode(states, rewards) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(states)
    r = np.asarray(rewards, dtype=float)
    if s.ndim != 1 or r.ndim != 1 or s.size != r.size + 1:
        raise ValueError(f"an episode is states [T + 1] and rewards [T]; got states of shape {s.shape} "
                         f"and rewards of shape {r.shape}")
    if not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"states must be integer state indices, got {s.dtype}")
    return s, r


def _check_n(n) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a whole number >= 1 (1 is TD(0); n >= episode length is Monte Carlo), got {n!r}")
    return int(n)


def _check_unit(name: str, value) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also False for NaN
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def nstep_return(V: np.ndarray, states, rewards, tau: int, n: int, gamma: float) -> float:
    """The n-step return G_{tau:tau+n} (eq. 7.1), truncated at the end of the episode.

    V [n_states + 2] (read at states[tau + n] only when tau + n < T), states [T + 1], rewards [T],
    0 <= tau < T, n >= 1, gamma in [0, 1] -> a float.
    """
    states, rewards = _check_episode(states, rewards)
    T = rewards.size
    if not 0 <= tau < T:
        raise ValueError(f"tau must be a time step of the episode, 0 <= tau < {T}, got {tau!r}")
    n, gamma = _check_n(n), _check_unit("gamma", gamma)
    end = min(tau + n, T)  # the rewards R_{tau+1} .. R_end are rewards[tau:end]
    G = sum(gamma ** (i - tau) * rewards[i] for i in range(tau, end))
    if tau + n < T:  # the episode goes on past tau + n: bootstrap from the estimate there
        G += gamma**n * V[states[tau + n]]
    return float(G)


# ---------------------------------------------------------------------------------------------
# One episode, one run
# ---------------------------------------------------------------------------------------------


def nstep_td_episode(V: np.ndarray, states, rewards, n: int, alpha: float, gamma: float = 1.0) -> np.ndarray:
    """Apply the n-step TD updates of one episode to V, in place, and return V.

    The book's algorithm runs online: the update of V(S_tau) happens at time tau + n - 1, once
    R_{tau+n} and S_{tau+n} are known, and the last n - 1 updates after the episode ends. Because
    the policy (and so the episode) does not depend on V, replaying a recorded episode gives exactly
    the same result, provided the updates go in order tau = 0, 1, ..., T - 1 and each return uses
    V as the earlier updates left it (a later state may already have been updated).

    V [n_states + 2] float (modified), states [T + 1], rewards [T] -> V.
    """
    states, rewards = _check_episode(states, rewards)
    n, alpha = _check_n(n), _check_unit("alpha", alpha)
    for tau in range(rewards.size):
        G = nstep_return(V, states, rewards, tau, n, gamma)
        V[states[tau]] += alpha * (G - V[states[tau]])
    return V


def nstep_td(
    walk: RandomWalk,
    n: int,
    alpha: float,
    n_episodes: int,
    rng: np.random.Generator,
    gamma: float = 1.0,
    initial: float = 0.0,
) -> np.ndarray:
    """One run of n-step TD prediction on `walk`: V starts at `initial` (0 for Figure 7.2), then
    `n_episodes` episodes from rng, each followed by its updates.

    Returns history [n_episodes, walk.n_states]: the non-terminal values after each episode.
    """
    if int(n_episodes) != n_episodes or n_episodes < 1:
        raise ValueError(f"n_episodes must be a whole number >= 1, got {n_episodes!r}")
    V = np.full(walk.n_states + 2, float(initial))
    V[[0, -1]] = 0.0  # terminal states
    history = np.empty((int(n_episodes), walk.n_states))
    for episode in range(int(n_episodes)):
        states, rewards = walk.episode(rng)
        nstep_td_episode(V, states, rewards, n, alpha, gamma)
        history[episode] = V[1:-1]
    return history


# ---------------------------------------------------------------------------------------------
# Many runs and step sizes at once
# ---------------------------------------------------------------------------------------------


def run_generators(seed: int | np.random.SeedSequence, n_runs: int) -> list[np.random.Generator]:
    """One independent generator per run, spawned from `seed`: run r draws its episodes from the
    r-th, so `nstep_td(..., rng=run_generators(seed, R)[r])` replays run r of `nstep_td_runs`."""
    return np.random.default_rng(seed).spawn(int(n_runs))


def nstep_td_runs(
    walk: RandomWalk,
    n: int,
    alphas,
    n_runs: int,
    n_episodes: int,
    seed: int | np.random.SeedSequence = 0,
    gamma: float = 1.0,
    initial: float = 0.0,
) -> np.ndarray:
    """n-step TD on `n_runs` runs and every step size in `alphas` at once: the same numbers as
    calling `nstep_td` once per run and step size (up to rounding), in a fraction of the time.

    Every step size sees the same episodes (common random numbers: the differences between step
    sizes are not blurred by different luck). The episode of index k is played by all runs together,
    one numpy call per time step; runs whose episode has ended drop out of the call.

    The rewards part of every n-step return is computed up front from full returns,
    sum_{i<n} gamma^i R_{tau+i+1} = G_tau - gamma^n G_{tau+n} (G = 0 from T on); only the bootstrap
    term gamma^n V(S_{tau+n}) depends on V and must wait for the earlier updates.

    Returns history [n_episodes, n_runs, len(alphas), walk.n_states].
    """
    n, gamma = _check_n(n), _check_unit("gamma", gamma)
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))  # [A]
    if alphas.ndim != 1 or np.any(~((alphas >= 0) & (alphas <= 1))):
        raise ValueError(f"alphas must be step sizes in [0, 1], got {alphas!r}")
    rngs = run_generators(seed, n_runs)
    R, S = len(rngs), walk.n_states
    V = np.full((R, alphas.size, S + 2), float(initial))  # [R, A, S + 2]
    V[:, :, [0, -1]] = 0.0
    history = np.empty((int(n_episodes), R, alphas.size, S))
    for k in range(int(n_episodes)):
        states, rewards, lengths = RandomWalk.pad([walk.episode(rng) for rng in rngs])  # [R, L+1], [R, L], [R]
        L = rewards.shape[1]
        # Full returns G_t for t = 0..L (G_L = 0), backwards; padded rewards are 0 after the end.
        G = np.zeros((R, L + 1))
        for t in range(L - 1, -1, -1):
            G[:, t] = rewards[:, t] + gamma * G[:, t + 1]
        ahead = np.minimum(np.arange(L) + n, L)  # [L]: tau + n, capped at the padded end
        reward_part = G[:, :L] - gamma**n * G[:, ahead]  # [R, L]
        # Runs sorted by episode length, longest first: at step t the active runs are a prefix.
        order = np.argsort(-lengths, kind="stable")
        n_active = np.searchsorted(-lengths[order], -np.arange(L), side="right")  # [L]: runs with T > t
        for t in range(L):
            rows = order[: n_active[t]]  # [R_t]
            T = lengths[rows]
            G_t = np.broadcast_to(reward_part[rows, t][:, None], (rows.size, alphas.size)).copy()  # [R_t, A]
            bootstrap = t + n < T  # [R_t]
            if bootstrap.any():
                b = rows[bootstrap]
                G_t[bootstrap] += gamma**n * V[b, :, states[b, t + n]]
            s = states[rows, t]
            V[rows, :, s] += alphas * (G_t - V[rows, :, s])
        history[k] = V[:, :, 1:-1]
    return history


# ---------------------------------------------------------------------------------------------
# The error measure of Figure 7.2
# ---------------------------------------------------------------------------------------------


def rms_error(values: np.ndarray, true_values: np.ndarray) -> np.ndarray:
    """Root-mean-square error over states: sqrt(mean_s (V(s) - v(s))^2) along the last axis.

    values [..., n_states], true_values [n_states] -> [...]
    """
    values = np.asarray(values, dtype=float)
    true_values = np.asarray(true_values, dtype=float)
    if values.shape[-1:] != true_values.shape:
        raise ValueError(f"values has {values.shape[-1] if values.ndim else 0} states on its last axis but "
                         f"true_values has shape {true_values.shape}; pass the non-terminal values, V[1:-1]")
    return np.sqrt(np.mean((values - true_values) ** 2, axis=-1))
