"""A throwaway PostgreSQL cluster (Debian's binaries, ``make postgresql``) for one test module.

``initdb``/``pg_ctl`` refuse to run as root, so they run as the ``postgres`` user in a temp
dir it owns; the server listens on a free loopback port with trust auth and is stopped
(``pg_ctl stop -m immediate``) and deleted afterwards. Never a pre-existing server.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Yields a ``postgresql://`` URL to a fresh, empty cluster."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries not found; run `make postgresql`")
    root = Path(tempfile.mkdtemp(prefix="candor-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    try:
        subprocess.run(_as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                    "-A", "trust", "--no-sync"), **run)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on"
        subprocess.run(_as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts,
                                    "-l", str(root / "pg.log"), "-w", "start"), **run)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                                    "immediate", "stop"), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
