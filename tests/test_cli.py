"""`python -m rlcore`: every algorithm runs from the command line and writes its run directory; bad
flags and configs exit with a message, not a traceback."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import pytest

from rlcore import a2c, dqn, ppo, reinforce
from rlcore.__main__ import ALGORITHMS, field_docs

CONFIGS = {"ppo": ppo.PPOConfig, "dqn": dqn.DQNConfig, "a2c": a2c.A2CConfig, "reinforce": reinforce.REINFORCEConfig}
SMALL = {"ppo": ["--num-envs", "2", "--num-steps", "64"], "dqn": ["--learning-starts", "100", "--buffer-size", "500"],
         "a2c": [], "reinforce": []}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlcore", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_trains_from_the_command_line(algorithm, tmp_path):
    run_dir = tmp_path / algorithm
    proc = run_cli(algorithm, "--env-id", "CartPole-v1", "--seed", "3", "--total-timesteps", "1024",
                   "--run-dir", str(run_dir), "--no-progress", "--hidden", "16", "16", *SMALL[algorithm])
    assert proc.returncode == 0, proc.stderr
    assert "mean return of the last 100" in proc.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seed"] == 3 and config["hidden"] == [16, 16] and config["env_id"] == "CartPole-v1"
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and rows[0].keys() >= {"global_step", "charts/episodic_return"}
    assert (run_dir / "checkpoint.pt").exists()


def test_a_bad_config_exits_2_with_the_reason():
    proc = run_cli("ppo", "--num-minibatches", "3", "--no-progress")
    assert proc.returncode == 2
    assert "num_minibatches = 3" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_algorithm_is_refused():
    proc = run_cli("sac")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_config_field_has_help_text(algorithm):
    docs = field_docs(CONFIGS[algorithm])
    missing = [f.name for f in dataclasses.fields(CONFIGS[algorithm]) if not docs.get(f.name)]
    assert not missing, f"{algorithm}: fields without a docstring: {missing}"
