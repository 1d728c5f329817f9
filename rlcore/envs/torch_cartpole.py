"""CartPole-v1 in torch for N environments on the policy's device (CPU or CUDA).

With a NumPy environment, every step of a GPU training loop copies the actions to the host and the
observations, rewards and flags back: two transfers and a synchronisation per step, each costing more
than the step itself (tens of microseconds). Here the state of all N carts is one [N, 4] tensor on
the same device as the network, so a rollout never leaves the device.

    from rlcore.envs.torch_cartpole import TorchCartPole
    envs = TorchCartPole(4096, device="cuda")
    obs, info = envs.reset(seed=0)                    # obs [4096, 4] float32 on cuda
    obs, rewards, terminated, truncated, info = envs.step(actions)   # actions [4096] int64 on cuda

It follows the rlcore vector-env protocol (rlcore.envs.vector) with tensors in place of arrays:
SAME-STEP autoreset, info["final_obs"] [N, 4], info["episode_return"] [N] float64 (NaN where no
episode ended), info["episode_length"] [N] int64 (0 where none ended), the 500-step time limit
of CartPole-v1 as truncation.

Physics: `cartpole_step` is Gymnasium's CartPoleEnv.step written over [N] tensors (Euler integration,
tau = 0.02, the same expressions in the same order as rlcore.envs.fast.CartPole), plus the autoreset.
Precision (`dtype`):
    torch.float64 on CPU   identical to Gymnasium: float64 state, float32 observations, bit for bit
                           (cos and sin are taken from NumPy, as Gymnasium does: torch's vectorized
                           ones may differ in the last bit, and CartPole's instability grows a 1e-16
                           difference to a visible one within a few hundred steps);
    torch.float64 on CUDA  float64 state with CUDA's cos and sin: within a few ulp per step;
    torch.float32          the state in float32 (the fast choice on a GPU): the same dynamics, within
                           about 1e-6 per step, so trajectories drift apart from Gymnasium's over an
                           episode (tests/test_torch_cartpole.py states the tolerance).

Initial states (`initial_states`):
    "torch"      (default) drawn on the device from one torch.Generator for the whole batch, seeded by
                 reset(seed=s); no host round trip. The same seed gives the same episodes, but not the
                 ones Gymnasium would draw (NumPy's generators cannot be reproduced on the device).
    "gymnasium"  env i draws from its own NumPy generator seeded s + i, exactly as
                 gymnasium.make("CartPole-v1").reset(seed=s + i) and the resets after it do. The next
                 initial state of every env is drawn ahead of time and kept on the device; after a step in
                 which episodes ended, the ended envs draw their next one on the host (one transfer of the
                 `done` flags per such step). For tests and exact comparisons, not for speed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from rlcore.envs.fast.cartpole import (FORCE_MAG, GRAVITY, LENGTH, MASS_POLE, MAX_EPISODE_STEPS, POLEMASS_LENGTH,
                                       TAU, THETA_THRESHOLD, TOTAL_MASS, X_THRESHOLD)

__all__ = ["TorchCartPole", "cartpole_physics", "cartpole_step", "make_on_device", "INITIAL_STATES"]

INITIAL_STATES = ("torch", "gymnasium")
RESET_LOW, RESET_HIGH = -0.05, 0.05  # Gymnasium's reset: uniform(-0.05, 0.05) for each state variable


def _cos_sin(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of theta [N]. float64 on CPU goes through NumPy (the C library's results, as Gymnasium
    gets them), which torch's vectorized kernels match only to the last bit; elsewhere torch's own."""
    if theta.dtype == torch.float64 and theta.device.type == "cpu":
        host = theta.numpy()  # shares memory: no copy
        return torch.from_numpy(np.cos(host)), torch.from_numpy(np.sin(host))
    return theta.cos(), theta.sin()


