"""Chapter 15, data-parallel PPO: the reference data and the checks.

(a) the checks compare with rlcore.distributed, and the committed reference data holds the equivalence of W ranks
    with one process (float tolerance), the sample-efficiency runs with their verdict, and the provenance;
(b) the grader: the solution notebook's own functions pass every check, each planted-bug variant fails the check
    it targets, and bad input (wrong signature, an exception inside a rank, a hang, a wrong return) gives a clear
    message instead of a traceback from the grader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from autograder.checks import ch15
from autograder.protocol import CheckFailed, LearnerCodeError
from rlcore import distributed
from tests.helpers import solution_namespace
from tests.planted.ch15 import BUGS, DATA_PARALLEL_BUGS

pytestmark = pytest.mark.distributed

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "autograder" / "references" / "ch15_multi_gpu_ppo.json"


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("15_multi_gpu_ppo")


# ---------------------------------------------------------------------------------------------
# (a) what the checks compare with, and the reference data
# ---------------------------------------------------------------------------------------------


def test_the_checks_compare_with_rlcore():
    assert ch15.reference_env_seeds is distributed.env_seeds
    assert ch15.reference_shard is distributed.shard
    assert ch15.reference_all_reduce_gradients is distributed.all_reduce_gradients
    assert ch15.reference_kl_early_stop is distributed.kl_early_stop


def test_the_fixed_batch_experiment_moves_the_parameters_and_depends_on_the_seed():
    start = ch15.data_parallel_updates(0, 1, distributed.shard, distributed.all_reduce_gradients, steps=0)
    after = ch15.data_parallel_updates(0, 1, distributed.shard, distributed.all_reduce_gradients)
    other = ch15.data_parallel_updates(0, 1, distributed.shard, distributed.all_reduce_gradients, seed=1)
    assert np.abs(after - start).max() > 1e-2 and not np.array_equal(after, other)
    again = ch15.data_parallel_updates(0, 1, distributed.shard, distributed.all_reduce_gradients)
    np.testing.assert_array_equal(after, again)  # deterministic


def test_reference_data_has_provenance_and_the_measured_results():
    data = json.loads(REFERENCE.read_text())
    assert data["command"] == "python -m autograder.references.gen_ch15"
    assert {"python", "torch", "numpy", "gymnasium"} <= set(data["versions"])
    assert data["machine"]["gpu"] is None  # measured on a CPU; the lesson says so
    eq = data["equivalence_max_abs_diff"]
    assert eq["2_ranks_float64"] < 1e-14 and eq["4_ranks_float64"] < 1e-14
    assert eq["2_ranks_float32"] < 1e-5 and eq["4_ranks_float32"] < 1e-5
    se = data["sample_efficiency"]
    assert len(se["seeds"]) >= 10 and se["steps"] == 100_000
    arms = se["arms"]
    assert set(arms) == {"1 rank", "2 ranks", "2 ranks, per-rank advantage normalization", "2 ranks, shared noise"}
    for arm in arms.values():
        assert arm["n"] == len(se["seeds"]) == len(arm["final"])
        assert arm["mean"] == pytest.approx(np.mean(arm["final"]), abs=0.06)
    for arm in set(arms) - {"1 rank"}:
        assert "passed" in arms[arm]["noninferiority"] and arms[arm]["reference_arm"] == "1 rank"
    # With independent exploration noise, two near-uniform policies on different states agree on about half of
    # their first actions; with shared noise, on almost all of them.
    assert 0.3 < arms["2 ranks"]["first_32_steps_action_agreement_rank0_rank1"] < 0.7
    assert arms["2 ranks, shared noise"]["first_32_steps_action_agreement_rank0_rank1"] > 0.9


# ---------------------------------------------------------------------------------------------
# (b) the solution passes, planted bugs fail
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUGS))
def test_solution_passes(solution, name, capsys):
    getattr(ch15, name)(solution[name])
    assert "passed" in capsys.readouterr().out


def test_solution_passes_data_parallel(solution, capsys):
    ch15.data_parallel(solution["shard"], solution["all_reduce_gradients"])
    out = capsys.readouterr().out
    assert "passed" in out and "largest parameter difference" in out


@pytest.mark.parametrize("name, description, fn",
                         [(name, d, fn) for name, bugs in BUGS.items() for d, fn in bugs],
                         ids=[f"{name}-{d}" for name, bugs in BUGS.items() for d, _ in bugs])
def test_planted_bug_fails(name, description, fn):
    with pytest.raises(CheckFailed):
        getattr(ch15, name)(fn)


@pytest.mark.parametrize("description, shard_fn, all_reduce_fn", DATA_PARALLEL_BUGS,
                         ids=[d for d, _, _ in DATA_PARALLEL_BUGS])
def test_planted_bug_fails_data_parallel(description, shard_fn, all_reduce_fn):
    with pytest.raises(CheckFailed):
        ch15.data_parallel(shard_fn, all_reduce_fn)


def test_a_summed_gradient_names_the_sum():
    with pytest.raises(CheckFailed, match="That is the sum: divide by the world size"):
        ch15.all_reduce_gradients(dict(BUGS["all_reduce_gradients"])["summed without dividing by the world size"])


def test_a_local_early_stop_is_explained_as_a_hang():
    with pytest.raises(CheckFailed, match="The ranks disagree"):
        ch15.kl_early_stop(dict(BUGS["kl_early_stop"])["each rank decides on its own KL"])


# ---------------------------------------------------------------------------------------------
# bad input: clear messages
# ---------------------------------------------------------------------------------------------


def test_wrong_signature_is_named():
    def shard(n, rank):
        return slice(0, n)

    def all_reduce_gradients():
        pass

    with pytest.raises(LearnerCodeError, match=r"calls it as shard\(n, rank, world_size\)"):
        ch15.shard(shard)
    with pytest.raises(LearnerCodeError, match=r"calls it as all_reduce_gradients\(module\)"):
        ch15.all_reduce_gradients(all_reduce_gradients)


def test_not_written_yet_is_said_even_inside_a_rank():
    def blank(module):
        if dist.is_initialized():
            raise NotImplementedError("write all_reduce_gradients")

    with pytest.raises(LearnerCodeError, match="not written yet"):
        ch15.all_reduce_gradients(blank)


def test_an_exception_inside_a_rank_reaches_the_message():
    def broken(module):
        if dist.is_initialized():
            raise KeyError("grads")

    with pytest.raises(LearnerCodeError, match="KeyError: 'grads'"):
        ch15.all_reduce_gradients(broken)


def test_a_hang_becomes_a_failure_that_explains_it(monkeypatch):
    monkeypatch.setattr(ch15, "LAUNCH_TIMEOUT_S", 3.0)

    def only_rank_0(module):  # rank 1 never joins the collective, and stays
        if dist.is_initialized() and dist.get_rank() == 0:
            dist.all_reduce(torch.cat([p.grad.reshape(-1) for p in module.parameters()]))
        elif dist.is_initialized():
            import time
            time.sleep(30)

    with pytest.raises(LearnerCodeError, match="did not finish within 3 s"):
        ch15.all_reduce_gradients(only_rank_0)


def test_a_collective_that_a_finished_rank_never_joins_is_explained():
    def only_rank_0(module):  # rank 1 returns; rank 0 waits in a collective whose partner has left
        if dist.is_initialized() and dist.get_rank() == 0:
            dist.all_reduce(torch.cat([p.grad.reshape(-1) for p in module.parameters()]))

    with pytest.raises(LearnerCodeError, match="collective that another rank never called"):
        ch15.all_reduce_gradients(only_rank_0)


@pytest.mark.parametrize("returned, words", [
    (None, "returned None"), (np.array([1.0, np.nan, 3.0, 4.0]), "NaN"), (np.arange(3), "shape"),
    ("1,2,3,4", "expected a numeric array|not an array|expected numbers|shape"),
])
def test_bad_env_seeds_returns_are_explained(returned, words):
    with pytest.raises(LearnerCodeError, match=words):
        ch15.env_seeds(lambda seed, rank, local_num_envs: returned)


def test_a_shard_that_is_not_an_index_is_explained():
    with pytest.raises(LearnerCodeError, match="cannot index an array"):
        ch15.shard(lambda n, rank, world_size: "first half")


def test_a_shard_raising_the_wrong_error_is_explained():
    def shard_type_error(n, rank, world_size):
        if n % world_size:
            raise TypeError("uneven")
        return distributed.shard(n, rank, world_size)

    with pytest.raises(CheckFailed, match="raised TypeError: uneven; raise ValueError"):
        ch15.shard(shard_type_error)


def test_kl_early_stop_must_return_a_bool():
    with pytest.raises(CheckFailed, match="return True or False"):
        ch15.kl_early_stop(lambda approx_kl, target_kl: "yes")
