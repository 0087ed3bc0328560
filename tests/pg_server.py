"""A throwaway PostgreSQL server (Debian's packages) for the lake tests and benchmarks.

PostgreSQL refuses to run as root, so under root the server runs as `nobody`.
Every lake gets its own database cloned from a template that already holds
Libra's schema, because migrating a fresh DuckLake catalog costs seconds.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def bindir() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, root: Path | None = None):
        self.bin = bindir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.root = Path(root or tempfile.mkdtemp(prefix="libra-pg-"))
        self.data = self.root / "pgdata"
        self.port = _free_port()
        self._as_nobody = os.geteuid() == 0
        self.template: str | None = None

    def _run(self, *args: str) -> None:
        kw = {}
        if self._as_nobody:
            nobody = pwd.getpwnam("nobody")

            def drop() -> None:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            kw["preexec_fn"] = drop
        subprocess.run(args, check=True, capture_output=True, cwd=self.root, **kw)

    def start(self) -> PgServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_nobody:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "libra", "-A", "trust")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.root / "log"),
                  "-o", f"-p {self.port} -h 127.0.0.1 -k {self.root} -c max_connections=200 -c fsync=off",
                  "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, statement: str, db: str = "postgres") -> None:
        """Run a statement with psql (database names here are our own, never input)."""
        psql = self.bin / "psql" if (self.bin / "psql").exists() else "psql"
        subprocess.run([str(psql), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "libra", "-d", db,
                        "-c", statement], check=True, capture_output=True)

    def xact_commits(self, db: str) -> int:
        """Transactions committed in `db` so far (pg_stat_database), to count a workload's round trips."""
        psql = self.bin / "psql" if (self.bin / "psql").exists() else "psql"
        out = subprocess.run([str(psql), "-qtA", "-h", "127.0.0.1", "-p", str(self.port), "-U", "libra", "-d", db,
                              "-c", f"SELECT pg_stat_force_next_flush(); SELECT xact_commit FROM pg_stat_database "
                                    f"WHERE datname = '{db}'"], check=True, capture_output=True, text=True)
        return int(out.stdout.split()[-1])

    def conninfo(self, db: str) -> str:
        return f"dbname={db} host=127.0.0.1 port={self.port} user=libra"

    def new_lake(self, migrated: bool = True, data: str | None = None) -> str:
        """A `LIBRA_STORE` value for a new, empty lake, migrated unless asked otherwise.

        With `data` (say s3://bucket/lake/) the lake keeps its files there and is
        migrated when first opened.

        The clones share the template's data folder: DuckLake names every file
        it writes uniquely, and the catalog says which files are whose.
        """
        from traces.store import Store

        if not migrated or data:
            db = f"bare_{uuid.uuid4().hex[:12]}"
            self.sql(f"CREATE DATABASE {db}")
            return f"ducklake:postgres:{self.conninfo(db)} data={data or self.root / db}"
        if self.template is None:
            self.sql("CREATE DATABASE libra_template")
            tmpl = Store(f"ducklake:postgres:{self.conninfo('libra_template')} data={self.root / 'tmpl-data'}")
            tmpl.schema_version()
            tmpl.close()
            self.template = "libra_template"
        db = f"lake_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE {db} TEMPLATE {self.template}")
        return f"ducklake:postgres:{self.conninfo(db)} data={self.root / 'tmpl-data'}"
