"""Checks for chapter 14, large-batch PPO with the environment on the device.

- `cartpole_step`: the learner's torch CartPole step (vectorized Euler physics, termination, the time limit
  and SAME-STEP autoreset), checked (1) on hand cases, one per way an episode can go on or end; (2) in
  lockstep with Gymnasium's CartPole-v1: at every step the grader feeds the learner's function the Gymnasium
  envs' own float64 state and compares what it returns with what Gymnasium did (state to 1e-10, flags and
  rewards exactly, the next episode's start where an episode ended), over random and balancing actions with
  a 50-step time limit so that both terminations and truncations happen; (3) against
  rlcore.envs.torch_cartpole.cartpole_step on random batches near the thresholds, float64 and float32;
  (4) on the "meta" device, whose tensors hold no values: a step that reads a value back to the host (an
  `if done.any()`, `.item()`, a boolean-mask index) raises there, as it would stall a GPU once per step.
- `scaled_learning_rate`: the constant, square-root and linear rules for a batch larger than the tuned one.
- `train_large_batch_ppo`: the learner's PPO loop on the grader's on-device CartPole (TorchCartPole on the CPU,
  `NUM_ENVS` environments, actions passed as tensors), graded by `autograder.deeprl.curve_check`: one-sided
  non-inferiority of the last-100 mean return after `TOTAL_TIMESTEPS` steps against OUR rlcore reference runs
  with these settings (autograder/references/ch14_large_batch_ppo.json), with the margin of section 6.4 computed
  from their spread. Not against CleanRL's 490.04: with a batch twice CARTPOLE_FAST's and a learning rate scaled
  to it, about one rlcore run in six is still stuck below 475 after 300k steps (two of our twelve), so a rule
  against CleanRL's number would fail a correct loop five times in six (10 seeds; the reference file has the
  fraction). Ten seeds (VISIBLE_SEEDS), not seven, for the same reason.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from autograder import deeprl, stats
from autograder.protocol import Check, LearnerCodeError, describe
from rlcore.envs.fast.cartpole import THETA_THRESHOLD, X_THRESHOLD
from rlcore.envs.torch_cartpole import TorchCartPole, cartpole_step as reference_step

LESSON = "lesson 14 (course/14_large_batch_ppo.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch14_large_batch_ppo.json"

# Lesson section titles the diagnoses point at (the lesson has exactly these headings).
SECTIONS = {
    "flat": "8.1 Flat at the random baseline",
    "entropy": "8.2 Entropy collapsed",
    "kl": "8.3 KL exploded",
    "value": "8.4 Negative explained variance",
    "nan": "8.5 NaN losses",
    "speed": "8.6 Too slow",
}

# =============================================================================================
# The grading settings
# =============================================================================================

# rlcore.ppo.CARTPOLE_FAST's settings at twice its 32 environments: a 1,024-sample batch, one minibatch, 8 epochs,
# and the learning rate scaled by the square-root rule from 3e-3 to 4.2e-3 (benchmarks/batch_scaling.py: N = 64 is
# where the CPU time to 475 is lowest). Larger N was tried for this check and dropped: at 128 and 256
# environments (500k steps) one run in ten to twelve stayed below 475, as at 64, and each seed cost more CPU.
BASE_LR, BASE_BATCH = 3e-3, 32 * 16
NUM_ENVS = 64
TOTAL_TIMESTEPS = 300_000
SETTINGS = dict(num_steps=16, num_minibatches=1, update_epochs=8,
                learning_rate=BASE_LR * math.sqrt(NUM_ENVS * 16 / BASE_BATCH), anneal_lr=True, gamma=0.98,
                gae_lambda=0.8, clip_coef=0.2, clip_vloss=False, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
                norm_adv=True)
# Ten seeds, not the usual seven: about one correct run in six is still stuck below 475 at this budget, and with
# seven seeds the rule would fail a correct loop in 1.3% of 7-seed draws of our runs (98.7% pass); with ten, see
# the calibration in the reference file (99.95%).
VISIBLE_SEEDS = tuple(range(1, 11))
CARTPOLE_PUBLISHED = (490.04, 6.12)  # CleanRL ppo.py, 500k steps, 3 seeds, population SD: shown, not graded against
CARTPOLE_RANDOM = 22.7  # published_results.md section 2, 1000 episodes of a uniform policy


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our rlcore reference runs (autograder/references/ch14_large_batch_ppo.json)."""
    return json.loads(REFERENCE_FILE.read_text())


