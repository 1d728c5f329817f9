"""The grader's replay of a check (autograder/replay.py): what the learner's kernel records, and how the
grader's process re-runs the check on that record and decides.

The "kernel" here is this process with AUTOGRADER_RESULTS set, exactly what a kernel under the runner sees;
the replay then runs with the grader's own modules. The real kernels and nbgrader are exercised by
tests/test_notebooks.py (every solution's grade cells are replayed) and tests/test_classroom.py (a submission
that patches the check in its kernel)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autograder import protocol, replay, replay_data
from autograder.checks import ch01, ch08, ch10
from autograder.protocol import RESULTS_ENV, Check
from rlcore.tabular import bandits as ref


def _kernel_run(monkeypatch, tmp_path, source: str, namespace: dict) -> tuple[bool, list[dict]]:
    """Run a grade cell as the learner's kernel would under the grader: (passed, its records)."""
    path = tmp_path / "records.jsonl"
    path.unlink(missing_ok=True)
    monkeypatch.setenv(RESULTS_ENV, str(path))
    try:
        exec(source, dict(namespace, ch01=ch01, ch08=ch08, ch10=ch10))
        passed = True
    except protocol.CheckFailed:
        passed = False
    monkeypatch.delenv(RESULTS_ENV)
    return passed, [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def good_epsilon_greedy(Q, epsilon, rng):
    n, k = Q.shape
    greedy = ref.argmax_random_ties(Q, rng)
    explore = rng.random(n) < epsilon
    return np.where(explore, rng.integers(0, k, size=n), greedy)


def never_explores(Q, epsilon, rng):
    return ref.argmax_random_ties(Q, rng)


# ------------------------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("value", [
    None, True, 3, -2.5, float("inf"), "text", np.float32(1.5), np.int64(7), np.array(2.5), np.zeros((0, 3)),
    np.arange(6, dtype=np.int16).reshape(2, 3), np.linspace(0, 1, 500), np.arange(200.0).reshape(10, 20)[:, ::3],
    np.array([True, False]), [1, (2.0, "a"), {"k": np.zeros(3)}], (),
    {"nested": {"x": [np.ones((70, 2), dtype=np.float32)]}}, slice(2, None), slice(None, 10, -1),
])
def test_plain_data_round_trips_exactly(value):
    back = replay.decode(json.loads(json.dumps(replay.encode(value))))
    if isinstance(value, (float, slice)) or value is None or isinstance(value, (bool, int, str)):
        assert back == value and type(back) is type(value)
    else:
        np.testing.assert_equal(back, value)
        if isinstance(value, (np.ndarray, np.generic)):
            assert back.dtype == value.dtype and np.shape(back) == np.shape(value)
            assert isinstance(back, np.generic) == isinstance(value, np.generic)  # a scalar stays a scalar


def test_a_zero_dimensional_tensor_keeps_its_shape():
    for t in (torch.tensor(1.5), torch.tensor(3, dtype=torch.int64), torch.zeros(0, 2)):
        assert replay.decode(json.loads(json.dumps(replay.encode(t)))).shape == t.shape


def test_a_returned_record_is_its_fields_read_only():
    from rlcore.evaluate import Episode

    episode = Episode(observations=np.zeros((3, 4)), actions=np.array([1, 0]), rewards=np.ones(2),
                      terminated=True, truncated=False)
    back = _through_json(replay.freeze(episode))
    assert back.terminated is True and back.truncated is False and np.array_equal(back.actions, [1, 0])
    assert np.array_equal(back.observations, episode.observations) and not hasattr(back, "length_in_kernel")
    with pytest.raises(AttributeError):
        back.rewards = None
    assert repr(back).startswith("Episode(")


