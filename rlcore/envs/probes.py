"""Probe environments: tiny tasks that each test one skill of a learning algorithm.

A deep RL agent that fails on CartPole could be failing for fifty reasons. A probe fails for one:
each of these environments has one thing to learn, an answer known in closed form, and it is solved
in a few hundred steps when the code is right. Run them in order; the first one that fails points
at the bug. (The idea comes from Andy Jones' "Debugging RL, Without the Agonizing Pain".)

    id                                          what must be learned              the bug it catches
    rlcore/Probe1-ConstantReward-v0             V = 1                             value loss / optimizer broken
    rlcore/Probe2-ObsDependentReward-v0         V(obs) = obs                      network ignores its input
    rlcore/Probe3-Discounting-v0                V(first) = gamma, V(second) = 1   discounting, terminal masking
    rlcore/Probe4-ActionDependentReward-v0      pick action 1                     policy-gradient sign, log-probs
    rlcore/Probe5-ObsAndActionDependentReward-v0  action = obs > 0                policy ignores obs, batch misalignment
    rlcore/Probe6-TimeLimit-v0                  V = 1 / (1 - gamma)               truncation treated as termination
    rlcore/Probe7-DelayedReward-v0              pick action 1 at the start        credit assignment over several steps

Every probe has float32 Box observations and a Discrete action space, and is deterministic given
the seed of its reset. The analytic answers are methods of the environment, so a test reads them
instead of hard-coding numbers:

    env = rlcore.envs.make_env("rlcore/Probe3-Discounting-v0")
    obs, _ = env.reset(seed=0)
    env.unwrapped.value(obs, gamma=0.99)      # 0.99, the value of the optimal policy at obs
    env.unwrapped.q_value(obs, 0, gamma=0.99)

`rlcore/Counter-v0` is not a learning probe but a plumbing one: its observation counts steps, so a
vector env's autoreset, final observations and episode statistics can be checked exactly.

Importing this module registers the ids with Gymnasium (rlcore.envs.make_env does it for you;
plain `gymnasium.make("rlcore/...")` needs `import rlcore.envs` first).
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ConstantReward", "ObsDependentReward", "Discounting", "ActionDependentReward",
           "ObsAndActionDependentReward", "TimeLimitProbe", "DelayedReward", "Counter", "PROBES"]


class _Probe(gym.Env):
    """Shared plumbing: a 1-D float32 observation, `n_actions` discrete actions, a step counter,
    and an error when stepped after the episode ended (a vector env that forgets to reset would
    otherwise go on collecting nonsense)."""

    metadata = {"render_modes": []}
    obs_dim = 1
    obs_low, obs_high = -1.0, 1.0

    def __init__(self, n_actions: int = 1):
        self.observation_space = spaces.Box(self.obs_low, self.obs_high, shape=(self.obs_dim,), dtype=np.float32)
        self.action_space = spaces.Discrete(n_actions)
        self._t = 0  # steps taken in the current episode
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._done = False
        self._start()
        return self._observe(), {}

    def _start(self) -> None:
        """Set up a new episode, drawing anything random from self.np_random (seeded by reset)."""

    def step(self, action):
        if self._done:
            raise RuntimeError(f"{type(self).__name__}.step() called after the episode ended (or before "
                               "reset); call reset() first.")
        if not self.action_space.contains(action):
            raise ValueError(f"{type(self).__name__} got action {action!r}, not in {self.action_space}.")
        reward, terminated, truncated = self._transition(int(action))
        self._t += 1
        self._done = terminated or truncated
        return self._observe(), float(reward), terminated, truncated, {}

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def _transition(self, action: int) -> tuple[float, bool, bool]:
        """Reward, terminated, truncated of taking `action` at step self._t."""
        raise NotImplementedError

    @staticmethod
    def _obs(*values: float) -> np.ndarray:
        return np.array(values, dtype=np.float32)


class ConstantReward(_Probe):
    """Probe 1. One observation (0), one action, reward +1, episode of one step.

    Right answer: V(obs) = 1 for every gamma (the episode ends after the reward).
    Catches: a value loss or optimizer that does not work at all: a wrong sign, a zero learning
    rate, targets detached from the reward, a loss computed but never backpropagated.
    """

    def _observe(self):
        return self._obs(0.0)

    def _transition(self, action):
        return 1.0, True, False

    def value(self, obs, gamma: float) -> float:
        return 1.0

    def q_value(self, obs, action: int, gamma: float) -> float:
        return 1.0


class ObsDependentReward(_Probe):
    """Probe 2. Observation +1 or -1 (uniform at reset), one action, reward = the observation,
    episode of one step.

    Right answer: V(obs) = obs[0], i.e. +1 or -1.
    Catches: a value network that cannot see its input, or a batch whose observations and targets
    have been shuffled apart (a reshape that mixes the [T, N] axes, a permutation applied to one
    tensor only). A net that ignores the observation learns 0 for both.
    """

    def _start(self):
        self._sign = 1.0 if self.np_random.random() < 0.5 else -1.0

    def _observe(self):
        return self._obs(self._sign if self._t == 0 else 0.0)

    def _transition(self, action):
        return self._sign, True, False

    def value(self, obs, gamma: float) -> float:
        return float(np.asarray(obs).reshape(-1)[0])

    def q_value(self, obs, action: int, gamma: float) -> float:
        return self.value(obs, gamma)


class Discounting(_Probe):
    """Probe 3. Two steps: observation 0 with reward 0, then observation 1 with reward +1, then
    the episode terminates. One action.

    Right answer: V(0) = gamma, V(1) = 1.
    Catches: discounting applied zero or two times, a one-step target built from the wrong next
    observation, and a missing terminal mask: bootstrapping through the end of the episode would
    give V(1) = 1 + gamma * V(next episode's first obs) = 1 + gamma^2 instead of 1.
    """

    obs_low = 0.0

    def _observe(self):
        return self._obs(float(min(self._t, 1)))

    def _transition(self, action):
        return (0.0, False, False) if self._t == 0 else (1.0, True, False)

    def value(self, obs, gamma: float) -> float:
        return 1.0 if float(np.asarray(obs).reshape(-1)[0]) > 0.5 else float(gamma)

    def q_value(self, obs, action: int, gamma: float) -> float:
        return self.value(obs, gamma)


class ActionDependentReward(_Probe):
    """Probe 4. One observation (0), two actions, reward +1 for action 1 and -1 for action 0,
    episode of one step.

    Right answer: the optimal policy always picks action 1; Q(obs, 1) = +1, Q(obs, 0) = -1, and the
    value of a policy that picks 1 with probability p is 2p - 1. The good action is 1 rather than 0
    so that a policy stuck on argmax's first index fails.
    Catches: the policy-gradient sign (gradient descent on the return instead of ascent), the
    log-probability of an action other than the one taken, advantages that do not reach the loss.
    """

    def __init__(self):
        super().__init__(n_actions=2)

    def _observe(self):
        return self._obs(0.0)

    def _transition(self, action):
        return (1.0 if action == 1 else -1.0), True, False

    def optimal_action(self, obs) -> int:
        return 1

    def q_value(self, obs, action: int, gamma: float) -> float:
        return 1.0 if action == 1 else -1.0

    def value(self, obs, gamma: float) -> float:
        return 1.0


class ObsAndActionDependentReward(_Probe):
    """Probe 5. Observation +1 or -1 (uniform at reset), two actions, reward +1 when the action
    matches the observation (action 1 for +1, action 0 for -1) and -1 otherwise; one step.

    Right answer: action = 1 if obs > 0 else 0; Q(obs, a) = +1 for that action, -1 for the other.
    A policy that ignores the observation earns 0 on average at best.
    Catches: a policy network that does not condition on its input, and batches in which the
    observations, actions and advantages are no longer aligned row by row.
    """

    def __init__(self):
        super().__init__(n_actions=2)

    def _start(self):
        self._sign = 1.0 if self.np_random.random() < 0.5 else -1.0

    def _observe(self):
        return self._obs(self._sign if self._t == 0 else 0.0)

    def _transition(self, action):
        return (1.0 if action == self.optimal_action([self._sign]) else -1.0), True, False

    def optimal_action(self, obs) -> int:
        return 1 if float(np.asarray(obs).reshape(-1)[0]) > 0 else 0

    def q_value(self, obs, action: int, gamma: float) -> float:
        return 1.0 if action == self.optimal_action(obs) else -1.0

    def value(self, obs, gamma: float) -> float:
        return 1.0


class TimeLimitProbe(_Probe):
    """Probe 6. One observation (always 0), one action, reward +1 every step; the task never
    terminates, but the episode is truncated after `max_steps` steps (default 20), the way
    Gymnasium's TimeLimit cuts CartPole at 500.

    Right answer: V = 1 / (1 - gamma) (100 for gamma = 0.99). The observation says nothing about
    the clock, so the cut is not part of the task: a correct learner bootstraps on truncation,
    target r + gamma * V(final_obs).
    Catches: truncation treated as termination (`done = terminated | truncated` in the target). A
    one-step TD learner with that bug converges to `value_if_truncation_is_termination(gamma)`
    instead, 1 / (1 - gamma * (T - 1) / T): 16.8 for gamma = 0.99, T = 20.
    """

    obs_low = 0.0

    def __init__(self, max_steps: int = 20):
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps!r}.")
        super().__init__()
        self.max_steps = int(max_steps)

    def _observe(self):
        return self._obs(0.0)

    def _transition(self, action):
        return 1.0, False, self._t + 1 >= self.max_steps

    def value(self, obs, gamma: float) -> float:
        return 1.0 / (1.0 - gamma)

    def q_value(self, obs, action: int, gamma: float) -> float:
        return self.value(obs, gamma)

    def value_if_truncation_is_termination(self, gamma: float) -> float:
        """The fixed point of one-step TD with the bug: every state is visited equally often, and
        1 transition in T is (wrongly) treated as terminal, so V = 1 + gamma * V * (T - 1) / T."""
        return 1.0 / (1.0 - gamma * (self.max_steps - 1) / self.max_steps)


class DelayedReward(_Probe):
    """Probe 7. The first action decides a reward paid `delay` steps later (default 3).

    Observation [branch, steps_left / length], with length = delay + 1 steps per episode:
    branch is 0 at the start, then +1 after action 1 or -1 after action 0; later actions change
    nothing. The last step pays reward = branch (+1 or -1); all other rewards are 0. The branch is
    in the observation, so no memory is needed: the skill tested is credit assignment alone.

    Right answer: action 1 at the start. Q(start, a) = gamma^delay * (+1 for a = 1, -1 for a = 0);
    in a branch state at step t the value is branch * gamma^(delay - t).
    Catches: returns that do not carry a reward back to earlier steps (advantage = r_t,
    reward-to-go summed in the wrong direction, an off-by-one in the time index of GAE or
    n-step returns, a done mask applied one step early).
    """

    obs_dim = 2

    def __init__(self, delay: int = 3):
        if delay < 1:
            raise ValueError(f"delay must be at least 1, got {delay!r}.")
        super().__init__(n_actions=2)
        self.delay = int(delay)
        self._branch = 0.0

    def _start(self):
        self._branch = 0.0

    def _observe(self):
        length = self.delay + 1
        return self._obs(self._branch, (length - self._t) / length)

    def _transition(self, action):
        if self._t == 0:
            self._branch = 1.0 if action == 1 else -1.0
        last = self._t == self.delay
        return (self._branch if last else 0.0), last, False

    def _step_index(self, obs) -> tuple[float, int]:
        branch, left = (float(x) for x in np.asarray(obs).reshape(-1)[:2])
        return branch, (self.delay + 1) - int(round(left * (self.delay + 1)))

    def optimal_action(self, obs) -> int:
        """1 at the start; in a branch state nothing matters any more, and 0 is returned."""
        branch, _ = self._step_index(obs)
        return 1 if branch == 0.0 else 0

    def q_value(self, obs, action: int, gamma: float) -> float:
        branch, t = self._step_index(obs)
        if branch == 0.0:
            branch = 1.0 if action == 1 else -1.0
        return branch * gamma ** (self.delay - t)

    def value(self, obs, gamma: float) -> float:
        return max(self.q_value(obs, a, gamma) for a in range(2))


class Counter(gym.Env):
    """A plumbing probe for vector envs: its observation counts the steps of the episode.

    Observation [t, last_action, length] (float32): t steps taken since reset, the last action
    (-1 right after reset), and the episode's length, drawn uniformly from
    [min_length, max_length] at reset with the env's seeded generator. Reward after step t is t
    (1, 2, 3, ...), so an episode of length L returns L (L + 1) / 2; it terminates at t = length.
    Two actions; the action changes nothing but the observation, which shows whether each env
    received its own action.

    For testing error and interrupt handling: `raise_on_action=a` makes a step with action a
    raise a RuntimeError (so a test chooses which env fails through the actions it sends), and
    `step_seconds` makes every step sleep (a stand-in for an expensive simulator).
    """

    metadata = {"render_modes": []}

    def __init__(self, min_length: int = 2, max_length: int = 6, raise_on_action: int | None = None,
                 step_seconds: float = 0.0):
        if not 1 <= min_length <= max_length:
            raise ValueError(f"need 1 <= min_length <= max_length, got {min_length} and {max_length}.")
        self.min_length, self.max_length = int(min_length), int(max_length)
        self.raise_on_action, self.step_seconds = raise_on_action, float(step_seconds)
        self.observation_space = spaces.Box(-1.0, float(max_length), shape=(3,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._t, self._length, self._last_action = 0, 0, -1

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t, self._last_action = 0, -1
        self._length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        return self._observe(), {}

    def step(self, action):
        if self._t >= self._length:
            raise RuntimeError("Counter.step() called after the episode ended (or before reset); call reset().")
        if self.step_seconds:
            time.sleep(self.step_seconds)
        if self.raise_on_action is not None and int(action) == self.raise_on_action:
            raise RuntimeError(f"Counter was asked to fail on action {self.raise_on_action}.")
        self._t += 1
        self._last_action = int(action)
        return self._observe(), float(self._t), self._t >= self._length, False, {}

    def _observe(self) -> np.ndarray:
        return np.array([self._t, self._last_action, self._length], dtype=np.float32)


PROBES = {
    "rlcore/Probe1-ConstantReward-v0": ConstantReward,
    "rlcore/Probe2-ObsDependentReward-v0": ObsDependentReward,
    "rlcore/Probe3-Discounting-v0": Discounting,
    "rlcore/Probe4-ActionDependentReward-v0": ActionDependentReward,
    "rlcore/Probe5-ObsAndActionDependentReward-v0": ObsAndActionDependentReward,
    "rlcore/Probe6-TimeLimit-v0": TimeLimitProbe,
    "rlcore/Probe7-DelayedReward-v0": DelayedReward,
}
"""The learning probes in the order to run them: id -> class."""


def _register() -> None:
    """Register every probe id with Gymnasium, once (re-importing the module is harmless)."""
    for env_id, cls in {**PROBES, "rlcore/Counter-v0": Counter}.items():
        if env_id not in gym.registry:
            # No max_episode_steps: every probe ends its episodes itself, and a TimeLimit wrapper
            # would add a second, hidden cut. Counter's time limit can be added by
            # make_env(..., max_episode_steps=k) to test truncation.
            gym.register(id=env_id, entry_point=f"{__name__}:{cls.__name__}")


_register()
