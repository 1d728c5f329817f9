"""Learning-curve checks for the deep-RL chapters (07-11): the learner's training loop, over seeds.

A curve check calls the learner's training function once per grading seed,

    train(envs, seed, total_timesteps, log)

with a vector environment the grader built and records (`GradedVectorEnv`, the rlcore vector-env
protocol with SAME-STEP autoreset) and a `log(global_step, {name: value})` callable that keeps the
learner's metrics for the diagnosis (names from rlcore.metrics.VOCABULARY). What is graded is the
mean return of the last 100 training episodes as the grader's environment counted them (CleanRL's
metric), never a number the learner's code reports.

The rule is one-sided non-inferiority (`autograder.stats.non_inferiority`) against the published
score of section 2 of published_results.md, with the margin of section 6.4. Two exact shortcuts keep a
failing check short: after each seed the check asks whether passing is still possible if every
remaining seed scored the best return an episode can have; if not, the verdict is already decided and
the remaining seeds are not run. And after the first seed it projects the time all seeds need; a
loop that cannot finish within the budget is told so at once, with what to speed up.

When the verdict is a failure, `diagnose` reads the logged metrics and names likely causes (entropy
collapsed early, KL exploded, explained variance negative, clip fraction near zero, Q-values diverging,
epsilon never decaying, returns flat at the random baseline), each pointing at a lesson section.

Chapters describe a check with a `CurveTask`; their reference generators summarise rlcore runs with
`reference_entry`, which stores the same last-100-mean curve the feedback plot draws.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autograder import stats
from autograder.feedback import Panel, curve_figure
from autograder.protocol import CPU_SCALE_ENV, Check, grading_seeds

WINDOW = 100
"""Episodes in the graded mean (CleanRL's last-100 training-episode mean)."""
WALL_FACTOR = 4.0
"""The wall-clock backstop of a curve check, as a multiple of its CPU budget."""


# --------------------------------------------------------------------------------------------
# What a check needs to know
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveTask:
    """One learning-curve check.

    check_id, title, hint: as for `Check`.
    env_id, num_envs, total_timesteps: the environment the grader builds for each seed, and the
        budget of environment steps (over all N environments) the learner's loop must use.
    seeds: the visible grading seeds (at least 7: a bug that collapses half the seeds escapes a
        5-seed rule about 3% of the time; see autograder/calibration/report.md).
    published_mean, delta: the non-inferiority rule; pass when the seeds' 95% lower bound is at least
        published_mean - delta. published_label names the source for the plot and the message.
    best_return, random_return: the highest return one episode can have (the futility shortcut), and a
        uniformly random policy's mean return (the "flat at the random baseline" diagnosis).
    reference: our own runs of rlcore with the same settings, as made by `reference_entry`.
    lesson: the lesson the diagnoses point to; sections: diagnosis key -> section title in it.
    budget_s: CPU seconds of the grading process for all seeds together (single-threaded torch, so on an
        idle machine also their wall time). CPU time, so that waiting for a busy machine (a class graded in
        parallel) cannot fail a correct loop; a wall-clock alarm at WALL_FACTOR times the budget is the backstop
        against a loop that sleeps or waits. CPU time still grows when two processes share a core's caches
        (measured: up to about 1.5 times, two gradings on 2 virtual cores), so the environment variable
        AUTOGRADER_CPU_SCALE (protocol.CPU_SCALE_ENV, default 1) multiplies every budget: set it on a slower
        or shared grading machine.
    env_class: the grader's recording environment, built as env_class(env_id, num_envs, seed=...,
        total_timesteps=..., backend=...); None means GradedVectorEnv (a chapter with its own environment,
        such as the on-device CartPole of chapter 14, passes a subclass).
    """

    check_id: str
    title: str
    env_id: str
    num_envs: int
    total_timesteps: int
    seeds: tuple[int, ...]
    published_mean: float
    delta: float
    published_label: str
    best_return: float
    random_return: float
    reference: dict
    lesson: str
    sections: dict[str, str] = field(default_factory=dict)
    hint: str = ""
    budget_s: float = 170.0
    min_steps_fraction: float = 0.9
    backend: str = "auto"
    env_class: type | None = None


# --------------------------------------------------------------------------------------------
# The grader's environment and metrics log
# --------------------------------------------------------------------------------------------


class BudgetExceeded(RuntimeError):
    """The learner's loop stepped the environment past total_timesteps."""


class GradedVectorEnv:
    """An rlcore vector env whose finished episodes the grader records itself.

    Same interface as `rlcore.envs.make_vector(env_id, num_envs, seed=seed)` (reset, step, close,
    num_envs and the spaces). Each `step` counts num_envs environment steps; a step that would start
    at or past `total_timesteps` raises BudgetExceeded, so a loop cannot buy extra samples.
    episodes: [(global_step, return, length)] in the order they ended.
    """

    def __init__(self, env_id: str, num_envs: int, *, seed: int, total_timesteps: int, backend: str = "auto"):
        from rlcore.envs import make_vector

        self._envs = make_vector(env_id, num_envs, backend=backend, seed=seed)
        self.num_envs = num_envs
        self.total_timesteps = total_timesteps
        self.global_step = 0
        self.episodes: list[tuple[int, float, int]] = []
        self._actions: list = []  # every action batch stepped, for the grader's replay (`record`, `replay`)
        self._resets: list[list] = []  # [number of steps before it, seed]

    def reset(self, *, seed: int | None = None, **kwargs):
        out = self._envs.reset(seed=seed, **kwargs)
        self._resets.append([len(self._actions), None if seed is None else int(seed), kwargs])
        return out

    def step(self, actions):
        self._check_actions(actions)
        if self.global_step >= self.total_timesteps:
            raise BudgetExceeded(
                f"the loop stepped the environments past total_timesteps = {self.total_timesteps:,} "
                f"(each envs.step counts num_envs = {self.num_envs} steps). Stop collecting once "
                "global_step reaches total_timesteps.")
        obs, rewards, terminated, truncated, info = self._envs.step(actions)
        self._actions.append(self._copy(actions))
        self.global_step += self.num_envs
        self._count_episodes(terminated, truncated, info)
        return obs, rewards, terminated, truncated, info

    def _check_actions(self, actions) -> None:
        """Refuse actions of the wrong kind before stepping (the on-device env wants tensors)."""

    def _copy(self, actions):
        return np.array(actions, copy=True)

    def _count_episodes(self, terminated, truncated, info) -> None:
        done = np.logical_or(terminated, truncated)
        if done.any():
            returns, lengths = info["episode_return"], info["episode_length"]
            for i in np.flatnonzero(done):
                self.episodes.append((self.global_step, float(returns[i]), int(lengths[i])))

    # -- the grader's replay (autograder/replay.py) -------------------------------------------------------

    def record(self) -> dict:
        """What the learner did to these environments, as plain data: resets and actions [steps, N]."""
        actions = self._stacked() if self._actions else np.zeros((0, self.num_envs))
        return {"resets": self._resets, "actions": actions}

    def _stacked(self) -> np.ndarray:
        """The kept action batches as one host array [steps, N]."""
        return np.stack([np.asarray(a) for a in self._actions])

    def replay(self, data: dict) -> None:
        """Do `record()`'s resets and steps again on these (the grader's) environments: the episodes they
        count are then the grader's own simulation of the learner's actions."""
        resets, actions = data["resets"], np.asarray(data["actions"])
        at = 0
        for k, row in enumerate(actions):
            while at < len(resets) and resets[at][0] == k:
                self.reset(seed=resets[at][1], **resets[at][2])
                at += 1
            self.step(self._as_actions(row))
        for later in resets[at:]:
            self.reset(seed=later[1], **later[2])

    def _as_actions(self, row: np.ndarray):
        return row

    def close(self) -> None:
        self._envs.close()

    def __getattr__(self, name: str):  # spaces
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._envs, name)

    def __enter__(self) -> "GradedVectorEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GradedVectorEnv({self._envs!r})"


