"""Shared fixtures: paths to the real data in ../shared/data and small stores."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# keep CPU tests predictable on the 2-core CI machine
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config):
    # the tutorial notebook (run by nbmake in a kernel that inherits this environment) imports
    # its benchmark into a data home of the test session, not into the user's
    if "NASBENCH_XFER_HOME" not in os.environ:
        config._test_data_home = os.environ["NASBENCH_XFER_HOME"] = tempfile.mkdtemp(prefix="nasbench-xfer-home-")
    # one thread per test process: predictable timings on the 2-core CI machine
    import torch

    torch.set_num_threads(1)


def pytest_unconfigure(config):
    home = getattr(config, "_test_data_home", None)
    if home:
        shutil.rmtree(home, ignore_errors=True)
