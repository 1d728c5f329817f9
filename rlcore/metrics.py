"""One metric vocabulary for every algorithm, written to the run directory.

    logger = MetricsLogger(run_dir, config)   # writes run_dir/config.json
    logger.log(global_step, {"charts/episodic_return": 21.0})
    logger.close()                            # flushes; rows also reach the disk at least once a second

metrics.csv is wide: a `global_step` column, a `wall_time` column (seconds since the logger started)
and one column per metric name of `VOCABULARY` (and any extra name a caller logs), empty where a row
did not log that metric. Names follow CleanRL's so curves compare across libraries:

    charts/episodic_return     return of an episode that ended (training episodes, exploration included)
    charts/episodic_length     its length in steps
    charts/sps                 environment steps per second since the start
    charts/learning_rate       the optimizer's learning rate
    charts/epsilon             DQN's exploration rate
    losses/policy_loss         the surrogate (PPO) or policy-gradient loss
    losses/value_loss          the critic's regression loss
    losses/entropy             mean policy entropy (nats); collapse to 0 early is a warning sign
    losses/approx_kl           KL(old || new) estimate, (ratio - 1) - log ratio, averaged
    losses/old_approx_kl       the naive -log ratio estimate
    losses/clipfrac            fraction of samples whose ratio left [1 - clip, 1 + clip]
    losses/explained_variance  1 - Var(returns - values) / Var(returns); <= 0: the critic predicts nothing
    losses/q_values            mean Q of the actions taken (DQN)
    losses/td_loss             DQN's TD loss
    time/collect, time/update  seconds spent per phase since the last log (where the algorithm measures them)

TensorBoard is optional (`tensorboard=True`, needs the `tensorboard` package); the CSV is always written.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time

import numpy as np
from pathlib import Path

VOCABULARY = (
    "charts/episodic_return", "charts/episodic_length", "charts/sps", "charts/learning_rate",
    "charts/epsilon", "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
    "losses/old_approx_kl", "losses/clipfrac", "losses/explained_variance", "losses/q_values",
    "losses/td_loss", "time/collect", "time/update",
)


def config_to_dict(config) -> dict:
    """A dataclass config (or a dict) as a JSON-ready dict. Tuples (hidden=(64, 64)) become lists, so
    the file reads back as numbers; anything JSON has no type for is stored as its repr."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)

    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)

    return {k: plain(v) for k, v in dict(config).items()}


class MetricsLogger:
    """Append metrics to run_dir/metrics.csv (and TensorBoard when asked); write run_dir/config.json.

    Args:
        run_dir: the run's directory, created if missing.
        config: the run's config (a dataclass or dict), saved as config.json.
        resume: append to an existing metrics.csv instead of starting a new one (a resumed run).
        tensorboard: also write TensorBoard event files to run_dir.
    """

    def __init__(self, run_dir, config=None, *, resume: bool = False, tensorboard: bool = False):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (self.run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
        self.path = self.run_dir / "metrics.csv"
        self._start = time.perf_counter()
        self._columns = ["global_step", "wall_time", *VOCABULARY]
        if resume and self.path.exists():
            with self.path.open() as f:
                header = next(csv.reader(f), None)
            if header:
                self._columns = header
        else:
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self._columns)
        self._file = self.path.open("a", newline="")
        self._csv = csv.DictWriter(self._file, self._columns)
        self._last_flush = time.perf_counter()
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError("tensorboard=True needs the tensorboard package: pip install tensorboard "
                                  "(metrics.csv is written either way).") from err
            self._writer = SummaryWriter(str(self.run_dir))

    def log(self, global_step: int, metrics: dict[str, float]) -> None:
        """One row: `global_step` plus the given metrics (float-convertible values)."""
        new = [name for name in metrics if name not in self._columns]
        if new:
            self._add_columns(new)
        row = {"global_step": int(global_step), "wall_time": f"{time.perf_counter() - self._start:.3f}"}
        for name, value in metrics.items():
            value = float(value)
            row[name] = repr(value) if math.isfinite(value) else str(value)
            if self._writer is not None:
                self._writer.add_scalar(name, value, int(global_step))
        self._csv.writerow(row)
        # The file stays open (a log call per episode would otherwise cost an open() each); flushing at
        # least once a second bounds what a crash can lose.
        if time.perf_counter() - self._last_flush > 1.0:
            self.flush()

    def flush(self) -> None:
        self._file.flush()
        self._last_flush = time.perf_counter()
        if self._writer is not None:
            self._writer.flush()

    def _add_columns(self, names: list[str]) -> None:
        """Rewrite the CSV with extra columns (rare: a metric outside the vocabulary)."""
        self._file.close()
        with self.path.open() as f:
            rows = list(csv.DictReader(f))
        self._columns = [*self._columns, *names]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self._columns)
            writer.writeheader()
            writer.writerows(rows)
        self._file = self.path.open("a", newline="")
        self._csv = csv.DictWriter(self._file, self._columns)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()