class MetricLog:
    """The `log` a training function is given: `log(global_step, {"losses/entropy": 0.61, ...})`.

    Also accepts keywords for names without a slash: `log(step, epsilon=0.3)`. Values may be Python
    numbers, NumPy scalars or one-element tensors. history: {name: [(global_step, value), ...]}.
    """

    def __init__(self):
        self.history: dict[str, list[tuple[int, float]]] = {}

    def __call__(self, global_step, metrics: dict | None = None, **more) -> None:
        items = dict(metrics or {}, **more)
        for name, value in items.items():
            try:
                number = float(value.item() if hasattr(value, "item") else value)
            except (TypeError, ValueError):
                raise TypeError(f"log: the value of {name!r} is {type(value).__name__}; log numbers "
                                "(a float, or tensor.item()).") from None
            self.history.setdefault(str(name), []).append((int(global_step), number))

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps [K], values [K]) of one metric; empty arrays when it was never logged."""
        rows = self.history.get(name, [])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        a = np.array(rows, dtype=np.float64)
        return a[:, 0].astype(np.int64), a[:, 1]


# --------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------


def last_mean_curve(steps, returns, grid, window: int = WINDOW) -> np.ndarray:
    """The mean return of the last `window` episodes ended by each grid step.

    steps, returns [E]: when each episode ended and its return, in order; grid [G] global steps.
    Returns [G]; NaN before the first episode ends (fewer than `window` episodes: the mean of those).
    """
    steps = np.asarray(steps, dtype=np.int64)
    returns = np.asarray(returns, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.int64)
    csum = np.concatenate([[0.0], np.cumsum(returns)])
    count = np.searchsorted(steps, grid, side="right")  # episodes ended by each grid step [G]
    first = np.maximum(count - window, 0)
    n = count - first
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (csum[count] - csum[first]) / np.maximum(n, 1), np.nan)


def final_score(steps, returns, window: int = WINDOW) -> float:
    """The graded score: the mean return of the last `window` episodes (NaN when none ended)."""
    returns = np.asarray(returns, dtype=np.float64)
    return float(returns[-window:].mean()) if returns.size else float("nan")


def reference_entry(runs: list[tuple[np.ndarray, np.ndarray]], *, total_timesteps: int, points: int = 60,
                    extra: dict | None = None) -> dict:
    """Summarise reference runs for a JSON reference file.

    runs: one (episode_steps [E], episode_returns [E]) per seed. Returns {"final": {mean, sd, n, values},
    "curve": {x [points], mean, low, high}} where low/high are the per-step minimum and maximum over the
    seeds (the band a correct implementation's curve stayed in), plus `extra`.
    """
    grid = np.linspace(total_timesteps / points, total_timesteps, points).astype(np.int64)
    curves = np.array([last_mean_curve(s, r, grid) for s, r in runs])  # [S, points]
    finals = np.array([final_score(s, r) for s, r in runs])
    entry = {
        "final": {"mean": round(float(finals.mean()), 3), "sd": round(float(finals.std(ddof=1)), 3),
                  "n": len(runs), "values": [round(float(v), 2) for v in finals]},
        "curve": {"x": grid.tolist(), "mean": _rounded(np.nanmean(curves, 0)), "low": _rounded(np.nanmin(curves, 0)),
                  "high": _rounded(np.nanmax(curves, 0))},
    }
    entry.update(extra or {})
    return entry


def calibration(finals, *, ref_mean: float, delta: float, n_seeds: int = 7, draws: int = 20_000,
                seed: int = 0) -> float:
    """How often a correct implementation passes: the fraction of `draws` resamples of n_seeds of our
    reference finals (with replacement) whose one-sided 95% t lower bound reaches ref_mean - delta, the
    rule of `stats.non_inferiority`, vectorized over the draws. finals [S]."""
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(seed)
    sample = rng.choice(np.asarray(finals, dtype=np.float64), size=(draws, n_seeds), replace=True)  # [draws, n]
    lower = sample.mean(1) - scipy_stats.t.ppf(0.95, n_seeds - 1) * sample.std(1, ddof=1) / np.sqrt(n_seeds)
    return float(np.mean(lower >= ref_mean - delta))


def _rounded(a: np.ndarray) -> list:
    return [None if not np.isfinite(v) else round(float(v), 2) for v in a]


# --------------------------------------------------------------------------------------------
# Diagnosis
# --------------------------------------------------------------------------------------------


def _late(values: np.ndarray) -> float:
    """Mean of the last half of a metric's values (NaN when empty)."""
    return float(np.mean(values[len(values) // 2:])) if values.size else float("nan")


def diagnose(task: CurveTask, log: MetricLog, finals: list[float], n_actions: int | None = None) -> list[str]:
    """Likely causes of a failed curve, read from the metrics the learner logged.

    Each entry names the symptom with its numbers and the lesson section to reread. Rules that need a
    metric the learner did not log are skipped, and a final line says which metrics would have helped.
    """
    out: list[str] = []

    def point(key: str) -> str:
        section = task.sections.get(key)
        return f" See {task.lesson}, section '{section}'." if section else f" See {task.lesson}."

    finite = [f for f in finals if np.isfinite(f)]
    if finite:
        span = task.published_mean - task.random_return
        if abs(np.median(finite) - task.random_return) <= 0.1 * abs(span):
            out.append(f"returns stayed flat at the random baseline (median last-100 mean {np.median(finite):.1f}; "
                       f"a random policy scores {task.random_return:g}): nothing was learned, so look first "
                       "for a loss whose gradient is zero or never reaches the network (a detached "
                       "log-probability, an optimizer built on other parameters, zero.grad after backward)."
                       + point("flat"))

    _, entropy = log.series("losses/entropy")
    if entropy.size >= 4:
        early = entropy[: max(1, entropy.size // 4)]
        floor = 0.1 * math.log(n_actions) if n_actions and n_actions > 1 else 0.05
        if early.min() < floor and np.median(finite or [task.random_return]) < task.published_mean - task.delta:
            out.append(f"policy entropy collapsed early (it fell to {early.min():.3f} nats in the first quarter "
                       "of training): the policy became deterministic before it found good actions. Check the "
                       "sign of the entropy bonus and the scale of the advantages." + point("entropy"))
    _, kl = log.series("losses/approx_kl")
    if kl.size and np.nanmax(kl) > 0.5:
        out.append(f"the KL between successive policies exploded (approx_kl reached {np.nanmax(kl):.2f}; healthy "
                   "updates stay below about 0.05): the learning rate is too high, advantages are not "
                   "normalized, or the clipped objective is not limiting the step." + point("kl"))
    _, clipfrac = log.series("losses/clipfrac")
    if clipfrac.size >= 4 and np.nanmean(clipfrac) < 1e-3:
        out.append(f"the clip fraction stayed near zero (mean {np.nanmean(clipfrac):.1e}): the ratio never left "
                   "[1 - clip, 1 + clip], which happens when it is computed against the new log-probability on "
                   "both sides (always 1) or when the policy is not being updated." + point("clip"))
    _, ev = log.series("losses/explained_variance")
    if ev.size >= 4 and _late(ev) < 0:
        out.append(f"explained variance was negative over the second half of training (mean {_late(ev):.2f}): "
                   "the critic predicts returns worse than a constant. Check the value targets (returns = "
                   "advantages + values), the bootstrap on truncation, and the value-loss sign." + point("value"))
    _, q = log.series("losses/q_values")
    if q.size and np.isfinite(task.best_return) and np.nanmax(np.abs(q)) > 2 * max(abs(task.best_return), 1.0):
        out.append(f"Q-values diverged (|Q| reached {np.nanmax(np.abs(q)):.3g}, more than any return this "
                   "environment can give): the TD target is not detached, the target network is never "
                   "synchronised, or terminated states are bootstrapped." + point("q"))
    _, eps = log.series("charts/epsilon")
    if eps.size >= 2 and eps[-1] >= 0.9 * eps[0] and eps[0] > 0.2:
        out.append(f"epsilon never decayed (from {eps[0]:.2f} to {eps[-1]:.2f}): the agent explored at random "
                   "for the whole run. Check the schedule's arguments (the step, not the episode)."
                   + point("epsilon"))
    losses = [v for name, rows in log.history.items() if name.startswith("losses/") for _, v in rows]
    if losses and not np.all(np.isfinite(losses)):
        out.append("a logged loss became NaN or infinite: look for log(0), a division by a zero standard "
                   "deviation, or an exploding learning rate." + point("nan"))
    if not log.history:
        out.append("your loop logged no metrics, so no diagnosis is possible: log at least losses/entropy, "
                   "losses/value_loss and the algorithm's own diagnostics (approx_kl, clipfrac, q_values, "
                   "epsilon) with log(global_step, {...}).")
    return out


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


@dataclass
class SeedRun:
    seed: int
    score: float
    steps: np.ndarray
    returns: np.ndarray
    global_step: int
    seconds: float
    log: MetricLog


def _best_case(scores: list[float], task: CurveTask, n_total: int) -> stats.Verdict:
    """The verdict if every seed not yet run scored the best possible return."""
    padded = list(scores) + [task.best_return] * (n_total - len(scores))
    return stats.non_inferiority(padded, ref_mean=task.published_mean, delta=task.delta,
                                 metric="last-100 mean return")


@contextlib.contextmanager
def single_threaded():
    """torch single-threaded for the duration (tiny networks stall when threads contend for 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_budget_scale() -> float:
    """The factor AUTOGRADER_CPU_SCALE sets on every curve check's CPU budget (1 when unset)."""
    raw = os.environ.get(CPU_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = float("nan")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{CPU_SCALE_ENV} must be a positive number such as 1.5 (the factor on every curve "
                         f"check's CPU budget), got {raw!r}. Unset it for the course's budgets.")
    return scale


def curve_check(task: CurveTask, train: Callable, *, n_actions: int | None = None) -> list[SeedRun]:
    """Run the learner's `train(envs, seed, total_timesteps, log)` on every grading seed and grade the
    last-100 means. Prints one line per seed; plots the curves over the reference band; diagnoses a
    failure. Returns the runs (the check raises CheckFailed before returning when it fails)."""
    runs: list[SeedRun] = []
    with Check(task.check_id, task.title, hint=task.hint) as check:
        fn = check.signature(train, "envs", "seed", "total_timesteps", "log")
        name = getattr(fn, "__name__", "train")
        seeds, hidden = grading_seeds(task.check_id, list(task.seeds))
        n = len(seeds)
        budget_s = task.budget_s * cpu_budget_scale()
        print(f"{task.check_id}: training on {task.env_id} for {task.total_timesteps:,} steps x {n} "
              f"{'hidden ' if hidden else ''}seeds (budget {budget_s:.0f} s of CPU)")
        started = time.process_time()
        wall_started = time.monotonic()
        verdict = None
        with single_threaded():
            for k, seed in enumerate(seeds):
                wall_left = WALL_FACTOR * budget_s - (time.monotonic() - wall_started)
                envs = (task.env_class or GradedVectorEnv)(task.env_id, task.num_envs, seed=seed,
                                                           total_timesteps=task.total_timesteps, backend=task.backend)
                log = MetricLog()
                t0, w0 = time.process_time(), time.monotonic()
                try:
                    # The kernel records the learner's actions; the grader's process replays them on its own
                    # environments, so the returns graded there are its own simulation's (autograder/replay.py).
                    check.call(fn, envs, seed, task.total_timesteps, log, budget_s=max(wall_left, 1.0),
                               what=f"{name}(envs, seed={seed}, total_timesteps={task.total_timesteps:,}, log)",
                               record=lambda _, envs=envs: envs.record(), replay=envs.replay)
                finally:
                    envs.close()
                dt, wall = time.process_time() - t0, time.monotonic() - w0
                ep = np.array(envs.episodes, dtype=np.float64).reshape(-1, 3)
                run = SeedRun(seed, final_score(ep[:, 0], ep[:, 1]), ep[:, 0].astype(np.int64), ep[:, 1],
                              envs.global_step, dt, log)
                runs.append(run)
                check.require(
                    envs.global_step >= task.min_steps_fraction * task.total_timesteps, f"seed {seed}: steps used",
                    f"the loop stopped after {envs.global_step:,} environment steps; it should use "
                    f"total_timesteps = {task.total_timesteps:,} (at least {task.min_steps_fraction:.0%}).")
                check.require(len(ep) >= 1, f"seed {seed}: episodes",
                              "no episode ended during training: is the loop stepping the environments?")
                print(f"  seed {k + 1}/{n}: last-100 mean return {run.score:7.1f} after {envs.global_step:,} steps "
                      f"({dt:.1f} s CPU, {wall:.1f} s wall)", flush=True)
                spent = time.process_time() - started
                projected = spent / (k + 1) * n
                if k + 1 < n and projected > 1.15 * budget_s:
                    check.diagnosis.append(
                        f"{k + 1} seed(s) took {spent:.0f} s of CPU, so {n} seeds need about {projected:.0f} s, over "
                        f"the budget of {budget_s:.0f} s."
                        + (f" The reference loop takes about {task.reference['seconds_per_seed']:.0f} s per seed."
                           if "seconds_per_seed" in task.reference else "")
                        + (f" See {task.lesson}, section '{task.sections['speed']}'."
                           if "speed" in task.sections else ""))
                    check.require(False, "time", f"{n} seeds would not finish within the budget")
                if k + 1 < n:
                    best = _best_case([r.score for r in runs], task, n)
                    if not best.passed:
                        so_far = ", ".join(f"{r.score:.1f}" for r in runs)
                        verdict = dataclasses.replace(best, detail=(
                            f"after {k + 1} of {n} seeds (scores {so_far}) the check cannot pass even if every "
                            f"remaining seed scored {task.best_return:g}: " + best.detail))
                        break
        scores = [r.score for r in runs]
        if verdict is None:
            verdict = stats.non_inferiority(scores, ref_mean=task.published_mean, delta=task.delta,
                                            metric="last-100 mean return")
        check.verdict(verdict, "last-100 mean return")
        check.note(f"seeds: {', '.join(f'{s:.1f}' for s in scores)}; our reference over "
                   f"{task.reference['final']['n']} seeds: {task.reference['final']['mean']:.1f} "
                   f"(SD {task.reference['final']['sd']:.1f}); {task.published_label}")
        check.plot(_figure(task, runs, verdict.passed), "curves")
        if not verdict.passed:
            merged = MetricLog()
            for r in runs:
                for key, rows in r.log.history.items():
                    merged.history.setdefault(key, []).extend(rows)
            check.diagnosis.extend(diagnose(task, merged, scores, n_actions))
    return runs


def _figure(task: CurveTask, runs: list[SeedRun], passed: bool):
    curve = task.reference["curve"]
    x = np.asarray(curve["x"], dtype=np.int64)
    as_float = lambda values: np.array([np.nan if v is None else v for v in values], dtype=float)  # noqa: E731
    learner = np.array([last_mean_curve(r.steps, r.returns, x) for r in runs])
    panel = Panel(
        title=f"{task.env_id}: last-100 mean return", ylabel="return", x=x, learner=learner,
        ref_mean=as_float(curve["mean"]), ref_low=as_float(curve["low"]), ref_high=as_float(curve["high"]),
        passed=passed, anchor=(task.published_mean - task.delta, f"pass line ({task.published_label} - margin)"),
        xlabel="environment step", learner_label=f"your code ({len(runs)} seeds)",
        ref_label=f"rlcore, {task.reference['final']['n']} seeds (min-max)")
    return curve_figure([panel])
