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


# Every test that touches a store runs on both backends: a local DuckDB file (or
# memory) and a DuckLake lake with a PostgreSQL catalog. LIBRA_TEST_BACKENDS=duckdb
# (or lake) runs one of them while working on something else.
BACKENDS = [b for b in os.environ.get("LIBRA_TEST_BACKENDS", "duckdb,lake").split(",") if b]


def fresh_location(request, backend: str, folder: Path, name: str = "store") -> str:
    """Where a new, empty store lives on `backend`: a file in `folder`, or a new lake."""
    if backend == "lake":
        return request.getfixturevalue("pg").new_lake()
    return str(folder / f"{name}.duckdb")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request) -> str:
    """The backend for a module's shared (module-scoped) store."""
    return request.param


@pytest.fixture
def new_location(request, backend, tmp_path):
    """Makes locations of further fresh stores on this test's backend."""
    return lambda name="store": fresh_location(request, backend, tmp_path, name)


@pytest.fixture
def location(new_location) -> str:
    return new_location("test")


@pytest.fixture
def store(location) -> Store:
    s = Store(location, lock_timeout=20)
    yield s
    s.close()


@pytest.fixture
def mem_store(request, backend):
    s = Store(request.getfixturevalue("pg").new_lake()) if backend == "lake" else Store(":memory:")
    yield s
    s.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    p = ROOT / "artifacts"
    p.mkdir(exist_ok=True)
    return p
