"""A lake whose data lives in S3-compatible object storage (moto's server on 127.0.0.1).

The catalog is PostgreSQL as everywhere else; the Parquet files go to a bucket,
written and read through DuckDB's httpfs with credentials from the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from traces.annotation import feedback
from libra.demo import build_demo
from traces.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch):
    env = {"AWS_ACCESS_KEY_ID": "libra-test", "AWS_SECRET_ACCESS_KEY": "libra-secret",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _bucket(endpoint: str, name: str):
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="libra-test",
                          aws_secret_access_key="libra-secret", region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return client


def test_a_lake_keeps_its_data_in_object_storage(pg, s3, s3_env):
    client = _bucket(s3, "libra-lake")
    location = pg.new_lake(data="s3://libra-lake/prod")
    store = Store(location)
    summary = build_demo(store, n=20, seed=3)
    assert summary["runs_added"] == 20
    run_id = store.scalar("SELECT min(run_id) FROM runs")
    feedback.add(store, run_id, "ana", "Checked the fare before booking.", steps=[1], flush_now=True)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="libra-lake").get("Contents", [])]
    assert any(k.startswith("prod/") and k.endswith(".parquet") for k in keys), keys
    # another process, sharing nothing but the setting and the credentials, sees it all
    proc = subprocess.run([sys.executable, "-m", "libra.cli.main", "stats", "--db", location],
                          capture_output=True, env={**os.environ, **s3_env}, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "runs: 20" in proc.stdout.decode()
    assert store.scalar("SELECT count(*) FROM feedback WHERE origin = 'app'") == 1


def test_credentials_come_from_the_environment_and_stay_secret(monkeypatch):
    import duckdb

    from traces.ducklake import _s3_secret

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-TEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "it's-secret")  # a quote must not break the statement
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000/")
    con = duckdb.connect()
    _s3_secret(con)
    (shown,) = con.execute("SELECT secret_string FROM duckdb_secrets() WHERE name = 'libra_s3'").fetchone()
    assert "region=eu-west-3" in shown and "endpoint=minio.internal:9000" in shown
    assert "url_style=path" in shown and "use_ssl=false" in shown
    assert "it's-secret" not in shown, "the secret is redacted"
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    con2 = duckdb.connect()
    _s3_secret(con2)  # without keys DuckDB's own defaults apply: no secret of ours
    assert con2.execute("SELECT count(*) FROM duckdb_secrets() WHERE name = 'libra_s3'").fetchone()[0] == 0
