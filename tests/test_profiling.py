"""rlcore.profiling: the phase timer adds up, charges each phase its own work, syncs, and refuses misuse.

Times are never compared with a wall-clock bar: the assertions are about structure (calls, order, sums) and
about which of two phases got more work, with a factor large enough to hold on a loaded machine."""

from __future__ import annotations

import time

import pytest

from rlcore.profiling import PhaseTimer, best_of


def busy(seconds: float) -> None:
    """Spin the CPU for about `seconds` of CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_phases_accumulate_calls_and_time():
    timer = PhaseTimer()
    for _ in range(3):
        with timer.phase("env step"):
            busy(0.002)
        with timer.phase("update"):
            busy(0.02)
    rows = timer.summary()
    assert [r["phase"] for r in rows] == ["env step", "update"]
    assert [r["calls"] for r in rows] == [3, 3]
    assert timer.cpu["update"] > 3 * timer.cpu["env step"]  # 10x the work: a factor of 3 survives a busy machine
    assert timer.cpu["update"] >= 0.06
    assert sum(r["wall_share"] for r in rows) == pytest.approx(1.0)
    text = timer.table()
    assert "env step" in text and "update" in text and text.splitlines()[-1].startswith("total")


def test_sync_runs_at_both_ends_of_every_phase():
    calls = []
    timer = PhaseTimer(sync=lambda: calls.append(1))
    for _ in range(2):
        with timer.phase("forward"):
            pass
    assert len(calls) == 4


def test_time_is_recorded_when_the_body_raises():
    timer = PhaseTimer()
    with pytest.raises(KeyError):
        with timer.phase("collect"):
            raise KeyError("boom")
    assert timer.calls == {"collect": 1}
    with timer.phase("collect"):  # the timer is usable again
        pass
    assert timer.calls["collect"] == 2


def test_nested_phases_are_refused():
    timer = PhaseTimer()
    with timer.phase("collect"):
        with pytest.raises(RuntimeError, match="do not nest"):
            with timer.phase("env step"):
                pass


def test_bad_name_and_reset():
    timer = PhaseTimer()
    with pytest.raises(ValueError, match="non-empty name"):
        with timer.phase(""):
            pass
    with timer.phase("a"):
        pass
    timer.reset()
    assert timer.summary() == []


def test_best_of_keeps_the_fastest_round_and_warms_up():
    calls = []

    def work():
        calls.append(1)
        busy(0.003 if len(calls) > 1 else 0.05)  # the first (warm-up) call is slow

    timing = best_of(work, repeats=4, warmup=1)
    assert len(calls) == 5 and len(timing.cpu_rounds) == 4
    assert timing.cpu_s == min(timing.cpu_rounds) and timing.wall_s == min(timing.wall_rounds)
    assert timing.cpu_s < 0.04  # the slow warm-up call is not counted
    with pytest.raises(ValueError, match="repeats"):
        best_of(work, repeats=0)