# =============================================================================================
# Helpers
# =============================================================================================

STEP_OUTPUTS = ("next_state", "next_lengths", "rewards", "terminated", "truncated", "final_state")


def _fmt(values, digits: int = 6) -> str:
    flat = np.asarray(values, dtype=float).reshape(-1)
    if flat.size > 6:
        return "[" + ", ".join(f"{v:.{digits}g}" for v in flat[:4]) + f", ... ({flat.size} values)]"
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat) + "]"


def _outputs(check: Check, out, what: str, n: int, state: torch.Tensor) -> dict[str, torch.Tensor]:
    """The learner's 6 outputs as named tensors, with shape, dtype and device checked (clear messages)."""
    if out is None:
        raise LearnerCodeError(f"{what} returned None. Did you forget the `return` statement?")
    if not isinstance(out, (tuple, list)) or len(out) != 6:
        raise LearnerCodeError(f"{what} returned {describe(out)}; expected a tuple of 6 tensors "
                               f"({', '.join(STEP_OUTPUTS)}).")
    kinds = {"next_state": ((n, 4), state.dtype), "next_lengths": ((n,), torch.int64),
             "rewards": ((n,), torch.float32), "terminated": ((n,), torch.bool), "truncated": ((n,), torch.bool),
             "final_state": ((n, 4), state.dtype)}
    named = {}
    for name, value in zip(STEP_OUTPUTS, out):
        shape, dtype = kinds[name]
        if not isinstance(value, torch.Tensor):
            raise LearnerCodeError(f"{what}: {name} is {describe(value)} ({type(value).__name__}); return torch "
                                   "tensors computed on the device of the inputs (no NumPy, no Python lists).")
        if tuple(value.shape) != shape:
            raise LearnerCodeError(f"{what}: {name} has shape {tuple(value.shape)}; expected {shape}.")
        if value.dtype != dtype:
            raise LearnerCodeError(f"{what}: {name} has dtype {value.dtype}; expected {dtype}"
                                   + (" (the dtype of `state`: keep the physics in the state's precision)"
                                      if name in ("next_state", "final_state") else "") + ".")
        if value.device != state.device:
            raise LearnerCodeError(f"{what}: {name} is on {value.device}, the inputs on {state.device}; create "
                                   "new tensors with device=state.device so that nothing leaves the device.")
        if value.is_floating_point() and value.device.type != "meta" and not torch.isfinite(value).all():
            raise LearnerCodeError(f"{what}: {name} holds NaN or infinite values.")
        named[name] = value
    return named


def _step_mistakes(state, lengths, actions, reset_states, max_steps) -> dict[str, dict]:
    """What common mistakes would return, for naming them in messages."""
    want = dict(zip(STEP_OUTPUTS, reference_step(state, lengths, actions, reset_states, max_steps)))
    x, x_dot, theta, theta_dot = state.unbind(1)
    force = (actions.to(state.dtype) * 2 - 1) * 10.0
    cos, sin = theta.cos(), theta.sin()
    temp = (force + 0.05 * theta_dot.square() * sin) / 1.1
    thetaacc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos.square() / 1.1))
    xacc = temp - 0.05 * thetaacc * cos / 1.1
    semi_x_dot, semi_theta_dot = x_dot + 0.02 * xacc, theta_dot + 0.02 * thetaacc
    semi = torch.stack([x + 0.02 * semi_x_dot, semi_x_dot, theta + 0.02 * semi_theta_dot, semi_theta_dot], 1)
    fs = want["final_state"]
    degrees = (fs[:, 0].abs() > X_THRESHOLD) | (fs[:, 2].abs() > 12.0)
    done = want["terminated"] | want["truncated"]
    return {
        "semi-implicit Euler: x and theta moved with the NEW velocities (update the positions from the old ones)":
            {"final_state": semi},
        "the pole angle compared with 12 (degrees) instead of 12 degrees in radians (0.2095)":
            {"terminated": degrees},
        "every environment reset, not only those whose episode ended": {"next_state": reset_states},
        "truncation reported as termination (the time limit is not a terminal state)":
            {"terminated": done, "truncated": torch.zeros_like(done)},
        "final_state taken after the reset (it must be where the episode ended)":
            {"final_state": torch.where(done.unsqueeze(1), reset_states, fs)},
        "the step counter not reset to 0 when an episode ended": {"next_lengths": lengths + 1},
        "truncation one step late (lengths + 1 > max_episode_steps)": {"truncated": lengths + 1 > max_steps},
    }


