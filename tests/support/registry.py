"""Start and stop a real CNCF distribution registry (Debian `docker-registry`) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

BINARY_CANDIDATES = ("/usr/bin/docker-registry", "docker-registry", "registry")
INSTALL_HINT = (
    "the CNCF distribution registry is not installed: run `apt-get install -y docker-registry` "
    "(Debian/Ubuntu; binary /usr/bin/docker-registry) or `bash .ci/run`, which installs it"
)


def find_binary() -> str | None:
    for candidate in BINARY_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RegistryServer:
    """One registry process with its own storage directory.

    With `access_log=True` (the benchmarks count requests with it) the registry's access log
    is appended to `storage/access.log`.
    """

    def __init__(self, storage: Path | None = None, port: int | None = None, access_log: bool = False):
        self.binary = find_binary()
        if self.binary is None:
            raise RuntimeError(INSTALL_HINT)
        self._tmp = None
        if storage is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="janitor-registry-")
            storage = Path(self._tmp.name)
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.access_log = self.storage / "access.log" if access_log else None
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def config_path(self) -> Path:
        config = self.storage / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"log:\n  level: error\n  accesslog:\n    disabled: {'false' if self.access_log else 'true'}\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        return config

    def start(self, timeout: float = 20.0) -> "RegistryServer":
        config = self.config_path()
        # Access-log lines go to stdout, errors to stderr: both into one file.
        self.log_file = open(self.access_log or self.storage / "registry.log", "ab" if self.access_log else "wb")
        self.process = subprocess.Popen([self.binary, "serve", str(config)], stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.access_log or self.storage / "registry.log").read_text(errors="replace")
                raise RuntimeError(f"registry exited with {self.process.returncode}: {log[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry did not answer /v2/ on {self.host} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if getattr(self, "log_file", None):
            self.log_file.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