def test_a_returned_network_is_rebuilt_from_torch_classes_without_running_learner_code():
    class Scale(torch.nn.Module):  # a learner's own layer
        def __init__(self):
            super().__init__()
            self.factor = 2.0

        def forward(self, x):
            return x * self.factor

    class MyLinear(torch.nn.Linear):
        pass

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), MyLinear(4, 1, bias=False), Scale())
    back = _through_json(replay.freeze(net))
    assert isinstance(back, torch.nn.Sequential) and len(back) == 4
    assert [type(m).__name__ for m in back] == ["Linear", "Tanh", "MyLinear", "Scale"]
    assert isinstance(back[2], torch.nn.Linear) and not isinstance(back[3], torch.nn.Linear)
    assert (back[0].in_features, back[0].out_features, back[2].bias, back[3].factor) == (3, 4, None, 2.0)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), back.parameters()))
    assert type(back[3]).forward is torch.nn.Module.forward  # the learner's forward did not travel
    forged = replay.encode(replay.freeze(net))
    forged["base"] = "os.system"
    with pytest.raises(replay.ReplayMismatch):
        replay.decode(forged)
    forged = replay.encode(replay.freeze(net))
    forged["children"]["0"]["attrs"] = replay.encode({"_parameters": 1})
    with pytest.raises(replay.ReplayMismatch):
        replay.decode(forged)


def test_a_learners_result_with_a_graph_cannot_be_differentiated_in_the_grader():
    """Its graph stayed in the kernel: differentiating the grader's copy would silently give nothing, so it
    stops the replay instead (a check differentiates through Check.grad, which is recorded)."""
    x = torch.ones(3, requires_grad=True)
    back = _through_json(replay.freeze((x * 2).sum()))
    assert back.requires_grad and float(back.detach()) == 6.0 and back.shape == ()
    for differentiate in (lambda: back.backward(), lambda: (back * 3).sum().backward(),
                          lambda: torch.autograd.grad(back, [x])):
        with pytest.raises(replay.Unverifiable):
            differentiate()


def test_tensors_and_generators_round_trip():
    t = torch.randn(3, 4, dtype=torch.float64)
    assert torch.equal(replay.decode(replay.encode(t)), t)
    bf = torch.randn(5).to(torch.bfloat16)
    back = replay.decode(replay.encode(bf))
    assert back.dtype == torch.bfloat16 and torch.equal(back, bf)
    rng = np.random.default_rng(3)
    rng.random(10)
    twin = replay.decode(json.loads(json.dumps(replay.encode(rng))))
    assert np.array_equal(twin.random(5), rng.random(5))


def test_objects_are_not_data_and_nothing_is_unpickled():
    with pytest.raises(TypeError):
        replay.encode(object())
    with pytest.raises(TypeError):
        replay.encode(np.array([object()]))
    forged = {"nd": replay_data._array_blob(np.array([1, 2]))}
    assert replay.decode(forged).tolist() == [1, 2]
    import base64
    import pickle
    import zlib

    evil = {"nd": base64.b64encode(zlib.compress(pickle.dumps(np.array([object()])))).decode()}
    with pytest.raises(Exception):  # a pickle is never loaded (allow_pickle=False)
        replay.decode(evil)


def _through_json(state):
    return replay.decode(json.loads(json.dumps(replay.encode(state))))


def test_states_restore_in_place():
    a = np.zeros(4)
    replay.restore(a, "ndarray", _through_json(replay.snapshot(np.arange(4.0), "ndarray")))
    assert a.tolist() == [0, 1, 2, 3]
    rng, twin_rng = np.random.default_rng(1), np.random.default_rng(2)
    replay.restore(twin_rng, "generator", _through_json(replay.snapshot(rng, "generator")))
    assert twin_rng.random() == rng.random()
    net = torch.nn.Linear(3, 2)
    net(torch.ones(1, 3)).sum().backward()
    twin = torch.nn.Linear(3, 2)
    replay.restore(twin, "stateful", _through_json(replay.snapshot(net, "stateful")))
    assert torch.equal(twin.weight, net.weight) and torch.equal(twin.weight.grad, net.weight.grad)
    opt = torch.optim.Adam(net.parameters())
    opt.step()
    twin_opt = torch.optim.Adam(twin.parameters())
    replay.restore(twin_opt, "stateful", _through_json(replay.snapshot(opt, "stateful")))
    assert torch.equal(twin_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


# --------------------------------------------------------------------------------- replaying a cell


def test_a_correct_unit_check_is_verified(monkeypatch, tmp_path):
    cell = "ch01.epsilon_greedy(epsilon_greedy)"
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"epsilon_greedy": good_epsilon_greedy})
    assert passed and records[0]["replay"]["events"]
    assert replay.verify_cell(cell, records).status == "verified"