def read_metrics(run_dir_or_csv) -> dict[str, "list[tuple[int, float]]"]:
    """Read a metrics.csv back: {metric name: [(global_step, value), ...]} for the non-empty cells."""
    path = Path(run_dir_or_csv)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"no metrics.csv at {path}; a run writes it to its --run-dir.")
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            step = int(row["global_step"])
            for name, cell in row.items():
                if name not in ("global_step", "wall_time") and cell not in ("", None):
                    series.setdefault(name, []).append((step, float(cell)))
    return series


@dataclasses.dataclass
class Result:
    """What a training run produced (every algorithm's `train` returns one).

    episode_returns, episode_lengths [E]: the training episodes that ended, in the order they ended (on a
    distributed run: rank 0's environments); episode_steps [E]: the global step at which each ended.
    history: {metric name: [(global_step, value), ...]}, the same numbers as metrics.csv.
    """

    config: object
    agent: object
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    episode_steps: np.ndarray
    history: dict
    global_step: int
    wall_time: float

    @property
    def sps(self) -> float:
        """Environment steps per second over the run (this process's wall time)."""
        return self.global_step / self.wall_time if self.wall_time > 0 else float("nan")

    def last_mean(self, n: int = 100) -> float:
        """Mean return of the last n training episodes: CleanRL's reported metric."""
        return float(np.mean(self.episode_returns[-n:])) if self.episode_returns.size else float("nan")

    def steps_to_threshold(self, threshold: float, window: int = 100) -> int | None:
        """The global step at which the mean of the last `window` training episodes first reached
        `threshold` (None if it never did)."""
        r = self.episode_returns
        if r.size < window:
            return None
        # means[k] = mean(r[k : k + window]), summed then divided: weights of 1 / window (np.convolve) would
        # round a mean that equals the threshold exactly to just below it.
        means = np.lib.stride_tricks.sliding_window_view(r, window).mean(axis=1)
        hits = np.flatnonzero(means >= threshold)
        return int(self.episode_steps[hits[0] + window - 1]) if hits.size else None


class Recorder:
    """The bookkeeping every training loop shares: episodes, metrics history, metrics.csv, progress bar.

    `main=False` (ranks other than 0) keeps the history but writes nothing and shows no bar."""

    def __init__(self, config, *, total_steps: int, desc: str, run_dir=None, main: bool = True,
                 progress: bool = True, tensorboard: bool = False, resume_state: dict | None = None):
        from tqdm.auto import tqdm

        state = resume_state or {}
        self.episodes: list[tuple[int, float, int]] = list(state.get("episodes", []))  # (step, return, length)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.main = main
        self.logger = MetricsLogger(run_dir, config, resume=bool(state), tensorboard=tensorboard) \
            if (run_dir is not None and main) else None
        self.start_step = int(state.get("global_step", 0))
        self._start = time.perf_counter()
        self.bar = tqdm(total=total_steps, initial=self.start_step, unit="step", dynamic_ncols=True, desc=desc,
                        disable=not (progress and main))

    def log(self, global_step: int, metrics: dict) -> None:
        for name, value in metrics.items():
            self.history.setdefault(name, []).append((int(global_step), float(value)))
        if self.logger is not None:
            self.logger.log(global_step, metrics)

    def episodes_ended(self, global_step: int, info: dict, done: np.ndarray) -> None:
        """Record the episodes that ended at this step (vector-env info: episode_return, episode_length)."""
        if not self.main or not done.any():
            return
        for i in np.flatnonzero(done):
            ret, length = float(info["episode_return"][i]), int(info["episode_length"][i])
            self.episodes.append((int(global_step), ret, length))
            self.log(global_step, {"charts/episodic_return": ret, "charts/episodic_length": length})

    def sps(self, global_step: int) -> float:
        """Steps per second since this recorder started (a resumed run counts from where it resumed)."""
        return (global_step - self.start_step) / max(time.perf_counter() - self._start, 1e-9)

    def advance(self, global_step: int) -> None:
        """Move the progress bar to global_step, showing the recent mean return and the speed."""
        self.bar.update(global_step - self.bar.n)
        if self.episodes:
            recent = np.mean([e[1] for e in self.episodes[-100:]])
            self.bar.set_postfix(ret=f"{recent:.1f}", sps=f"{self.sps(global_step):,.0f}", refresh=False)

    def reached(self, threshold: float, window: int = 100) -> bool:
        """Whether the mean return of the last `window` episodes is at least `threshold`."""
        return len(self.episodes) >= window and np.mean([e[1] for e in self.episodes[-window:]]) >= threshold

    def flush(self) -> None:
        if self.logger is not None:
            self.logger.flush()

    def close(self) -> None:
        self.bar.close()
        if self.logger is not None:
            self.logger.close()

    def result(self, config, agent, global_step: int) -> Result:
        ep = np.array(self.episodes, dtype=np.float64).reshape(-1, 3)
        return Result(config=config, agent=agent, episode_returns=ep[:, 1], episode_lengths=ep[:, 2].astype(np.int64),
                      episode_steps=ep[:, 0].astype(np.int64), history=self.history, global_step=int(global_step),
                      wall_time=time.perf_counter() - self._start)
