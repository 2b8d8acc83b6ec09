"""Start and stop the exporter as a real process; scrape it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

AUDIT_DIR = Path(__file__).parent / "audit"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ExporterProcess:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {
            **os.environ,
            **env,
            "PYTHONPATH": os.pathsep.join([str(AUDIT_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        self._log_file = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args, "--web.listen-address",
             f"127.0.0.1:{self.port}"],
            env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def wait_for(self, ok: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited ({self.proc.returncode}): {self.tail()}")
            try:
                if ok():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.tail()}")

    def metrics(self) -> str:
        response = self.get("/metrics")
        response.raise_for_status()  # 503 until the history is loaded: wait_for retries
        return response.text

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=15)
        self._log_file.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
        elif not self._log_file.closed:
            self._log_file.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]