def _compare(check: Check, got: dict, want: dict, name: str, what: str, mistakes: dict | None = None,
             atol: float = 1e-10) -> None:
    """Every output equal (flags, lengths, rewards) or within atol (states); a message naming the first mismatch.

    Rows whose reference final state lies within 10 * atol of a termination threshold may differ in the
    flags (and so in everything after): there, a different but valid order of float operations decides."""
    fs = want["final_state"].double()
    margin = 10 * atol
    ambiguous = ((fs[:, 0].abs() - X_THRESHOLD).abs() < margin) | ((fs[:, 2].abs() - THETA_THRESHOLD).abs() < margin)
    for key in ("final_state", "terminated", "truncated", "next_state", "next_lengths", "rewards"):  # causes first
        g, w = got[key], want[key]
        if g.is_floating_point():
            bad = ~torch.isclose(g, w.to(g.dtype), rtol=0, atol=atol)
            if g.dim() == 2:
                bad = bad.any(1)
        else:
            bad = g != w
        bad = bad & ~ambiguous
        if bad.any():
            i = int(torch.nonzero(bad)[0])
            named = ""
            same = lambda a, b: torch.allclose(a[i].double(), b[i].double(), rtol=0, atol=atol)  # noqa: E731
            for mistake, outputs in (mistakes or {}).items():
                # The mistake explains the mismatch if it differs from the answer here and agrees everywhere it says.
                if key in outputs and not same(w, outputs[key]) and all(same(got[k], v) for k, v in outputs.items()):
                    named = f" That is what {mistake} gives."
                    break
            check.require(False, name,
                          f"{what}: {key}[{i}] is {_fmt(g[i].cpu())}, expected {_fmt(w[i].cpu())}." + named)
    check.require(True, name)


# =============================================================================================
# cartpole_step(state, lengths, actions, reset_states, max_episode_steps)
# =============================================================================================

# (state, length, action, what the case shows), with max_episode_steps = 500.
STEP_HAND_CASES = [
    ([0.01, 0.02, -0.03, 0.04], 3, 1, "an episode that goes on (push right)"),
    ([0.01, 0.02, -0.03, 0.04], 3, 0, "the same state pushed left"),
    ([2.39, 1.0, 0.0, 0.0], 10, 1, "the cart leaves the track (x > 2.4): terminated"),
    ([0.0, 0.0, 0.205, 1.0], 10, 1, "the pole falls past 12 degrees (0.2095 rad): terminated"),
    ([0.0, 0.0, 0.0, 0.0], 499, 0, "the 500th step: truncated, not terminated"),
    ([0.0, 0.0, 0.205, 1.0], 499, 1, "the pole falls at the 500th step: both flags"),
]


def _hand_batch(dtype=torch.float64):
    state = torch.tensor([c[0] for c in STEP_HAND_CASES], dtype=dtype)
    lengths = torch.tensor([c[1] for c in STEP_HAND_CASES], dtype=torch.int64)
    actions = torch.tensor([c[2] for c in STEP_HAND_CASES], dtype=torch.int64)
    reset_states = torch.full((len(STEP_HAND_CASES), 4), 0.03, dtype=dtype)
    return state, lengths, actions, reset_states


