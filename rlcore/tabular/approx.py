"""Semi-gradient Sarsa with a linear action-value function over tile features
(Sutton & Barto, 2nd ed., sections 10.1-10.2), one run at a time or vectorized over runs.

The value of action a in a state with active tiles `tiles` (one per tiling) is the sum of those
tiles' weights for that action:

    q(s, a, w) = sum_i w[a, tiles[i]]          w [A, F]   (A actions, F tile features)

so the gradient of q(s, a) with respect to w is 1 on the active tiles of row a and 0 elsewhere,
and the semi-gradient update w <- w + alpha * (G - q(S, A)) * grad q(S, A) moves exactly those
T weights by alpha * (G - q(S, A)). It is *semi*-gradient because the target G itself depends on w
(through q(S', A')) but is treated as a constant. With T tilings every update changes q(S, A) by
T * alpha * (G - q): that is why the book writes step sizes as alpha = 0.5 / 8, "one eighth of the way
... times 4" for 8 tilings, the total step being 0.5 of the error.

One-step Sarsa (episodic, book p. 244) uses G = R + gamma * q(S', A'), or G = R at a terminal
S'. n-step Sarsa (p. 247) uses G = R_{tau+1} + ... + gamma^{n-1} R_{tau+n} + gamma^n q(S_{tau+n},
A_{tau+n}), without the last term when the episode ends first; one-step Sarsa is n = 1.

Two implementations of the same algorithm:

- `semi_gradient_sarsa` and `n_step_sarsa`: one run on one environment, a plain loop over steps,
  the way you would write it (and the exercise's signatures). About 50 microseconds a step.
- `run_sarsa`: R runs at once on a `MountainCarBatch`, every array with the run axis first
  (w [R, A, F], tiles [R, T], actions [R]), each run on its own episode counter. It draws its
  random numbers so that with R = 1 it takes exactly the same steps as the loop (tested), and
  100 runs x 500 episodes of Figure 10.2 take seconds instead of an hour.

Greedy ties are broken at random: at the start every q is 0, and a first-index argmax would send
every car backwards first. With Q0 = 0 and rewards of -1, greedy action selection (epsilon = 0)
explores anyway: every tried action looks worse than the untried ones (optimistic initial values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlcore.tabular.bandits import argmax_random_ties, epsilon_greedy
from rlcore.tabular.mountain_car import N_ACTIONS, MountainCarBatch
from rlcore.tabular.tiles import MOUNTAIN_CAR_CODER, TileCoder, active_tiles

# ---------------------------------------------------------------------------------------------
# The pieces: action values, action choice, the semi-gradient step
# ---------------------------------------------------------------------------------------------


def q_values(w: np.ndarray, tiles) -> np.ndarray:
    """Action values of states from their active tiles.

    w [..., A, F], tiles [..., T] int -> q [..., A], q[..., a] = sum_i w[..., a, tiles[..., i]].
    The leading axes broadcast: one w [A, F] with tiles [P, T] gives q [P, A] (many states, one run).
    """
    tiles = np.asarray(tiles)
    extra = (tiles.ndim - 1) - (w.ndim - 2)
    if extra > 0:
        w = w.reshape((1,) * extra + w.shape)
    return np.take_along_axis(w, tiles[..., None, :], axis=-1).sum(axis=-1)


def greedy_action(w: np.ndarray, tiles, rng: np.random.Generator) -> int:
    """The greedy action of one state, ties broken at random: w [A, F], tiles [T] -> int."""
    return int(argmax_random_ties(q_values(w, tiles)[None], rng)[0])


def _choose(q: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Epsilon-greedy over action values q [R, A] -> actions [R]. Epsilon = 0 draws only the
    tie-breaking keys, so a greedy learner's random stream does not depend on how epsilon-greedy
    would have drawn."""
    return argmax_random_ties(q, rng) if epsilon == 0 else epsilon_greedy(q, epsilon, rng)


def sarsa_update(w: np.ndarray, tiles, action, target, alpha: float) -> np.ndarray:
    """One semi-gradient step, in place: w[a, tiles] += alpha * (target - q(s, a)).

    w [..., A, F] float (modified and returned), tiles [..., T] int, action [...] int, target [...].
    The T tiles of one state are distinct (one per tiling), so each weight moves once.
    """
    tiles = np.asarray(tiles)
    lead = w.shape[:-2]
    n_actions, n_features = w.shape[-2:]
    flat = w.reshape(-1)  # a view: w is updated through it
    batch = np.arange(int(np.prod(lead))).reshape(lead) if lead else 0
    rows = (batch * n_actions + np.asarray(action)) * n_features  # [...]: start of row (run, action)
    index = rows[..., None] + tiles  # [..., T] flat indices of the active weights
    error = np.asarray(target) - flat[index].sum(axis=-1)  # [...] the TD (or n-step) error
    flat[index] += alpha * error[..., None]
    return w


