"""The run directory: metrics.csv and config.json (rlcore.metrics), Result's summaries, the Recorder that
every training loop shares, checkpoints (rlcore.checkpoint) and seeding (rlcore.seeding)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from rlcore.checkpoint import load_checkpoint, save_checkpoint
from rlcore.metrics import VOCABULARY, MetricsLogger, Recorder, Result, config_to_dict, read_metrics
from rlcore.ppo import PPOConfig
from rlcore.seeding import env_seed, seed_everything


def csv_rows(path) -> tuple[list[str], list[dict]]:
    with open(path) as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


# ---------------------------------------------------------------------------------------------
# MetricsLogger and read_metrics
# ---------------------------------------------------------------------------------------------


def test_csv_columns_and_rows(tmp_path):
    logger = MetricsLogger(tmp_path / "run")
    logger.log(10, {"charts/episodic_return": 21.0, "charts/episodic_length": 21})
    logger.log(20, {"losses/value_loss": 0.5})
    logger.close()
    header, rows = csv_rows(tmp_path / "run" / "metrics.csv")
    assert header == ["global_step", "wall_time", *VOCABULARY]
    assert [r["global_step"] for r in rows] == ["10", "20"]
    assert rows[0]["charts/episodic_return"] == "21.0" and rows[0]["losses/value_loss"] == ""
    assert rows[1]["losses/value_loss"] == "0.5" and rows[1]["charts/episodic_return"] == ""
    wall = [float(r["wall_time"]) for r in rows]
    assert 0 <= wall[0] <= wall[1]


def test_read_metrics_gives_back_what_was_logged(tmp_path):
    logger = MetricsLogger(tmp_path)
    values = [(1, 0.1), (5, 1 / 3), (9, 123456.789), (12, float("nan")), (15, -float("inf"))]
    for step, value in values:
        logger.log(step, {"losses/td_loss": value, "charts/sps": step * 2})
    logger.close()
    series = read_metrics(tmp_path)  # a directory or the csv itself
    assert series["charts/sps"] == read_metrics(tmp_path / "metrics.csv")["charts/sps"]
    got = series["losses/td_loss"]
    assert [s for s, _ in got] == [s for s, _ in values]
    for (_, a), (_, b) in zip(got, values):
        assert a == b or (math.isnan(a) and math.isnan(b))  # repr() round-trips floats exactly
    assert series["charts/sps"] == [(s, 2.0 * s) for s, _ in values]
    assert set(series) == {"losses/td_loss", "charts/sps"}  # empty columns give no series


def test_a_metric_outside_the_vocabulary_adds_a_column(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log(1, {"charts/episodic_return": 5.0})
    logger.log(2, {"custom/grad_norm": 0.7})
    logger.log(3, {"charts/episodic_return": 6.0, "custom/grad_norm": 0.8})
    logger.close()
    header, rows = csv_rows(tmp_path / "metrics.csv")
    assert header[-1] == "custom/grad_norm" and len(rows) == 3
    series = read_metrics(tmp_path)
    assert series["charts/episodic_return"] == [(1, 5.0), (3, 6.0)]
    assert series["custom/grad_norm"] == [(2, 0.7), (3, 0.8)]


def test_resume_appends_to_the_same_file(tmp_path):
    first = MetricsLogger(tmp_path)
    first.log(100, {"charts/episodic_return": 1.0})
    first.log(200, {"custom/extra": 2.0})
    first.close()
    second = MetricsLogger(tmp_path, resume=True)
    second.log(300, {"charts/episodic_return": 3.0, "custom/extra": 4.0})
    second.close()
    text = (tmp_path / "metrics.csv").read_text()
    assert text.count("global_step") == 1  # one header
    series = read_metrics(tmp_path)
    assert series["charts/episodic_return"] == [(100, 1.0), (300, 3.0)]
    assert series["custom/extra"] == [(200, 2.0), (300, 4.0)]
    # Without resume a new run starts a new file.
    MetricsLogger(tmp_path).close()
    assert read_metrics(tmp_path) == {}


def test_resume_without_a_previous_file_starts_one(tmp_path):
    logger = MetricsLogger(tmp_path / "new", resume=True)
    logger.log(1, {"charts/sps": 10.0})
    logger.close()
    assert read_metrics(tmp_path / "new") == {"charts/sps": [(1, 10.0)]}


def test_read_metrics_of_a_missing_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        read_metrics(tmp_path)


def test_config_json_is_written_and_reads_back(tmp_path):
    config = PPOConfig(env_id="CartPole-v1", hidden=(32, 16), target_kl=None, run_dir=str(tmp_path))
    MetricsLogger(tmp_path, config).close()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["env_id"] == "CartPole-v1" and saved["hidden"] == [32, 16] and saved["target_kl"] is None
    # Every field is plain JSON, so the config can be rebuilt from the file.
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    assert set(saved) == fields
    rebuilt = PPOConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    assert rebuilt == config


def test_config_to_dict_of_unusual_values():
    out = config_to_dict({"device": torch.device("cpu"), "lr": 0.1, "nested": {"a": [1, 2]}, "t": (1, (2, 3))})
    assert out["device"] == "device(type='cpu')" and out["lr"] == 0.1 and out["nested"] == {"a": [1, 2]}
    assert out["t"] == [1, [2, 3]]
    json.dumps(out)


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------


def make_result(returns, steps) -> Result:
    returns = np.asarray(returns, dtype=float)
    return Result(config=None, agent=None, episode_returns=returns, episode_lengths=returns.astype(np.int64),
                  episode_steps=np.asarray(steps, dtype=np.int64), history={}, global_step=int(steps[-1]),
                  wall_time=2.0)


def test_steps_to_threshold_on_a_hand_made_sequence():
    # Windows of 3: means of (1, 2, 3) = 2, (2, 3, 4) = 3, (3, 4, 5) = 4, (4, 5, 6) = 5.
    result = make_result([1, 2, 3, 4, 5, 6], [10, 20, 30, 40, 50, 60])
    assert result.steps_to_threshold(4.0, window=3) == 50  # reached when the 5th episode ended
    assert result.steps_to_threshold(2.0, window=3) == 30  # the first full window already counts
    assert result.steps_to_threshold(4.5, window=3) == 60
    assert result.steps_to_threshold(5.5, window=3) is None  # never
    assert result.steps_to_threshold(0.0, window=7) is None  # fewer episodes than the window
    assert result.steps_to_threshold(3.5, window=1) == 40


def test_steps_to_threshold_needs_the_mean_not_one_lucky_episode():
    result = make_result([0, 0, 9, 0, 0, 5, 5, 5], np.arange(1, 9) * 100)
    assert result.steps_to_threshold(5.0, window=3) == 800
    assert result.steps_to_threshold(3.0, window=3) == 300


def test_last_mean_and_sps():
    result = make_result(np.arange(1, 151), np.arange(1, 151) * 10)
    assert result.last_mean() == pytest.approx(np.mean(np.arange(51, 151)))
    assert result.last_mean(10) == pytest.approx(145.5)
    assert result.sps == pytest.approx(1500 / 2.0)


def test_last_mean_without_episodes_is_nan():
    empty = Result(config=None, agent=None, episode_returns=np.zeros(0), episode_lengths=np.zeros(0, np.int64),
                   episode_steps=np.zeros(0, np.int64), history={}, global_step=0, wall_time=0.0)
    assert math.isnan(empty.last_mean()) and math.isnan(empty.sps)
    assert empty.steps_to_threshold(1.0) is None


# ---------------------------------------------------------------------------------------------
# Recorder
# ---------------------------------------------------------------------------------------------


def episode_info(returns, lengths) -> dict:
    return {"episode_return": np.array(returns, dtype=float), "episode_length": np.array(lengths)}


def test_recorder_records_episodes_history_and_csv(tmp_path):
    rec = Recorder({"seed": 1}, total_steps=100, desc="test", run_dir=tmp_path, progress=False)
    rec.episodes_ended(8, episode_info([np.nan, 12.0, np.nan], [0, 12, 0]), np.array([False, True, False]))
    rec.episodes_ended(16, episode_info([np.nan] * 3, [0] * 3), np.zeros(3, dtype=bool))
    rec.episodes_ended(24, episode_info([3.0, np.nan, 5.0], [3, 0, 5]), np.array([True, False, True]))
    rec.log(24, {"losses/value_loss": 0.25})
    rec.advance(24)
    rec.close()
    result = rec.result({"seed": 1}, None, 24)
    np.testing.assert_array_equal(result.episode_returns, [12.0, 3.0, 5.0])
    np.testing.assert_array_equal(result.episode_lengths, [12, 3, 5])
    np.testing.assert_array_equal(result.episode_steps, [8, 24, 24])
    assert result.global_step == 24 and result.episode_lengths.dtype == np.int64
    assert result.history["charts/episodic_return"] == [(8, 12.0), (24, 3.0), (24, 5.0)]
    assert read_metrics(tmp_path) == result.history  # the csv holds the same numbers
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 1}


def test_recorder_resumes_with_the_saved_episodes(tmp_path):
    first = Recorder({}, total_steps=100, desc="t", run_dir=tmp_path, progress=False)
    first.episodes_ended(10, episode_info([7.0], [7]), np.array([True]))
    first.close()
    state = {"global_step": 10, "episodes": first.episodes}
    second = Recorder({}, total_steps=100, desc="t", run_dir=tmp_path, progress=False, resume_state=state)
    second.episodes_ended(20, episode_info([9.0], [9]), np.array([True]))
    second.close()
    result = second.result({}, None, 20)
    np.testing.assert_array_equal(result.episode_returns, [7.0, 9.0])
    np.testing.assert_array_equal(result.episode_steps, [10, 20])
    assert read_metrics(tmp_path)["charts/episodic_return"] == [(10, 7.0), (20, 9.0)]


def test_recorder_reached_agrees_with_steps_to_threshold():
    rec = Recorder({}, total_steps=100, desc="t", progress=False)
    for step, ret in enumerate([1.0, 2.0, 3.0, 4.0, 5.0], start=1):
        rec.episodes_ended(step, episode_info([ret], [int(ret)]), np.array([True]))
        hit = rec.result({}, None, step).steps_to_threshold(4.0, window=3)
        assert rec.reached(4.0, window=3) == (step == 5) and (hit is not None) == (step == 5)
    assert not rec.reached(1.0, window=6)  # fewer episodes than the window
    rec.close()


def test_recorder_off_the_main_rank_and_without_run_dir_writes_nothing(tmp_path):
    other = Recorder({}, total_steps=10, desc="t", run_dir=tmp_path / "rank1", main=False, progress=False)
    other.episodes_ended(5, episode_info([1.0], [1]), np.array([True]))
    other.close()
    assert not (tmp_path / "rank1").exists()
    quiet = Recorder({}, total_steps=10, desc="t", run_dir=None, progress=False)
    quiet.log(1, {"charts/sps": 3.0})
    quiet.close()
    assert quiet.history == {"charts/sps": [(1, 3.0)]}
    result = quiet.result({}, None, 1)
    assert result.episode_returns.shape == (0,)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    net = torch.nn.Linear(3, 2)
    state = {"model": net.state_dict(), "global_step": 1234, "rng": rng.bit_generator.state,
             "array": np.arange(6.0).reshape(2, 3), "episodes": [(1, 2.0, 3)], "config": {"hidden": (64, 64)}}
    path = save_checkpoint(tmp_path / "deep" / "dir" / "checkpoint.pt", state)
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    loaded = load_checkpoint(path)
    assert loaded["global_step"] == 1234 and loaded["episodes"] == [(1, 2.0, 3)]
    np.testing.assert_array_equal(loaded["array"], state["array"])
    for k in state["model"]:
        assert torch.equal(loaded["model"][k], state["model"][k])
    restored = np.random.default_rng(0)
    restored.bit_generator.state = loaded["rng"]
    assert restored.integers(1 << 30) == rng.integers(1 << 30)


def test_checkpoint_overwrite_keeps_the_latest(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"global_step": 1})
    save_checkpoint(tmp_path / "c.pt", {"global_step": 2})
    assert load_checkpoint(tmp_path / "c.pt")["global_step"] == 2


def test_missing_checkpoint_is_none_and_a_broken_one_says_what_to_do(tmp_path):
    assert load_checkpoint(tmp_path / "none.pt") is None
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="could not read the checkpoint.*Delete it"):
        load_checkpoint(tmp_path / "broken.pt")


# ---------------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------------


def test_seed_everything_seeds_torch_and_returns_a_per_rank_generator():
    g0 = seed_everything(5)
    a = torch.rand(3)
    h0 = seed_everything(5)
    assert torch.equal(torch.rand(3), a)  # torch reseeded identically
    assert g0.integers(1 << 30, size=4).tolist() == h0.integers(1 << 30, size=4).tolist()
    # Another rank: same torch stream (identical initial networks), another host stream.
    g1 = seed_everything(5, rank=1)
    assert torch.equal(torch.rand(3), a)
    assert seed_everything(5).integers(1 << 30, size=4).tolist() != g1.integers(1 << 30, size=4).tolist()


def test_other_seeds_give_other_streams():
    first, second = seed_everything(5).integers(1 << 30, size=4), seed_everything(6).integers(1 << 30, size=4)
    assert first.tolist() != second.tolist()


def test_env_seed_gives_ranks_consecutive_blocks():
    assert [env_seed(10, r, 4) for r in range(3)] == [10, 14, 18]
    assert env_seed(np.int64(3), 0, 8) == 3


@pytest.mark.parametrize("seed", [-1, 1.5, True, "1", None])
def test_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        seed_everything(seed)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        env_seed(seed, 0, 1)
