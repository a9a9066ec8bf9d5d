"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temp folder, Unix socket only, no TCP.

Found on PATH or under /usr/lib/postgresql/*/bin (Debian's layout); initdb refuses to run as root, so as root
the server runs as the `postgres` user. Skips with a note where the binaries or psycopg are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def postgres_server() -> Iterator[dict]:
    """Start a server; yields {"url": SQLAlchemy URL, "version": server version line}; stops it afterwards."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (extra `postgres`)")
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="toolkit-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user for initdb")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = folder / "data", folder / "server.log"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120, check=True)

    started = False
    try:
        run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = f"-k {folder} -c listen_addresses='' -c fsync=off -c max_connections=50"
        run(pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        started = True
        import psycopg

        with psycopg.connect(host=str(folder), user="postgres", dbname="postgres", autocommit=True) as conn:
            version = conn.execute("SELECT version()").fetchone()[0]
            conn.execute("CREATE DATABASE toolkit")
        yield {"url": f"postgresql+psycopg://postgres@/toolkit?host={folder}", "version": version}
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"could not start PostgreSQL: {exc.cmd[len(as_user)]} said {exc.stderr.strip()[:300]}")
    finally:
        if started:
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