def test_a_check_patched_in_the_kernel_is_failed_by_the_grader(monkeypatch, tmp_path):
    cell = "ch01.epsilon_greedy(epsilon_greedy)"
    monkeypatch.setattr(Check, "expect", lambda self, *args, **kwargs: True)
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"epsilon_greedy": never_explores})
    monkeypatch.undo()
    assert passed  # the kernel was fooled
    verdict = replay.verify_cell(cell, records)
    assert verdict.status == "failed" and verdict.overrules
    assert "epsilon = 1" in verdict.reason or "explor" in verdict.reason


def test_numpy_patched_in_the_kernel_does_not_change_the_grade(monkeypatch, tmp_path):
    cell = "ch01.epsilon_greedy(epsilon_greedy)"
    for name in ("allclose", "array_equal", "isclose"):
        monkeypatch.setattr(np, name, lambda *a, **k: True)
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"epsilon_greedy": never_explores})
    monkeypatch.undo()
    assert replay.verify_cell(cell, records).status == "failed"


def test_forged_outputs_are_judged_like_returned_ones(monkeypatch, tmp_path):
    cell = "ch01.argmax_random_ties(argmax_random_ties)"
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"argmax_random_ties": ref.argmax_random_ties})
    assert passed
    calls = [e for e in records[0]["replay"]["events"] if e["kind"] == "call"]
    value = replay.decode(calls[0]["value"])
    calls[0]["value"] = replay.encode(np.zeros_like(value))  # "the first arm, always"
    assert replay.verify_cell(cell, records).status == "failed"


def test_records_that_do_not_fit_the_check_fail(monkeypatch, tmp_path):
    cell = "ch01.argmax_random_ties(argmax_random_ties)"
    _, records = _kernel_run(monkeypatch, tmp_path, cell, {"argmax_random_ties": ref.argmax_random_ties})
    short = json.loads(json.dumps(records))
    short[0]["replay"]["events"] = short[0]["replay"]["events"][:-1]
    assert replay.verify_cell(cell, short).status == "failed"
    longer = json.loads(json.dumps(records))
    longer[0]["replay"]["events"].append(longer[0]["replay"]["events"][-1])
    assert replay.verify_cell(cell, longer).status == "failed"
    other = json.loads(json.dumps(records))
    other[0]["check"] = "ch01.ucb"
    assert replay.verify_cell(cell, other).status == "failed"
    # No record at all: the check did not run in the kernel (the kernel's own error decides), or the record
    # was removed, so a check the grader replays on every solution fails; an unknown cell is left to the kernel.
    missing = replay.verify_cell(cell, [])
    assert missing.status == "failed" and "left no record of ch01.argmax_random_ties" in missing.reason
    assert replay.verify_cell("print('no check here')", []).status == "none"


def test_a_curve_is_judged_on_the_graders_own_testbed(monkeypatch, tmp_path):
    """ch01's curve check records only the agent's actions; the grader replays them on its testbed, so a
    record claiming other rewards cannot help, and a correct agent is verified."""
    monkeypatch.setattr(ch01, "N_RUNS", 200)
    monkeypatch.setattr(ch01, "CURVE_CHECKS", {"UCB": ("ucb_c2",)})
    cell = "ch01.UCB_curves(UCB)"

    class Lazy(ref.UCB):
        def act(self):  # always arm 0
            return np.zeros(self.Q.shape[0], dtype=np.int64)

    honest = Check.verdict
    monkeypatch.setattr(Check, "verdict", lambda self, v, name=None: self.expect(True, name or v.metric))
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"UCB": Lazy})
    monkeypatch.setattr(Check, "verdict", honest)
    assert passed  # the kernel was fooled into passing every verdict
    assert replay.verify_cell(cell, records).status == "failed"


def _entropy(logits):
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def _entropy_half_detached(logits):  # the right values; the gradient misses the probabilities' part (it is 0)
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp().detach() * log_p).sum(-1)


def test_gradients_of_a_learners_result_are_judged_by_the_grader(monkeypatch, tmp_path):
    """Check.grad differentiates in the kernel, where the graph is, and records the gradients: the grader
    compares them with its own. A kernel that patches the check passes a wrong gradient; the grader does not."""
    cell = "ch10.categorical_entropy(categorical_entropy)"
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"categorical_entropy": _entropy})
    assert passed and replay.verify_cell(cell, records).status == "verified"
    passed, _ = _kernel_run(monkeypatch, tmp_path, cell, {"categorical_entropy": _entropy_half_detached})
    assert not passed
    monkeypatch.setattr(Check, "expect", lambda self, *args, **kwargs: True)
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"categorical_entropy": _entropy_half_detached})
    monkeypatch.undo()
    assert passed  # the kernel was fooled
    verdict = replay.verify_cell(cell, records)
    assert verdict.status == "failed" and "gradient" in verdict.reason


