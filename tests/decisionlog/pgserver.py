"""A throwaway PostgreSQL cluster for tests.

    server = PgServer()
    server.start()          # initdb on first start; listens on 127.0.0.1:<free port>
    url = server.url        # postgresql://postgres@127.0.0.1:<port>/postgres (trust auth)
    server.stop()           # keeps the data: start() again brings it back on the same port
    server.cleanup()        # stop and delete everything

PostgreSQL refuses to run as root, so when we are root the server programs run as the
`postgres` OS user (via runuser) in a temp dir that user owns. fsync is off: the data
is disposable.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

SERVER_USER = "postgres"


def find_bindir() -> str | None:
    """Directory holding initdb/pg_ctl: $PG_BINDIR if set (and only it), else PATH,
    else Debian's /usr/lib/postgresql/<newest>/bin."""
    if os.environ.get("PG_BINDIR"):
        candidates = [os.environ["PG_BINDIR"]]
    else:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version,
                            reverse=True)
        on_path = shutil.which("initdb")
        if on_path:
            candidates.insert(0, os.path.dirname(os.path.realpath(on_path)))
    for directory in candidates:
        if os.access(os.path.join(directory, "initdb"), os.X_OK):
            return directory
    return None


def _major_version(bindir: str) -> int:
    version = bindir.rstrip("/").split("/")[-2]
    return int(version) if version.isdigit() else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    def __init__(self, bindir: str | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.base_dir: str | None = None
        self.port: int | None = None
        self.running = False

    @classmethod
    def available(cls) -> bool:
        """True if a cluster can be started here."""
        if find_bindir() is None:
            return False
        if os.geteuid() != 0:
            return True
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return False
        return shutil.which("runuser") is not None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, "data")

    def start(self) -> None:
        if self.running:
            return
        if self.bindir is None:
            raise RuntimeError("PostgreSQL binaries not found "
                               "(set PG_BINDIR or install postgresql)")
        if self.base_dir is None:
            self._initdb()
        # A port picked as free may be taken before the server binds it: retry.
        ports = [self.port] if self.port else [free_port() for _ in range(3)]
        for attempt, port in enumerate(ports, start=1):
            result = self._pg_ctl("start", "-w", "-t", "30", "-l", self._log_path, "-o",
                                  f"-p {port} -k {self.base_dir} "
                                  "-c listen_addresses=127.0.0.1 -F -c max_connections=200")
            if result.returncode == 0:
                self.port, self.running = port, True
                return
            if attempt == len(ports):
                raise RuntimeError(f"pg_ctl start failed:\n{result.stdout}{result.stderr}"
                                   f"\n{self._log_tail()}")

    def stop(self) -> None:
        if self.running:
            self._pg_ctl("stop", "-w", "-m", "fast")
            self.running = False

    def cleanup(self) -> None:
        self.stop()
        if self.base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def __enter__(self) -> "PgServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # --- internals ------------------------------------------------------------------

    @property
    def _log_path(self) -> str:
        return os.path.join(self.base_dir, "server.log")

    def _initdb(self) -> None:
        self.base_dir = tempfile.mkdtemp(prefix="pgserver-")
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.base_dir, user.pw_uid, user.pw_gid)
        result = self._as_server_user(
            os.path.join(self.bindir, "initdb"), "-D", self.data_dir, "-A", "trust",
            "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self._as_server_user(os.path.join(self.bindir, "pg_ctl"), "-D", self.data_dir, *args)

    def _as_server_user(self, *command: str) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            command = ("runuser", "-u", SERVER_USER, "--", *command)
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def _log_tail(self) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                return log.read()[-2000:]
        except OSError:
            return ""