def _lockstep_with_gymnasium(check: Check, fn, budget_s: float, n: int = 12, steps: int = 250,
                             max_steps: int = 50) -> dict:
    """Feed the learner's step Gymnasium's own states, step by step, and compare with what Gymnasium did."""
    import gymnasium as gym

    envs = [gym.make("CartPole-v1", max_episode_steps=max_steps) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=1400 + i)
    rng = np.random.default_rng(14)
    balancing = np.arange(n) % 2 == 0  # half balance (and reach the time limit), half act at random
    lengths = torch.zeros(n, dtype=torch.int64)
    counts = {"terminated": 0, "truncated": 0}
    for step in range(steps):
        state = torch.tensor(np.stack([env.unwrapped.state for env in envs]), dtype=torch.float64)  # [n, 4]
        theta, theta_dot = state[:, 2].numpy(), state[:, 3].numpy()
        policy = (theta + 0.5 * theta_dot > 0).astype(np.int64)
        actions = np.where(balancing & (rng.random(n) > 0.05), policy, rng.integers(0, 2, n))
        # Rows of envs that go on get a random start state: a step that resets them shows it.
        reset_states = rng.uniform(-0.05, 0.05, size=(n, 4))
        want = {k: [] for k in STEP_OUTPUTS}
        for i, env in enumerate(envs):
            _, reward, term, trunc, _ = env.step(int(actions[i]))
            final = np.array(env.unwrapped.state, dtype=np.float64)
            if term or trunc:
                env.reset()  # the env's own stream continues, as in a vector env
                reset_states[i] = env.unwrapped.state
            want["final_state"].append(final)
            want["next_state"].append(np.array(env.unwrapped.state, dtype=np.float64))
            want["rewards"].append(reward)
            want["terminated"].append(term)
            want["truncated"].append(trunc)
            want["next_lengths"].append(0 if (term or trunc) else int(lengths[i]) + 1)
        want_t = {"next_state": torch.tensor(np.stack(want["next_state"])),
                  "final_state": torch.tensor(np.stack(want["final_state"])),
                  "rewards": torch.tensor(want["rewards"], dtype=torch.float32),
                  "terminated": torch.tensor(want["terminated"]), "truncated": torch.tensor(want["truncated"]),
                  "next_lengths": torch.tensor(want["next_lengths"], dtype=torch.int64)}
        reset_t = torch.tensor(reset_states)
        actions_t = torch.as_tensor(actions)
        what = f"cartpole_step(...) at lockstep step {step} with Gymnasium ({n} envs, max_episode_steps={max_steps})"
        got = _outputs(check, check.call(fn, state.clone(), lengths.clone(), actions_t.clone(), reset_t.clone(),
                                         max_steps, budget_s=budget_s, what=what), what, n, state)
        mistakes = _step_mistakes(state, lengths, actions_t, reset_t, max_steps)
        _compare(check, got, want_t, "lockstep with Gymnasium's CartPole-v1", what, mistakes)
        counts["terminated"] += int(want_t["terminated"].sum())
        counts["truncated"] += int(want_t["truncated"].sum())
        lengths = want_t["next_lengths"]
    return counts


