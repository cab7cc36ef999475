"""Corpora that tests read from the data directory: a test whose corpus file is missing is skipped, or,
when the environment variable CI is set, fails, so CI never passes by skipping them. And no test may
leave the process with another CPU thread count: the resume tests compare in-process training with
subprocesses bit for bit, which holds only at equal thread counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("EDLM_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def require_corpus(path: Path, what: str) -> None:
    """Skip the running test (or fixture) when the corpus file `path` is missing; fail it instead when CI is set."""
    if Path(path).is_file():
        return
    message = f"{what} is not at {path}; set EDLM_DATA to the data directory that holds it"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so a missing corpus fails rather than skips)", pytrace=False)
    pytest.skip(message)


def needs_corpus(path: Path, what: str):
    """Mark a test that reads the corpus file `path` (`what` names it): `require_corpus` runs before it."""
    return pytest.mark.corpus(path=str(path), what=what)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "corpus(path, what): the test reads this corpus file (tests/conftest.py)")


def pytest_runtest_setup(item) -> None:
    for mark in item.iter_markers("corpus"):
        require_corpus(Path(mark.kwargs["path"]), mark.kwargs["what"])


@pytest.fixture(autouse=True)
def same_cpu_threads_after_each_test():
    """Fail the test that changes torch's intra-op thread count without restoring it."""
    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    torch.set_num_threads(before)
    assert after == before, f"the test left torch with {after} CPU threads instead of {before}"