def cartpole_physics(state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """One Euler step (tau = 0.02 s) of N carts: state [N, 4] (x, x_dot, theta, theta_dot), actions [N]
    in {0 = push left, 1 = push right} -> next state [N, 4], same dtype and device.

    Euler, not semi-implicit: every variable is updated from the OLD state (x from the old x_dot,
    theta from the old theta_dot), as Gymnasium's default kinematics_integrator="euler" does."""
    x, x_dot, theta, theta_dot = state.unbind(1)
    force = (actions.to(state.dtype) * 2 - 1) * FORCE_MAG  # -10 or +10, exactly
    costheta, sintheta = _cos_sin(theta)
    # Same expressions, same order as Gymnasium, so that float64 results agree bit for bit.
    temp = (force + POLEMASS_LENGTH * theta_dot.square() * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (
        LENGTH * (4.0 / 3.0 - MASS_POLE * costheta.square() / TOTAL_MASS))
    xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    return torch.stack([x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc], 1)


def cartpole_step(state: torch.Tensor, lengths: torch.Tensor, actions: torch.Tensor, reset_states: torch.Tensor,
                  max_episode_steps: int = MAX_EPISODE_STEPS):
    """One step of N CartPoles with SAME-STEP autoreset, all on one device, with no host round trip.

    Args:
        state: [N, 4] float (x, x_dot, theta, theta_dot) before the step.
        lengths: [N] int64, steps already taken in each env's current episode.
        actions: [N] int64 in {0, 1}.
        reset_states: [N, 4] float, the state an env starts its next episode from if its episode ends
            at this step (rows of envs that go on are ignored).
        max_episode_steps: the time limit (CartPole-v1: 500): an episode reaching it is truncated.

    Returns (next_state, next_lengths, rewards, terminated, truncated, final_state):
        next_state [N, 4]: the state after the step, or reset_states where the episode ended;
        next_lengths [N] int64: lengths + 1, or 0 where the episode ended;
        rewards [N] float32: 1 for every step, the last one included;
        terminated [N] bool: the pole fell (|theta| > 12 degrees) or the cart left the track (|x| > 2.4);
        truncated [N] bool: the episode reached max_episode_steps (Gymnasium's TimeLimit: both flags are
            set when the pole falls at the last allowed step);
        final_state [N, 4]: the state the step reached, before any reset (what info["final_obs"] shows).
    """
    final_state = cartpole_physics(state, actions)
    x, theta = final_state[:, 0], final_state[:, 2]
    terminated = (x < -X_THRESHOLD) | (x > X_THRESHOLD) | (theta < -THETA_THRESHOLD) | (theta > THETA_THRESHOLD)
    lengths = lengths + 1
    truncated = lengths >= max_episode_steps
    done = terminated | truncated
    next_state = torch.where(done.unsqueeze(1), reset_states, final_state)
    next_lengths = torch.where(done, torch.zeros_like(lengths), lengths)
    rewards = torch.ones(state.shape[0], dtype=torch.float32, device=state.device)
    return next_state, next_lengths, rewards, terminated, truncated, final_state


class TorchCartPole:
    """N CartPole-v1 environments as tensors on one device (see the module docstring).

    Args:
        num_envs: N.
        device: torch device of the state and of everything step returns ("cpu", "cuda", "cuda:1").
        dtype: torch.float32 (fast) or torch.float64 (exact on CPU) for the physics; observations are
            always float32, as Gymnasium's.
        max_episode_steps: the time limit (CartPole-v1: 500).
        initial_states: "torch" or "gymnasium" (see the module docstring).
        seed: the seed of the first reset() when that call gives none (as make_vector's seed).
        check_actions: verify that every action is 0 or 1. On CUDA this reads a flag back to the host
            at every step (a synchronisation); turn it off once the actions come from a trusted policy.

    `step(actions [N])` returns obs [N, 4] float32, rewards [N] float32, terminated [N] bool,
    truncated [N] bool and info {"final_obs" [N, 4], "episode_return" [N] float64, "episode_length"
    [N] int64}, all tensors on `device`.
    """

    NAME = "TorchCartPole"

    def __init__(self, num_envs: int, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_episode_steps: int = MAX_EPISODE_STEPS, initial_states: str = "torch", seed: int | None = None,
                 check_actions: bool = True):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer)) \
                or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}.")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 (fast) or torch.float64 (exact on CPU), got {dtype!r}.")
        if initial_states not in INITIAL_STATES:
            raise ValueError(f"initial_states must be one of {INITIAL_STATES}, got {initial_states!r}.")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} but this torch has no CUDA device "
                             f"(torch {torch.__version__}); use device='cpu'.")
        self.num_envs, self.max_episode_steps = int(num_envs), int(max_episode_steps)
        self.dtype, self.initial_states, self.check_actions = dtype, initial_states, bool(check_actions)
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        self.single_observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": "same-step"}
        self._first_seed = self._check_seed(seed, "seed")
        self._generator = torch.Generator(device=self.device)
        self._rngs: list[np.random.Generator] = []  # initial_states="gymnasium": one per env, as Gymnasium's
        self._state: torch.Tensor | None = None  # [N, 4] in self.dtype
        self._lengths = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._next_initial: torch.Tensor | None = None  # [N, 4]: "gymnasium" mode's next reset states
        self._closed = False

    # -- protocol -------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[torch.Tensor, dict]:
        """Start a new episode in every environment; obs [N, 4] float32 on the device.

        seed: the torch generator's seed ("torch"), or env i's NumPy seed is seed + i ("gymnasium").
        Without a seed (and none given to the constructor), the generators continue their streams, or
        start from fresh entropy on the first reset."""
        self._check_open()
        seed = self._check_seed(seed, "reset(seed=...)")
        if seed is None:
            seed, self._first_seed = self._first_seed, None
        if self.initial_states == "torch":
            if seed is not None:
                self._generator.manual_seed(seed)
            elif self._state is None:
                self._generator.seed()  # fresh entropy
            self._state = self._draw_initial()
        else:
            if seed is not None or not self._rngs:
                seeds = [None] * self.num_envs if seed is None else [seed + i for i in range(self.num_envs)]
                self._rngs = [np.random.default_rng(s) for s in seeds]  # = Gymnasium's seeding.np_random(s)
            self._state = self._host_initial(range(self.num_envs))
            self._next_initial = self._host_initial(range(self.num_envs))  # drawn ahead: the next reset's
        self._lengths.zero_()
        return self._state.float(), {}

    def step(self, actions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Advance every environment one step; those whose episode ended start the next one at once."""
        self._check_open()
        if self._state is None:
            raise RuntimeError("TorchCartPole.step() called before reset(): call envs.reset(seed=...) first.")
        actions = self._validate(actions)
        reset_states = self._draw_initial() if self.initial_states == "torch" else self._next_initial
        old_lengths = self._lengths
        self._state, self._lengths, rewards, terminated, truncated, final_state = cartpole_step(
            self._state, self._lengths, actions, reset_states, self.max_episode_steps)
        done = terminated | truncated
        # The episode's return is its length: CartPole pays 1 per step.
        episode_length = torch.where(done, old_lengths + 1, torch.zeros_like(old_lengths))
        episode_return = torch.where(done, episode_length.double(), torch.full_like(episode_length, math.nan,
                                                                                    dtype=torch.float64))
        if self.initial_states == "gymnasium":
            ended = torch.nonzero(done).flatten().tolist()  # the one host round trip of this mode
            if ended:
                self._next_initial[ended] = self._host_initial(ended)
        info = {"final_obs": final_state.float(), "episode_return": episode_return, "episode_length": episode_length}
        return self._state.float(), rewards, terminated, truncated, info

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "TorchCartPole":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"TorchCartPole(num_envs={self.num_envs}, device='{self.device}', dtype={self.dtype}, "
                f"initial_states='{self.initial_states}')")

    # -- internals ------------------------------------------------------------------------------

    def _draw_initial(self) -> torch.Tensor:
        """[N, 4] initial states, uniform in [-0.05, 0.05), from the device's generator."""
        u = torch.rand((self.num_envs, 4), generator=self._generator, device=self.device, dtype=self.dtype)
        return u * (RESET_HIGH - RESET_LOW) + RESET_LOW

    def _host_initial(self, envs) -> torch.Tensor:
        """[len(envs), 4] initial states drawn by the envs' own NumPy generators, as Gymnasium's reset."""
        rows = np.stack([self._rngs[i].uniform(low=RESET_LOW, high=RESET_HIGH, size=(4,)) for i in envs])
        return torch.as_tensor(rows, dtype=self.dtype).to(self.device)

    def _validate(self, actions) -> torch.Tensor:
        """actions [N] as an int64 tensor on the device, or a ValueError that says what was wrong."""
        if isinstance(actions, torch.Tensor) and actions.device != self.device:
            raise ValueError(f"TorchCartPole on {self.device} got actions on {actions.device}; sample the actions "
                             f"on the environment's device (move the policy with .to('{self.device}')).")
        actions = torch.as_tensor(actions, device=self.device)
        if tuple(actions.shape) != (self.num_envs,):
            raise ValueError(f"TorchCartPole.step expects actions of shape ({self.num_envs},), one per environment; "
                             f"got shape {tuple(actions.shape)}.")
        if actions.is_floating_point() or actions.is_complex():
            raise ValueError(f"TorchCartPole actions must be integers 0 (push left) or 1 (push right), got dtype "
                             f"{actions.dtype}; sample them with argmax or Categorical, which give int64.")
        actions = actions.long()
        if self.check_actions:
            outside = (actions < 0) | (actions > 1)
            if outside.any():
                bad = int(torch.nonzero(outside)[0])
                raise ValueError(f"TorchCartPole actions must be 0 (push left) or 1 (push right); env {bad} got "
                                 f"{int(actions[bad])}.")
        return actions

    @staticmethod
    def _check_seed(seed, what: str) -> int | None:
        if seed is None:
            return None
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{what} must be a non-negative integer or None, got {seed!r}.")
        return int(seed)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this TorchCartPole is closed; create a new one.")


def make_on_device(env_id: str, num_envs: int, device: str | torch.device, **kwargs) -> TorchCartPole:
    """The on-device vector env for `env_id` (backend="torch" of rlcore.ppo): TorchCartPole for CartPole-v1.

    On CUDA the action check is off by default (it would synchronise every step); kwargs go to TorchCartPole."""
    if env_id != "CartPole-v1":
        raise ValueError(f"backend='torch' has an on-device implementation of CartPole-v1 only, not {env_id!r}; "
                         "use backend='auto' (NumPy) for other environments.")
    kwargs.setdefault("check_actions", torch.device(device).type == "cpu")
    return TorchCartPole(num_envs, device=device, **kwargs)
