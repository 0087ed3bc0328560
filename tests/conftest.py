"""Test tiers, backends and the suite's shared fixtures.

Two tiers (see the README's "Tests"):
- `make test` (plain `pytest`): unit and integration tests on the DuckDB file
  backend, and the store contract (tests marked `contract`) on both backends.
  Set for speed, and inherited by every subprocess a test starts: the hashing
  embedder instead of MiniLM (`LIBRA_EMBEDDER`), cheap Argon2 parameters.
- `make test-all` (`pytest --all`): every test on both backends, including
  those marked `slow`, `browser` and `timing`. Tests marked `model` always get
  the real embedding model, because what they assert is its quality.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Before anything imports Libra: these reach every process the tests start.
os.environ.setdefault("LIBRA_EMBEDDER", "hashing")
os.environ.setdefault("LIBRA_CHEAP_PASSWORD_HASHING", "1")

from traces.store import Store  # noqa: E402

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


# Tests that touch a store are parametrised over both backends: a local DuckDB file (or
# memory) and a DuckLake lake with a PostgreSQL catalog. `make test` keeps the lake cases
# of the store contract only; `--all` runs them all. LIBRA_TEST_BACKENDS=duckdb (or lake)
# runs one of them while working on something else.
BACKENDS = [b for b in os.environ.get("LIBRA_TEST_BACKENDS", "duckdb,lake").split(",") if b]
ALL_TIERS_ONLY = ("slow", "browser", "timing")


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", default=False,
                     help="every tier: slow, browser and timing tests, and every test on both backends "
                          "(make test-all)")


def _on_lake(item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "lake" in callspec.params.values()


def pytest_collection_modifyitems(config, items):
    if config.getoption("--all"):
        return
    keep, drop = [], []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        later = marks & set(ALL_TIERS_ONLY) or (_on_lake(item) and "contract" not in marks)
        (drop if later else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _real_model_when_marked(request, monkeypatch):
    if request.node.get_closest_marker("model"):
        monkeypatch.setenv("LIBRA_EMBEDDER", "sentence-transformers")


@pytest.fixture(scope="module")
def embedder():
    """The embedder the tier configures (hashing under `make test`), built once per module."""
    from metrics.embeddings import default_embedder

    return default_embedder()


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


@pytest.fixture(scope="session")
def _demo_templates(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-templates"), {}


@pytest.fixture
def demo_into(_demo_templates):
    """demo_into(store, n, seed): the demo corpus in a store, built once per session and copied.

    A file store gets a copy of a file built once; a lake (which has no file to
    copy) gets the corpus built. Either way through the normal ingest path.
    """
    from libra.demo import build_demo

    folder, built = _demo_templates

    def put(store: Store, n: int = 60, seed: int = 7) -> None:
        if store.lake or store.path == ":memory:" or Path(store.path).exists():
            build_demo(store, n=n, seed=seed)
            return
        key = (n, seed)
        if key not in built:
            path = folder / f"demo-{n}-{seed}.duckdb"
            build_demo(Store(str(path)), n=n, seed=seed)
            built[key] = path
        shutil.copyfile(built[key], store.path)
    return put


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the session: starting one costs seconds, and each test would."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("LIBRA_")}})
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Streamlit's AppTest runs page scripts as `__main__`; processes started with spawn re-run
    `__main__`, so a later test's worker would run a page. Put the real one back after each test."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture
def page_test(monkeypatch):
    """page_test(module, store, username, **session_state): one page of the app alone (streamlit.testing),
    on `store`, signed in as `username`; not yet run."""
    from streamlit.testing.v1 import AppTest

    from libra import accounts

    def make(module: str, store: Store, username: str, **state: object) -> AppTest:
        monkeypatch.setenv("LIBRA_STORE", store.path)
        at = AppTest.from_string("import streamlit as st\nst.session_state.setdefault('pages', {})\n"
                                 f"from libra.web import {module}\n{module}.page()\n", default_timeout=300)
        at.session_state["user"] = accounts.get_user(store, username)
        for k, v in state.items():
            at.session_state[k] = v
        return at

    return make
