"""Fixtures shared by the test files."""
from __future__ import annotations

import pytest

from faceedit_nb.device import torch_threads


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models run fastest on one, and `make test`'s two pytest workers
    then share the 2 cores without oversubscription (OpenMP barriers of many tiny ops collapse when threads
    outnumber free cores). Restored afterwards. A test file opts in for all its tests with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with torch_threads(1):
        yield
