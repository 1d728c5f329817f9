"""Returns: the quantity an RL agent maximises, computed from the rewards of an episode.

One episode of T steps gives rewards r_0 .. r_{T-1} (r_t is the reward of the step taken from
observation t). The discounted return from step t is

    G_t = r_t + gamma * r_{t+1} + gamma^2 * r_{t+2} + ... + gamma^(T-1-t) * r_{T-1}
        = r_t + gamma * G_{t+1},        with G_T = 0.

Shapes in this module:

    rewards  [T]   float, the rewards of one episode in time order
    G        [T]   float, G_t for every t (returns_to_go)

`discounted_return` and `returns_to_go` treat the end of the reward list as the end of the episode:
nothing comes after r_{T-1}. That is right when the episode *terminated* (the pole fell, the goal was
reached). When it was *truncated* by a time limit the world would have gone on, and the target must
bootstrap from a value V(s_T) instead of G_T = 0. See rlcore/evaluate.py for the two ways an episode ends.

Rollouts of N vector environments (deep RL, chapters 08 onwards) use time-major arrays [T, N]:

    rewards[t, i]      reward of the step env i took at time t
    values[t, i]       V(s_t) of the observation the step was taken from
    next_values[t, i]  V(s_{t+1}) of the observation the step led to: with SAME-STEP autoreset
                       (rlcore.envs.vector) that is V(info["final_obs"]) when the episode ended at t
    terminated[t, i]   the step reached a terminal state: bootstrap from 0, not next_values
    truncated[t, i]    the step hit a time limit: bootstrap from next_values, but stop the sum there

`gae` and `lambda_returns` take these arrays, as NumPy arrays or torch tensors (same results).
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


def _float_mask(flags, like):
    """A bool [T, N] array or tensor as 0.0 / 1.0 in the dtype of `like` (NumPy or torch)."""
    if isinstance(flags, np.ndarray) or np.isscalar(flags):
        return np.asarray(flags, dtype=like.dtype)
    return flags.to(like.dtype)  # torch.Tensor


def _check_rollout(name_arrays: dict) -> tuple[int, ...]:
    """All rollout arrays must share one [T, N] shape; return it or raise ValueError naming the culprit."""
    shapes = {name: tuple(a.shape) for name, a in name_arrays.items()}
    first = shapes["rewards"]
    if len(first) != 2:
        raise ValueError(f"rollout arrays are time-major [T, N]; rewards has shape {first}. "
                         "For a single environment use rewards[:, None].")
    wrong = {name: shape for name, shape in shapes.items() if shape != first}
    if wrong:
        raise ValueError(f"every rollout array must have the shape of rewards {first}; got {wrong}.")
    return first


def gae(rewards, values, next_values, terminated, truncated, gamma: float, lam: float):
    """Generalized advantage estimation (Schulman et al. 2016) over a [T, N] rollout.

        delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},    done_t = terminated_t or truncated_t

    A terminated step bootstraps from 0; a truncated one bootstraps from V(s_{t+1}) (the final
    observation, not the reset one) and, like termination, stops the sum: A_{t+1} belongs to the next
    episode. The last step of the rollout (t = T-1) bootstraps from next_values[T-1] with A_T = 0.

    Args: rewards, values, next_values [T, N] float; terminated, truncated [T, N] bool;
        gamma in [0, 1]; lam in [0, 1] (lam = 0: one-step TD errors, lam = 1: Monte Carlo returns
        minus the baseline).
    Returns: advantages [T, N], the same type and dtype as rewards.
    """
    gamma = _check_gamma(gamma)
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam (the GAE lambda) must be in [0, 1], got {lam!r}; typical values are 0.9 to 0.97.")
    T, _ = _check_rollout({"rewards": rewards, "values": values, "next_values": next_values,
                           "terminated": terminated, "truncated": truncated})
    alive = 1.0 - _float_mask(terminated, rewards)  # [T, N]: 0 where the next state is terminal
    carry = 1.0 - _float_mask(terminated | truncated, rewards)  # [T, N]: 0 where the episode ended
    deltas = rewards + gamma * alive * next_values - values  # [T, N]
    advantages = deltas * 0  # [T, N] zeros of the right type and dtype
    running = deltas[0] * 0  # [N]: A_{t+1}, 0 past the end of the rollout
    for t in range(T - 1, -1, -1):
        running = deltas[t] + gamma * lam * carry[t] * running
        advantages[t] = running
    return advantages


def lambda_returns(rewards, values, next_values, terminated, truncated, gamma: float, lam: float):
    """TD(lambda) returns over a [T, N] rollout: G^lambda_t = A_t + V(s_t), the value-function target.

    Same arguments as `gae`; lam = 1 gives discounted returns that bootstrap only at truncation and at
    the end of the rollout, lam = 0 gives one-step TD targets r_t + gamma * (1 - terminated_t) * V(s_{t+1}).
    Returns [T, N].
    """
    return gae(rewards, values, next_values, terminated, truncated, gamma, lam) + values
