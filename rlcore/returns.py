"""Returns: the quantity an RL agent maximises, computed from the rewards of an episode.

One episode of T steps gives rewards r_0 .. r_{T-1} (r_t is the reward of the step taken from
observation t). The discounted return from step t is

    G_t = r_t + gamma * r_{t+1} + gamma^2 * r_{t+2} + ... + gamma^(T-1-t) * r_{T-1}
        = r_t + gamma * G_{t+1},        with G_T = 0.

Shapes in this module:

    rewards  [T]   float, the rewards of one episode in time order
    G        [T]   float, G_t for every t (returns_to_go)

Both functions treat the end of the reward list as the end of the episode: nothing comes after
r_{T-1}. That is right when the episode *terminated* (the pole fell, the goal was reached). When
it was *truncated* by a time limit the world would have gone on, and later chapters add a bootstrap
value V(s_T) in place of G_T = 0 (TD(lambda), GAE over [T, N] arrays with explicit terminated and
truncated flags). See rlcore/evaluate.py for the two ways an episode ends.
"""

from __future__ import annotations

import numpy as np


def _check_gamma(gamma: float) -> float:
    """Return gamma as a float, or raise ValueError when it is not a discount factor in [0, 1]."""
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}.") from None
    # `not (a <= x <= b)` is also True for NaN, which compares False with everything.
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"gamma must be in [0, 1], got {gamma!r}. gamma is the discount factor: 0 counts only the "
            "next reward, 1 adds all rewards undiscounted; typical values are 0.9 to 0.999."
        )
    return value


def _check_rewards(rewards) -> np.ndarray:
    """Return the rewards of one episode as a float array [T], or raise ValueError."""
    r = np.asarray(rewards, dtype=float)
    if r.ndim != 1:
        raise ValueError(
            f"rewards must be one episode's rewards, shape [T]; got shape {r.shape}. "
            "For several episodes call the function once per episode."
        )
    return r


def discounted_return(rewards, gamma: float) -> float:
    """The discounted return of a whole episode, G_0 = sum_t gamma^t * r_t.

    rewards: [T] (array-like of floats), gamma: discount factor in [0, 1].
    Returns a Python float; 0.0 for an empty episode (T = 0).

    The first reward is not discounted (gamma^0 = 1; numpy also gives 0.0 ** 0 = 1, so gamma = 0
    returns r_0).
    """
    gamma = _check_gamma(gamma)
    r = _check_rewards(rewards)  # [T]
    discounts = gamma ** np.arange(r.size)  # [T]: 1, gamma, gamma^2, ...
    return float(r @ discounts)


def returns_to_go(rewards, gamma: float) -> np.ndarray:
    """The discounted return from every step, G_t for t = 0 .. T-1.

    rewards: [T] (array-like of floats), gamma: discount factor in [0, 1].
    Returns G [T] (float64, a new array; `rewards` is not modified). G[0] == discounted_return.

    Computed backwards with G_t = r_t + gamma * G_{t+1}: one pass, O(T), where summing each
    G_t from scratch would be O(T^2).
    """
    gamma = _check_gamma(gamma)
    r = _check_rewards(rewards)  # [T]
    G = np.zeros_like(r)  # [T]
    future = 0.0  # G_{t+1}; G_T = 0 because nothing follows the last reward
    for t in range(r.size - 1, -1, -1):
        future = r[t] + gamma * future
        G[t] = future
    return G
