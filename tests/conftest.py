from __future__ import annotations

import os
from pathlib import Path

import pytest

from traces.store import Store

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIBRA_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not present at {SHARED}")
    return SHARED


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "test.duckdb", lock_timeout=20)


@pytest.fixture
def mem_store():
    s = Store(":memory:")
    yield s
    s.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    p = ROOT / "artifacts"
    p.mkdir(exist_ok=True)
    return p