def test_what_a_check_asks_of_a_learners_object_is_answered_in_the_kernel(monkeypatch, tmp_path):
    """Check.inspect runs a grader question on an object only the kernel has (is ReplayBuffer a class? has
    it add, sample and __len__?); its answer is recorded like an output, and the grader goes on from it."""
    from rlcore.buffers import ReplayBuffer as Ours

    class ReplayBuffer:
        def __init__(self, capacity, obs_shape):
            self.inner = Ours(capacity, obs_shape)

        def add(self, *fields):
            self.inner.add(*fields)

        def sample(self, batch_size, rng):
            return self.inner.sample(batch_size, rng)

        def __len__(self):
            return len(self.inner)

    cell = "ch08.ReplayBuffer(ReplayBuffer)"
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"ReplayBuffer": ReplayBuffer})
    assert passed and replay.verify_cell(cell, records).status == "verified"
    forged = json.loads(json.dumps(records))
    first = forged[0]["replay"]["events"][0]
    assert first["kind"] == "call" and first["value"] is True  # the answer to isinstance(ReplayBuffer, type)
    first["value"] = False
    verdict = replay.verify_cell(cell, forged)
    assert verdict.status == "failed" and "the ReplayBuffer class itself" in verdict.reason


def test_an_object_the_grader_cannot_follow_leaves_the_grade_to_the_kernel(monkeypatch, tmp_path):
    def check(fn):
        with Check("demo.opaque", "a check that inspects a returned object") as check:
            fn = check.signature(fn, "x")
            out = check.call(fn, 1)
            check.expect(isinstance(out, set), "returns a set")

    import types

    demo = types.ModuleType("demo")
    demo.opaque = check
    path = tmp_path / "records.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    check(lambda x: {x})
    monkeypatch.delenv(RESULTS_ENV)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    monkeypatch.setattr(replay, "_check_module", _names_with({"demo": demo}))
    verdict = replay.verify_cell("demo.opaque(f)", records)
    assert verdict.status == "kernel" and "only the kernel has" in verdict.reason


def _names_with(extra: dict):
    """replay._check_module that also knows the test's own check modules."""
    def module(name, _real=replay._check_module):
        return extra.get(name) or _real(name)
    return module


def test_a_grader_callback_is_replayed_into_the_graders_own_object(monkeypatch, tmp_path):
    """Learner code that calls a grader object (an environment, a logger) gets a proxy; the grader performs
    the same calls on its own object, so what that object counts is the grader's."""

    class Counter:
        def __init__(self):
            self.seen = []

        def add(self, x):
            self.seen.append(int(x))

    def check(fn):
        with Check("demo.counter", "the learner adds 1, 2, 3 to the grader's counter") as check:
            fn = check.signature(fn, "counter")
            counter = Counter()
            check.call(fn, counter)
            check.expect(counter.seen == [1, 2, 3], "saw 1, 2, 3", f"saw {counter.seen}")

    import types

    demo = types.ModuleType("demo")
    demo.counter = check
    monkeypatch.setattr(replay, "_check_module", _names_with({"demo": demo}))

    def learner(counter):
        assert isinstance(counter, Counter)  # the proxy looks like the grader's object
        for x in (1, 2, 3):
            counter.add(x)

    for fn, status in ((learner, "verified"), (lambda c: c.add(9), "failed")):
        path = tmp_path / f"{status}.jsonl"
        monkeypatch.setenv(RESULTS_ENV, str(path))
        try:
            check(fn)
        except protocol.CheckFailed:
            pass
        monkeypatch.delenv(RESULTS_ENV)
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records[0]["replay"]["events"][1]["callbacks"]
        assert replay.verify_cell("demo.counter(f)", records).status == status


