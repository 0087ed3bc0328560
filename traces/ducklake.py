"""Opening a DuckLake store: its setting, object-storage credentials from the environment, the attach.

A lake is named `ducklake:postgres:LIBPQ-CONNINFO data=PATH`: a PostgreSQL catalog and Parquet
data under PATH, a local folder or object storage (default `./libra_lake/`).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from traces import extensions, locks

LAKE_PREFIX = "ducklake:"


def is_lake(location: str) -> bool:
    return location.startswith(LAKE_PREFIX)


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def lake_parts(location: str) -> tuple[str, str]:
    """(DuckLake catalog string, data path) from `ducklake:postgres:... data=PATH`."""
    rest = location[len(LAKE_PREFIX):]
    if not rest.startswith("postgres:"):
        raise ValueError(f"unsupported lake catalog in {location!r}; use ducklake:postgres:CONNINFO")
    words, data = [], None
    for w in rest[len("postgres:"):].split():
        if w.startswith("data="):
            data = w[5:]
        else:
            words.append(w)
    data = data or str(Path("libra_lake").resolve())
    if "://" not in data:
        data = str(Path(data).expanduser().resolve()) + "/"
    elif not data.endswith("/"):
        data += "/"
    return "ducklake:postgres:" + " ".join(words), data


def _s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    """Object storage credentials, from the environment only (the usual AWS variables).

    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION;
    an S3-compatible service (MinIO, Ceph, R2) by AWS_ENDPOINT_URL_S3 or
    AWS_ENDPOINT_URL, addressed by path. Without keys, DuckDB's own defaults apply.
    """
    env = os.environ.get
    extensions.load(con, "httpfs")
    key, secret = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        return
    opts = {"KEY_ID": key, "SECRET": secret, "REGION": env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1"}
    if env("AWS_SESSION_TOKEN"):
        opts["SESSION_TOKEN"] = env("AWS_SESSION_TOKEN") or ""
    endpoint = env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        opts.update(ENDPOINT=host.rstrip("/"), URL_STYLE="path")
        use_ssl = "false" if scheme == "http" else "true"
    # CREATE SECRET takes no parameters; every value is quoted, and comes from the operator.
    body = ", ".join(f"{k} {_sql_str(v)}" for k, v in opts.items())
    con.execute(f"CREATE OR REPLACE SECRET libra_s3 (TYPE s3, {body}"
                + (f", USE_SSL {use_ssl})" if endpoint else ")"))


def connect_lake(location: str) -> duckdb.DuckDBPyConnection:
    catalog, data = lake_parts(location)
    if "://" not in data:
        Path(data).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        extensions.load(con, "postgres", "postgres_scanner")
        extensions.load(con, "ducklake")
        if data.startswith("s3://"):
            _s3_secret(con)
        # ATTACH takes no parameters; both strings come from the operator's own setting.
        con.execute(f"ATTACH {_sql_str(catalog)} AS {locks.LAKE_CATALOG} (DATA_PATH {_sql_str(data)})")
        con.execute(f"USE {locks.LAKE_CATALOG}")
        # Many writers commit at once on a busy lake: be patient before giving up.
        con.execute("SET ducklake_max_retry_count = 100")
    except Exception:
        con.close()
        raise
    return con
