"""DuckDB extensions from their PyPI packages (`duckdb-extension-NAME`).

Nothing can be downloaded at run time, so every extension Libra uses (fts,
ducklake, postgres) is loaded by its path inside the installed package.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import duckdb


def extension_path(name: str, load_as: str | None = None) -> str | None:
    """The extension file of package `duckdb_extension_NAME`, or None when it is not installed.

    `load_as`: DuckDB checks the file name against the extension's own entry point
    (the postgres package's is "postgres_scanner"), so such a file is loaded from a
    copy under that name.
    """
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(list(spec.submodule_search_locations)[0]).rglob("*.duckdb_extension"))
    if not found:
        return None
    path = found[-1]
    if load_as and path.stem != load_as:
        dst = Path(tempfile.gettempdir()) / f"libra-ext-{duckdb.__version__}-{os.getuid()}" / f"{load_as}.duckdb_extension"
        if not dst.exists() or dst.stat().st_size != path.stat().st_size:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, dst)
        path = dst
    return str(path)


def load(con: duckdb.DuckDBPyConnection, name: str, load_as: str | None = None, *, required: bool = True) -> bool:
    """LOAD an extension into `con`; False (or an error when `required`) if it is not installed."""
    path = extension_path(name, load_as)
    if path is None:
        if required:
            raise RuntimeError(f"the DuckDB extension '{name}' is missing: "
                               f"pip install duckdb-extension-{name}=={duckdb.__version__}")
        return False
    con.execute(f"LOAD '{path.replace(chr(39), chr(39) * 2)}'")  # a path from our own install, not input
    return True