def test_an_array_handed_to_a_grader_object_again_is_recorded_as_its_changes(monkeypatch, tmp_path):
    """An MC control loop hands its environment the whole policy at every episode, changed in a few states:
    the record keeps those changes, and the grader's object gets the same arrays as the kernel's did."""

    class Log:
        def __init__(self):
            self.policies = []

        def episode(self, policy, step):
            self.policies.append(np.array(policy, copy=True))

    def check(fn):
        with Check("demo.policies", "the learner hands over 50 policies") as check:
            fn = check.signature(fn, "log")
            log = Log()
            check.call(fn, log)
            total = sum(int(p.sum()) for p in log.policies)
            check.expect(len(log.policies) == 50 and total == 1275, "the policies' sums", f"{total}")

    import types

    demo = types.ModuleType("demo")
    demo.policies = check
    monkeypatch.setattr(replay, "_check_module", _names_with({"demo": demo}))

    def learner(log):
        policy = np.zeros(360, dtype=np.int64)
        for t in range(50):
            policy[t] = 1  # one state changes per episode
            log.episode(policy, t)

    path = tmp_path / "records.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    check(learner)
    monkeypatch.delenv(RESULTS_ENV)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    callbacks = records[0]["replay"]["events"][1]["callbacks"]
    assert len(callbacks) == 50 and all("delta" in cb["args"]["list"][0] for cb in callbacks[1:])
    assert replay.verify_cell("demo.policies(f)", records).status == "verified"
    forged = json.loads(json.dumps(records))
    forged[0]["replay"]["events"][1]["callbacks"][7]["args"]["list"][0]["values"] = replay.encode(np.array([0]))
    assert replay.verify_cell("demo.policies(f)", forged).status == "failed"  # the grader sums its own arrays


def test_a_learning_curve_is_the_graders_simulation_of_the_learners_actions(monkeypatch, tmp_path):
    """A deep-RL curve check: the kernel records the actions stepped into the grader's environments and the
    grader replays them on its own; a kernel whose episode bookkeeping is patched cannot pass the grader."""
    import types

    from autograder import deeprl
    from tests.test_deeprl import constant_policy, task

    demo = types.ModuleType("demo")
    demo.curve = lambda fn: deeprl.curve_check(task(seeds=(1, 2, 3)), fn)
    monkeypatch.setattr(replay, "_check_module", _names_with({"demo": demo}))

    def kernel(fn, patch=None):
        path = tmp_path / "curve.jsonl"
        path.unlink(missing_ok=True)
        monkeypatch.setenv(RESULTS_ENV, str(path))
        honest = deeprl.GradedVectorEnv._count_episodes
        if patch:
            monkeypatch.setattr(deeprl.GradedVectorEnv, "_count_episodes", patch)
        try:
            demo.curve(fn)
            passed = True
        except protocol.CheckFailed:
            passed = False
        monkeypatch.setattr(deeprl.GradedVectorEnv, "_count_episodes", honest)
        monkeypatch.delenv(RESULTS_ENV)
        return passed, [json.loads(line) for line in path.read_text().splitlines()]

    passed, records = kernel(constant_policy(1))
    assert passed and replay.verify_cell("demo.curve(train)", records).status == "verified"

    def fake_returns(self, terminated, truncated, info):  # every step "ends an episode of return 1"
        self.episodes.append((self.global_step, 1.0, 1))

    passed, records = kernel(constant_policy(0), patch=fake_returns)
    assert passed  # the kernel's bookkeeping was fooled
    verdict = replay.verify_cell("demo.curve(train)", records)
    assert verdict.status == "failed" and "last-100 mean return" in verdict.reason


def test_only_check_calls_run_in_the_graders_process(monkeypatch, tmp_path):
    """`python -m autograder check` takes a notebook as it is: of a grade cell, the grader runs only its
    `chNN.name(learner_names)` calls, never other code a learner put there."""
    marker = tmp_path / "ran-in-the-grader"
    cell = f"open({str(marker)!r}, 'w').write('x')\nch01.epsilon_greedy(epsilon_greedy)\nimport os"
    passed, records = _kernel_run(monkeypatch, tmp_path, cell, {"epsilon_greedy": good_epsilon_greedy})
    assert passed and marker.exists()  # it ran in the "kernel"
    marker.unlink()
    assert replay.verify_cell(cell, records).status == "verified"
    assert not marker.exists()
    assert replay._called("ch01.ucb(ucb)\nch01._private(x)\nch01.ucb(print(1))\nos.system('x')") == ["ch01.ucb"]
