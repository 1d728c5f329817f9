"""Shared test setup: every test starts without the environment variables a grading run sets."""

import pytest

from autograder.protocol import HIDDEN_ENV, PLOTS_ENV, RESULTS_ENV


@pytest.fixture(autouse=True)
def _no_grader_env(monkeypatch):
    """A check records results, saves plots or reads hidden seeds only when a test asks for it."""
    for name in (RESULTS_ENV, PLOTS_ENV, HIDDEN_ENV):
        monkeypatch.delenv(name, raising=False)
