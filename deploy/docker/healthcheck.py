#!/usr/bin/env python3
"""Container HEALTHCHECK: GET /-/healthy on the port the exporter actually listens on.

    ai-cost-exporter-healthcheck          # the exporter of this container (PID 1, else found)
    ai-cost-exporter-healthcheck PID      # the exporter with that process id

The address comes from the running process itself, as the exporter resolves it:
`--web.listen-address` on its command line, else `listen_address` of its `--config` file,
else the default 0.0.0.0:9877. So `docker run ... --web.listen-address 0.0.0.0:9100` or a
config with another port needs no change to the image. A wildcard host is checked on
loopback. Exit code 0 = healthy, 1 = not (the reason on stderr).
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

DEFAULT = "0.0.0.0:9877"
CONFIG_FLAGS = ("--config", "--config.file")


def _flag(argv: list[str], names: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def listen_address(argv: list[str]) -> str:
    """The exporter's listen address for its command line ``argv``."""
    address = _flag(argv, ("--web.listen-address",))
    if address:
        return address
    config = _flag(argv, CONFIG_FLAGS)
    if config and argv_command(argv) == "run":
        import yaml

        doc = yaml.safe_load(Path(config).read_text()) or {}
        return str(doc.get("listen_address") or DEFAULT)
    return DEFAULT


def argv_command(argv: list[str]) -> str | None:
    return next((a for a in argv if a in ("run", "demo")), None)


def health_url(address: str) -> str:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/-/healthy"


def cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def find_exporter() -> int:
    """PID 1 when it is the exporter (exec-form ENTRYPOINT), else the first exporter process."""
    candidates = [1, *sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())]
    for pid in candidates:
        try:
            argv = cmdline(pid)
        except OSError:
            continue
        if any(Path(a).name == "ai-cost-exporter" for a in argv[:2]) and argv_command(argv):
            return pid
    raise LookupError("no ai-cost-exporter process found")


def main(args: list[str]) -> int:
    try:
        pid = int(args[0]) if args else find_exporter()
        url = health_url(listen_address(cmdline(pid)))
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except Exception as exc:  # any failure is "unhealthy", with the reason
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