def _check_alpha_n(alpha, n: int) -> None:
    a = np.asarray(alpha, dtype=np.float64)
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"alpha must be a positive step size (e.g. 0.5 / 8 for 8 tilings), got {alpha!r}.")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a whole number of steps >= 1, got {n!r}.")


def _initial_weights(w, n_features: int) -> np.ndarray:
    if w is None:
        return np.zeros((N_ACTIONS, n_features))  # Q0 = 0: optimistic, since every reward is -1
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != N_ACTIONS:
        raise ValueError(f"w must have shape [{N_ACTIONS}, n_features], one row per action; got {w.shape}.")
    return w


# ---------------------------------------------------------------------------------------------
# One run: plain loops
# ---------------------------------------------------------------------------------------------


def semi_gradient_sarsa(env, n_episodes: int, alpha: float, rng: np.random.Generator, w=None, *,
                        epsilon: float = 0.0, gamma: float = 1.0, tiles_fn=active_tiles) -> np.ndarray:
    """Episodic one-step semi-gradient Sarsa (book p. 244) for n_episodes episodes of `env`.

    env: a Gymnasium-style environment whose observations are (position, velocity), such as
    `MountainCar`; rng: for ties (and exploration); w: initial weights [A, F] (default zeros,
    F = 880 tiles of MOUNTAIN_CAR_CODER), updated in place and returned; tiles_fn(position,
    velocity) -> [T] active tiles. Episode lengths are for the environment to record.
    """
    _check_alpha_n(alpha, 1)
    w = _initial_weights(w, MOUNTAIN_CAR_CODER.n_features)
    choose = lambda tiles: int(_choose(q_values(w, tiles)[None], epsilon, rng)[0])  # noqa: E731
    for _ in range(n_episodes):
        obs, _ = env.reset()
        tiles = np.asarray(tiles_fn(*obs))
        action = choose(tiles)
        while True:
            obs, reward, terminated, truncated, _ = env.step(action)
            if terminated:
                sarsa_update(w, tiles, action, reward, alpha)  # q(terminal, .) = 0: no bootstrap
                break
            next_tiles = np.asarray(tiles_fn(*obs))
            next_action = choose(next_tiles)  # chosen with w *before* this update, as in the book
            target = reward + gamma * q_values(w, next_tiles)[next_action]
            sarsa_update(w, tiles, action, target, alpha)
            tiles, action = next_tiles, next_action
    return w


def n_step_sarsa(env, n_episodes: int, n: int, alpha: float, rng: np.random.Generator, w=None, *,
                 epsilon: float = 0.0, gamma: float = 1.0, tiles_fn=active_tiles) -> np.ndarray:
    """Episodic semi-gradient n-step Sarsa (book p. 247) for n_episodes episodes of `env`.

    Same arguments as `semi_gradient_sarsa`, plus n >= 1; n = 1 is one-step Sarsa, step for step.
    The loop keeps the last n + 1 states, actions and rewards (index t mod n + 1). At time t the
    update is for tau = t - n + 1; after the episode ends at T the remaining tau up to T - 1 are
    updated with the rewards that are left and no bootstrap.
    """
    _check_alpha_n(alpha, n)
    w = _initial_weights(w, MOUNTAIN_CAR_CODER.n_features)
    choose = lambda tiles: int(_choose(q_values(w, tiles)[None], epsilon, rng)[0])  # noqa: E731
    size = n + 1
    for _ in range(n_episodes):
        obs, _ = env.reset()
        tiles_buf, actions_buf, rewards_buf = [None] * size, [0] * size, [0.0] * size
        tiles_buf[0] = np.asarray(tiles_fn(*obs))
        actions_buf[0] = choose(tiles_buf[0])
        T = np.inf
        t = 0
        while True:
            if t < T:
                obs, reward, terminated, truncated, _ = env.step(actions_buf[t % size])
                rewards_buf[(t + 1) % size] = reward
                if terminated:
                    T = t + 1
                else:
                    tiles_buf[(t + 1) % size] = np.asarray(tiles_fn(*obs))
                    actions_buf[(t + 1) % size] = choose(tiles_buf[(t + 1) % size])
            tau = t - n + 1  # the time whose estimate is updated now
            if tau >= 0:
                G = sum(gamma ** (i - tau - 1) * rewards_buf[i % size] for i in range(tau + 1, int(min(tau + n, T)) + 1))
                if tau + n < T:
                    G += gamma**n * q_values(w, tiles_buf[(tau + n) % size])[actions_buf[(tau + n) % size]]
                sarsa_update(w, tiles_buf[tau % size], actions_buf[tau % size], G, alpha)
            if tau == T - 1:
                break
            t += 1
    return w