def cartpole_step(fn, *, budget_s: float = 5.0) -> None:
    """Check `cartpole_step(state, lengths, actions, reset_states, max_episode_steps)` -> 6 tensors."""
    with Check("ch14.cartpole_step", "the torch CartPole step: Euler physics, flags and SAME-STEP autoreset",
               hint=f"Compute the physics for every env from the old state (Euler), terminate where |x| > 2.4 or "
                    f"|theta| > 12 degrees in radians, truncate where the new length reaches max_episode_steps, "
                    f"then torch.where(done[:, None], reset_states, final_state) ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "state", "lengths", "actions", "reset_states", "max_episode_steps")

        # 1. Hand cases, one per way an episode can go on or end.
        state, lengths, actions, reset_states = _hand_batch()
        want = dict(zip(STEP_OUTPUTS, reference_step(state, lengths, actions, reset_states, 500)))
        for i, (_, _, _, name) in enumerate(STEP_HAND_CASES):
            one = [state[i:i + 1], lengths[i:i + 1], actions[i:i + 1], reset_states[i:i + 1]]
            what = (f"cartpole_step(state={_fmt(one[0][0])}, lengths=[{int(one[1])}], actions=[{int(one[2])}], "
                    f"reset_states=[[0.03, 0.03, 0.03, 0.03]], max_episode_steps=500)")
            got = _outputs(check, check.call(fn, *[x.clone() for x in one], 500, budget_s=budget_s, what=what),
                           what, 1, one[0])
            _compare(check, got, {k: v[i:i + 1] for k, v in want.items()}, name, what, _step_mistakes(*one, 500))

        # 2. Lockstep with Gymnasium.
        counts = _lockstep_with_gymnasium(check, fn, budget_s)

        # 3. Random batches near the thresholds, against rlcore, in float64 and float32.
        g = torch.Generator().manual_seed(1414)
        scale = torch.tensor([2.45, 2.0, 0.215, 2.0], dtype=torch.float64)
        for k, (n, dtype) in enumerate([(64, torch.float64), (1000, torch.float64), (1000, torch.float32)]):
            state = ((torch.rand(n, 4, generator=g, dtype=torch.float64) * 2 - 1) * scale).to(dtype)
            lengths = torch.randint(0, 500, (n,), generator=g)
            lengths[: n // 10] = 499  # a tenth at the time limit
            actions = torch.randint(0, 2, (n,), generator=g)
            reset_states = ((torch.rand(n, 4, generator=g, dtype=torch.float64) - 0.5) * 0.1).to(dtype)
            what = f"cartpole_step on a random batch of {n} envs ({dtype})"
            got = _outputs(check, check.call(fn, state.clone(), lengths.clone(), actions.clone(), reset_states.clone(),
                                             500, budget_s=budget_s, what=what), what, n, state)
            want = dict(zip(STEP_OUTPUTS, reference_step(state, lengths, actions, reset_states, 500)))
            _compare(check, got, want, f"random batch {k + 1} ({dtype})", what,
                     _step_mistakes(state, lengths, actions, reset_states, 500),
                     atol=1e-10 if dtype == torch.float64 else 2e-5)

        # 4. No host round trip: the meta device has shapes and dtypes but no values to read.
        meta = [t.to("meta") for t in _hand_batch(torch.float32)]
        what = "cartpole_step on tensors of the 'meta' device (shapes without values)"
        try:
            out = check.call(fn, *meta, 500, budget_s=budget_s, what=what)
        except LearnerCodeError as exc:  # any error here means a value was needed on the host
            check.require(False, "no host round trip", (
                f"{str(exc).splitlines()[0][:300]}. Your step needs a tensor's "
                "value on the host: an `if done.any():`, a `.item()`, `.tolist()`, `.numpy()` or a boolean-mask "
                "index such as state[done] = ... (its size depends on the data). On a GPU each is a "
                "synchronisation per step, which is what putting the env on the device should avoid; use "
                "torch.where(done[:, None], reset_states, final_state) and arithmetic on whole tensors."))
        _outputs(check, out, what, len(STEP_HAND_CASES), meta[0])
        check.require(True, "no host round trip")
        check.note(f"hand cases, {counts['terminated']} terminations and {counts['truncated']} truncations in lockstep "
                   "with Gymnasium, 3 random batches against rlcore, and no host round trip")


# =============================================================================================
# scaled_learning_rate(base_lr, base_batch, batch_size, rule)
# =============================================================================================


def reference_scaled_lr(base_lr: float, base_batch: int, batch_size: int, rule: str) -> float:
    """lr for batch_size when base_lr was tuned at base_batch: constant, sqrt (Adam) or linear (SGD)."""
    k = batch_size / base_batch
    return {"constant": base_lr, "sqrt": base_lr * math.sqrt(k), "linear": base_lr * k}[rule]


LR_CASES = [
    (3e-3, 512, 512, "sqrt"), (3e-3, 512, 2048, "sqrt"), (3e-3, 512, 2048, "linear"), (3e-3, 512, 2048, "constant"),
    (2.5e-4, 512, 128, "sqrt"), (2.5e-4, 512, 128, "linear"), (1e-3, 256, 65_536, "sqrt"), (1e-3, 1000, 4000, "linear"),
]


def scaled_learning_rate(fn, *, budget_s: float = 5.0) -> None:
    """Check `scaled_learning_rate(base_lr, base_batch, batch_size, rule) -> float`."""
    with Check("ch14.scaled_learning_rate", "learning-rate scaling rules for a larger (or smaller) batch",
               hint=f"With k = batch_size / base_batch: 'constant' keeps base_lr, 'sqrt' multiplies it by sqrt(k), "
                    f"'linear' by k ({LESSON}, section 5).") as check:
        fn = check.signature(fn, "base_lr", "base_batch", "batch_size", "rule")
        for base_lr, base_batch, batch, rule in LR_CASES:
            what = f"scaled_learning_rate({base_lr:g}, {base_batch}, {batch}, {rule!r})"
            got = check.call(fn, base_lr, base_batch, batch, rule, budget_s=budget_s, what=what)
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, bool) or not isinstance(got, (int, float, np.floating, np.integer)):
                raise LearnerCodeError(f"{what} returned {describe(got)}; expected a number (a Python float).")
            want = reference_scaled_lr(base_lr, base_batch, batch, rule)
            k = batch / base_batch
            mistakes = {"the inverse ratio base_batch / batch_size": {"sqrt": base_lr / math.sqrt(k),
                                                                      "linear": base_lr / k}.get(rule),
                        "the linear rule": base_lr * k, "the square-root rule": base_lr * math.sqrt(k),
                        "the unscaled base_lr": base_lr}
            named = [m for m, v in mistakes.items() if v is not None and math.isclose(got, v, rel_tol=1e-9)
                     and not math.isclose(v, want, rel_tol=1e-9)]
            check.require(math.isclose(float(got), want, rel_tol=1e-9), what,
                          f"{what} returned {float(got):.6g}; expected {want:.6g}."
                          + (f" That is {named[0]}." if named else ""))
        check.note(f"{len(LR_CASES)} cases of the three rules, batches smaller and larger than the tuned one")


# =============================================================================================
# train_large_batch_ppo(envs, seed, total_timesteps, log): the learning curve on the on-device CartPole
# =============================================================================================


class GradedTorchCartPole(deeprl.GradedVectorEnv):
    """The grader's on-device CartPole: rlcore's TorchCartPole on the CPU (float32, initial states from the
    device's generator), episodes recorded by the grader, and actions accepted only as tensors: converting
    them to NumPy or a list would be a copy to the host at every step on a GPU."""

    def __init__(self, env_id: str, num_envs: int, *, seed: int, total_timesteps: int, backend: str = "torch"):
        if env_id != "CartPole-v1":
            raise ValueError(f"the on-device grader has CartPole-v1 only, not {env_id!r}.")
        self._envs = TorchCartPole(num_envs, device="cpu", seed=seed)
        self.num_envs, self.total_timesteps = num_envs, total_timesteps
        self.global_step, self.episodes = 0, []
        self._actions, self._resets = [], []

    def _check_actions(self, actions) -> None:
        if not isinstance(actions, torch.Tensor):
            raise TypeError(f"envs.step got actions as {type(actions).__name__}; pass the action tensor your policy "
                            "sampled, as it is. This environment lives on the policy's device: a conversion to "
                            "NumPy or a list is the host round trip the chapter removes.")

    def _copy(self, actions):
        return actions.detach().clone()  # on the device: the host copy happens once, when the run is recorded

    def _count_episodes(self, terminated, truncated, info) -> None:
        # The grader's bookkeeping reads the flags on the host; the learner's loop never has to.
        for i in torch.nonzero(terminated | truncated).flatten().tolist():
            self.episodes.append((self.global_step, float(info["episode_return"][i]), int(info["episode_length"][i])))

    def _stacked(self) -> np.ndarray:
        return torch.stack(self._actions).cpu().numpy()  # one copy to the host, for the whole run

    def _as_actions(self, row):
        return torch.as_tensor(row)


def _delta(final: dict) -> float:
    """Section 6.4's margin from our reference runs: max(2 SD, 5% of the gain over a random policy)."""
    return stats.noninferiority_delta(final["mean"], final["sd"], CARTPOLE_RANDOM)


def _task() -> deeprl.CurveTask:
    reference = load_reference()["cartpole"]
    final = reference["final"]
    return deeprl.CurveTask(
        check_id="ch14.train_large_batch_ppo",
        title=f"your large-batch PPO learns CartPole-v1 on the device in {TOTAL_TIMESTEPS:,} steps",
        env_id="CartPole-v1", num_envs=NUM_ENVS, total_timesteps=TOTAL_TIMESTEPS, seeds=VISIBLE_SEEDS,
        published_mean=final["mean"], delta=_delta(final),
        published_label=f"rlcore with these settings, {final['n']} seeds, mean {final['mean']:.1f}", best_return=500.0,
        random_return=CARTPOLE_RANDOM, reference=reference, lesson=LESSON, sections=SECTIONS,
        backend="torch", env_class=GradedTorchCartPole,
        hint=(f"Keep every tensor on envs.device: pass the sampled action tensor to envs.step, store observations, "
              f"rewards and flags as the tensors the env returns, bootstrap truncated episodes from "
              f"V(info['final_obs']). With {NUM_ENVS} x {SETTINGS['num_steps']} = {NUM_ENVS * SETTINGS['num_steps']:,} "
              f"samples per update and the square-root learning rate {SETTINGS['learning_rate']:.2g}, log "
              f"losses/entropy, losses/approx_kl and losses/explained_variance once per update ({LESSON}, section 6)."))


def train_large_batch_ppo(fn) -> None:
    """Run the learner's `train_large_batch_ppo(envs, seed, total_timesteps, log)` over the grading seeds."""
    deeprl.curve_check(_task(), fn, n_actions=2)
