"""Loaded by subprocesses under test: records every outgoing socket connection.

Uses Python's audit hooks (``socket.connect``), so nothing in the exporter is patched.
"""

import os
import sys

_LOG = os.environ.get("AICOST_AUDIT_CONNECT_LOG")

if _LOG:

    def _hook(event: str, args: tuple) -> None:
        if event == "socket.connect":
            with open(_LOG, "a", encoding="utf-8") as f:
                f.write(repr(args[1]) + "\n")

    sys.addaudithook(_hook)