# ---------------------------------------------------------------------------------------------
# Many runs at once
# ---------------------------------------------------------------------------------------------


@dataclass
class SarsaRun:
    """What `run_sarsa` recorded.

    episode_lengths [E, R] int: steps of episode e in run r (the y axis of Figures 10.2-10.4).
    w [R, A, F]: every run's final weights.
    trapped [R] bool: runs given up because one episode passed `max_episode_steps` (their
    remaining episode lengths are 0). `mean_steps` and `per_run` leave them out.
    final_obs [R, 2]: where each car was at the end (at the goal, or where a trapped run was stopped);
    final_actions [R]: the action each run had chosen there (what a trapped run would do next).
    """

    episode_lengths: np.ndarray
    w: np.ndarray
    trapped: np.ndarray
    final_obs: np.ndarray
    final_actions: np.ndarray

    def mean_steps(self) -> np.ndarray:
        """Average over the completed runs of the steps per episode, [E] (the book's curves)."""
        return self.episode_lengths[:, ~self.trapped].mean(axis=1)

    def per_run(self, first: int, last: int) -> np.ndarray:
        """Each completed run's mean steps per episode over episodes first..last (1-based,
        inclusive): [R - trapped runs]."""
        if not 1 <= first <= last <= self.episode_lengths.shape[0]:
            raise ValueError(f"episodes {first}..{last} are outside 1..{self.episode_lengths.shape[0]}")
        return self.episode_lengths[first - 1 : last, ~self.trapped].mean(axis=0, dtype=np.float64)


