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


@pytest.fixture(scope="session")
def pg():
    """A local PostgreSQL for DuckLake catalogs, started once per test session."""
    from pg_server import PgServer, bindir

    if bindir() is None:
        if os.environ.get("LIBRA_REQUIRE_LAKE"):
            pytest.fail("PostgreSQL is required here (LIBRA_REQUIRE_LAKE) but not installed")
        pytest.skip("PostgreSQL is not installed: the DuckLake backend is not tested")
    server = PgServer().start()
    yield server
    server.stop()


# Every test that takes a store runs on both backends: a local DuckDB file (or
# memory) and a DuckLake lake with a PostgreSQL catalog.
@pytest.fixture(params=["duckdb", "lake"])
def store(request, tmp_path) -> Store:
    if request.param == "lake":
        s = Store(request.getfixturevalue("pg").new_lake(), lock_timeout=20)
        yield s
        s.close()
        return
    yield Store(tmp_path / "test.duckdb", lock_timeout=20)


@pytest.fixture(params=["duckdb", "lake"])
def mem_store(request):
    s = Store(request.getfixturevalue("pg").new_lake()) if request.param == "lake" else Store(":memory:")
    yield s
    s.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    p = ROOT / "artifacts"
    p.mkdir(exist_ok=True)
    return p