def run_sarsa(n_runs: int, n_episodes: int, alpha, n: int = 1, *, epsilon: float = 0.0,
              gamma: float = 1.0, seed: int | np.random.SeedSequence = 0, coder: TileCoder = MOUNTAIN_CAR_CODER,
              max_episode_steps: int | None = None, progress: bool = False) -> SarsaRun:
    """n-step semi-gradient Sarsa (one-step for n = 1) on n_runs independent Mountain Cars.

    Each run has its own weights w[r] [A, F], its own car and its own episode counter; a run that
    has finished n_episodes waits (its car is frozen) until the slowest run is done. The car
    and the agent draw from two streams spawned from `seed`: the environment's start positions,
    the agent's tie-breaking (and exploration). With n_runs = 1 this is `n_step_sarsa` step for step.

    alpha: one step size, or one per run [R]: runs with different step sizes are independent, so a
    whole parameter study can share one batch (Figure 10.2's three step sizes in one call).

    max_episode_steps: give up on a run whose episode has not reached the goal after this many
    steps (None: never, as in the book). Greedy Sarsa can be trapped for good: at the valley floor
    at rest, nearby states share all 8 tiles, the three action values fall together, and the
    greedy choice cycles through forward, none and reverse without ever building up speed. About
    one run in a thousand never finishes its first episode; such runs are marked `trapped`.

    Per-run state, with the run axis first: a ring buffer of the last n + 1 tiles [n+1, R, T],
    actions and rewards [n+1, R], and t [R], the time step within each run's current episode.
    """
    _check_alpha_n(alpha, n)
    if isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    env_rng, agent_rng = np.random.default_rng(seed).spawn(2)
    env = MountainCarBatch(n_runs, env_rng, n_episodes)
    R, size = n_runs, n + 1
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (R,))  # [R]
    w = np.zeros((R, N_ACTIONS, coder.n_features))
    runs = np.arange(R)
    tiles_buf = np.zeros((size, R, coder.num_tilings), dtype=np.int64)
    actions_buf = np.zeros((size, R), dtype=np.int64)
    rewards_buf = np.zeros((size, R))
    discounts = gamma ** np.arange(n)  # [n]

    # Weights are read and written through flat indices into w (a view), only for the runs that
    # act: w[rows] would copy [k, A, F] floats every step. Weight (r, a, f) is w_flat[(r*A + a)*F + f].
    w_flat = w.reshape(-1)
    F = coder.n_features
    action_offsets = (np.arange(N_ACTIONS) * F)[None, :, None]  # [1, A, 1]

    def flat_index(rows: np.ndarray, actions, tiles: np.ndarray) -> np.ndarray:
        return (rows[:, None] * N_ACTIONS + actions) * F + tiles  # rows [k], actions [k, 1], tiles [k, T]

    def q_rows(rows: np.ndarray, tiles: np.ndarray) -> np.ndarray:  # rows [k], tiles [k, T] -> [k, A]
        index = flat_index(rows, 0, tiles)[:, None, :] + action_offsets  # [k, A, T]
        return np.take(w_flat, index).sum(axis=-1)

    def choose(rows: np.ndarray, tiles: np.ndarray) -> np.ndarray:
        return _choose(q_rows(rows, tiles), epsilon, agent_rng)

    def update(rows: np.ndarray, tau: np.ndarray, end: np.ndarray, bootstrap: bool) -> None:
        # G_{tau:end} for the given runs: rewards R_{tau+1} .. R_end (end <= tau + n), plus
        # gamma^n q(S_{tau+n}, A_{tau+n}) when bootstrap. rows, tau, end [k].
        G = np.zeros(rows.size)
        for j in range(n):  # reward R_{tau+1+j}, discounted by gamma^j, while tau + 1 + j <= end
            use = tau + 1 + j <= end
            G += np.where(use, discounts[j] * rewards_buf[(tau + 1 + j) % size, rows], 0.0)
        if bootstrap:
            slot = (tau + n) % size
            G += gamma**n * np.take(w_flat, flat_index(rows, actions_buf[slot, rows][:, None], tiles_buf[slot, rows])).sum(axis=1)
        slot = tau % size
        # sarsa_update on the selected runs: the same step, in place through the flat view.
        index = flat_index(rows, actions_buf[slot, rows][:, None], tiles_buf[slot, rows])  # [k, T]
        error = G - np.take(w_flat, index).sum(axis=1)  # [k]
        w_flat[index] += (alphas[rows] * error)[:, None]  # the tiles of one state are distinct: no index repeats

    obs, _ = env.reset()
    tiles_buf[0] = coder(obs)
    actions_buf[0] = choose(runs, tiles_buf[0])
    t = np.zeros(R, dtype=np.int64)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=R * n_episodes, desc="episodes", leave=False)
    while not env.all_finished:
        running = ~env.finished
        obs, rewards, terminated, _, info = env.step(actions_buf[t % size, runs])
        nxt = (t + 1) % size
        rewards_buf[nxt, runs] = rewards
        # A_{t+1} for runs that go on, chosen with w before this step's update (the book's order).
        go_on = np.flatnonzero(running & ~terminated)
        if go_on.size:
            tiles = coder(obs[go_on])
            tiles_buf[nxt[go_on], go_on] = tiles
            actions_buf[nxt[go_on], go_on] = choose(go_on, tiles)
            # tau = t - n + 1 >= 0: update with the bootstrap q(S_{t+1}, A_{t+1}).
            ready = go_on[t[go_on] - n + 1 >= 0]
            if ready.size:
                tau = t[ready] - n + 1
                update(ready, tau, tau + n, bootstrap=True)
        ended = np.flatnonzero(terminated)
        if ended.size:
            # The episode ended at T = t + 1: update tau = T - n, ..., T - 1 in order, no bootstrap.
            T = t[ended] + 1
            for j in range(n):
                tau = T - n + j
                ok = tau >= 0  # an episode shorter than n has fewer updates
                if ok.any():
                    update(ended[ok], tau[ok], T[ok], bootstrap=False)
            # Runs that go on start their next episode (the env already reset their cars).
            restart = ended[~env.finished[ended]]
            if restart.size:
                tiles = coder(obs[restart])
                tiles_buf[0, restart] = tiles
                actions_buf[0, restart] = choose(restart, tiles)
            t[ended] = 0
            if bar is not None:
                bar.update(ended.size)
        t[go_on] += 1
        if max_episode_steps is not None:
            over = np.flatnonzero(~env.finished & (env.steps >= max_episode_steps))
            if over.size:
                env.stop(over)
                if bar is not None:
                    bar.update(int((n_episodes - env.episode[over]).sum()))
    if bar is not None:
        bar.close()
    return SarsaRun(episode_lengths=env.episode_lengths.copy(), w=w, trapped=env.stopped.copy(),
                    final_obs=env._obs(), final_actions=actions_buf[t % size, runs])
