"""The serving process: ``/metrics`` is answered by a process of its own, so a scrape never
waits on a refresh (the recompute is pure Python and holds the main process's interpreter
lock for seconds).

``serve`` (``run`` and ``demo``) starts :class:`ServingProcess`: a spawned child that owns
the listening socket and runs a :class:`~exporter.server_loop.LoopServer` (one event-loop
thread for plain HTTP; TLS connections go to MetricsServer's thread per connection; basic
auth and the web config's headers included). After every render the main process
:meth:`~ServingProcess.publish`\\ es the four bodies in memfds (passed over a Unix socket,
no file system needed) with the provider health; the child maps them (keeping each memfd
for ``os.sendfile`` of bodies from 64 KiB up to 1 MiB, ``LoopServer.sendfile_min`` /
``sendfile_max``), serves the others with one ``sendmsg`` from the mapping, and swaps to
the new set at once. It is ready (``/-/ready`` 200) from the first publish on, as the
in-process server is from the first render. Ingest POSTs are forwarded to the main
process's
:class:`~exporter.server.Ingest` over a second channel (:class:`ForwardingIngest`);
``/``, ``/-/healthy`` and ``/-/ready`` are answered by the child itself.

Shutdown: :meth:`ServingProcess.stop` asks the child to stop and waits for it; the child
also stops on SIGTERM, when its control channel reaches EOF (the parent is gone, even
after SIGKILL) and, on Linux, on ``PR_SET_PDEATHSIG``. SIGINT is left to the parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import mmap
import os
import signal
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds, sendfds
from pathlib import Path
from typing import Any, BinaryIO

from exporter.exposition import VARIANTS, Rendered, Variant, negotiate
from exporter.server import Ingest, Reply
from exporter.server_loop import LoopServer
from exporter.snapshot import ProviderHealth
from exporter.webconfig import WebConfigError
from exporter.webconfig import load as load_web_config

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds the child may take to import and bind
STOP_TIMEOUT = 10.0  # seconds the child may take to stop before it is killed
FORWARD_TIMEOUT = 60.0  # seconds an ingest call may take in the main process
UNAVAILABLE: Reply = (
    503,
    b"Ingest unavailable: the exporter's main process did not answer.\n",
    "text/plain; charset=utf-8",
    {"Retry-After": "5"},
)
PR_SET_PDEATHSIG = 1


class Published:
    """The child's copy of one :class:`~exporter.exposition.Rendered`, read from the
    memfds it was published in (then closed: one `sendmsg` from bytes measured fastest,
    see benchmarks/README.md "body path"); ``mapped`` keeps each memfd instead, mapped
    (served from memory) with its file beside it (for ``MetricsServer.sendfile_min``)."""

    def __init__(self, variants: tuple[Variant, ...]) -> None:
        self.variants = variants

    @classmethod
    def from_fds(cls, fds: list[int], sizes: list[int], *, mapped: bool = False) -> Published:
        variants = []
        for fd, size, (om, gz) in zip(fds, sizes, VARIANTS, strict=True):
            if not mapped:  # the offset is shared with the writer's fd: read from 0
                try:
                    body_bytes = b"".join(_pread_all(fd, size))
                finally:
                    os.close(fd)
                variants.append(Variant.of(body_bytes, om, gz))
                continue
            file: BinaryIO = os.fdopen(fd, "rb", buffering=0)
            body: bytes | mmap.mmap = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else b""
            variant = Variant.of(body, om, gz, file)
            weakref.finalize(variant, file.close)  # once no scrape holds it any more
            variants.append(variant)
        return cls(tuple(variants))

    def variant(self, accept: str, accept_encoding: str) -> Variant:
        return self.variants[negotiate(accept, accept_encoding)]


def _pread_all(fd: int, size: int) -> Iterator[bytes]:
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            raise OSError(f"published body ended at {offset} of {size} bytes")
        offset += len(chunk)
        yield chunk


class _Published:
    """The child's :class:`~exporter.server.Source`: the latest bodies and health."""

    def __init__(self, rendered: Published, health: list[ProviderHealth]) -> None:
        self.rendered = rendered
        self._health = health

    def health(self) -> list[ProviderHealth]:
        return self._health


class ForwardingIngest:
    """The child's :class:`~exporter.server.Ingest`: every call is answered by the main
    process's ingest over one channel (calls are serialised; ids keep a late answer from
    being taken for the next one)."""

    def __init__(self, paths: frozenset[str], max_body_bytes: int, conn: Connection) -> None:
        self.paths = paths
        self.max_body_bytes = max_body_bytes
        self._conn = conn
        self._lock = threading.Lock()
        self._ids = itertools.count()

    def _call(self, op: str, *args: object) -> Any:
        with self._lock:
            call = next(self._ids)
            try:
                self._conn.send((call, op, args))
                while self._conn.poll(FORWARD_TIMEOUT):
                    answer, result = self._conn.recv()
                    if answer == call:
                        return result
            except (OSError, EOFError) as exc:
                log.warning("ingest %s not forwarded to the main process: %s", op, exc)
            return UNAVAILABLE

    def authorize(self, path: str, authorization: str | None) -> Reply | None:
        result: Reply | None = self._call("authorize", path, authorization)
        return result

    def refuse_size(self, path: str, length: int) -> Reply:
        result: Reply = self._call("refuse_size", path, length)
        return result

    def handle(self, path: str, content_type: str, content_encoding: str, body: bytes) -> Reply:
        result: Reply = self._call("handle", path, content_type, content_encoding, body)
        return result


def _answer_ingest(ingest: Ingest, conn: Connection) -> None:
    """Main-process side of :class:`ForwardingIngest`, until the channel closes."""
    ops: dict[str, Callable[..., object]] = {
        "authorize": ingest.authorize,
        "refuse_size": ingest.refuse_size,
        "handle": ingest.handle,
    }
    while True:
        try:
            call, op, args = conn.recv()
        except (OSError, EOFError):
            return
        try:
            result = ops[op](*args)
        except Exception:
            log.exception("forwarded ingest %s failed", op)
            result = (500, b"Ingest failed; see the exporter's log.\n", "text/plain", {})
        try:
            conn.send((call, result))
        except OSError:
            return


class ServingProcess:
    """The main process's handle on the serving child (see the module docstring)."""

    def __init__(
        self,
        address: tuple[str, int],
        web_config_file: str | None = None,
        *,
        log_format: str = logging.BASIC_FORMAT,
        on_exit: Callable[[], object] | None = None,
    ) -> None:
        """``on_exit``: called (from a watcher thread) if the child exits before
        :meth:`stop`; :attr:`failed` is then True unless it exited cleanly (SIGTERM)."""
        self.address = address
        self.on_exit = on_exit
        self.failed = False
        self._stopping = False
        self.web_config_file = web_config_file
        self.log_format = log_format
        self.port = 0
        self.scheme = "http"
        ctx = get_context("spawn")  # nothing of this process (threads, locks) is inherited
        self._control, child_control = ctx.Pipe(duplex=True)
        self._ingest, child_ingest = ctx.Pipe(duplex=True)
        self._send_lock = threading.Lock()
        self._process = ctx.Process(
            target=child_main,
            args=(
                address,
                web_config_file,
                log_format,
                logging.getLogger().getEffectiveLevel(),
                child_control,
                child_ingest,
            ),
            name="aicost-serve",
            daemon=True,
        )
        self._child_ends = (child_control, child_ingest)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> None:
        """Start the child and wait until it listens; OSError (as a bind raises it) or
        WebConfigError if it cannot."""
        self._process.start()
        for end in self._child_ends:
            end.close()  # the child's ends live in the child only: its exit is our EOF
        if not self._control.poll(START_TIMEOUT):
            self.stop()
            raise OSError(0, f"the serving process did not start within {START_TIMEOUT:.0f} s")
        try:
            message = self._control.recv()
        except EOFError:
            self.stop()
            raise OSError(0, "the serving process exited at start; see its log") from None
        if message[0] == "error":
            self.stop()
            _, errno, text = message
            raise OSError(errno, text)
        _, self.port, self.scheme = message
        threading.Thread(target=self._watch, name="serving-watch", daemon=True).start()

    def _watch(self) -> None:
        self._process.join()
        if self._stopping:
            return
        code = self._process.exitcode
        self.failed = code != 0  # 0: it was sent SIGTERM itself (a service manager's stop)
        log.log(
            logging.ERROR if self.failed else logging.INFO,
            "the serving process exited (code %s): /metrics is down; stopping the exporter",
            code,
        )
        if self.on_exit is not None:
            self.on_exit()

    def _send(self, message: tuple[object, ...], fds: list[int] | None = None) -> None:
        with self._send_lock:
            try:
                self._control.send(message)
                if fds:
                    with socket.fromfd(
                        self._control.fileno(), socket.AF_UNIX, socket.SOCK_STREAM
                    ) as s:
                        sendfds(s, fds)
            except OSError as exc:  # the child is gone; stop() or the parent's exit follows
                log.error("serving process unreachable (%s): /metrics not updated", exc)

    def publish(self, rendered: Rendered, health: list[ProviderHealth]) -> None:
        """Hand the child a new set of bodies (it serves them from its next request on)."""
        fds, sizes = [], []
        try:
            for pieces in rendered.bodies():  # as rendered: the plain bodies never joined
                fd = os.memfd_create("aicost-metrics", os.MFD_CLOEXEC)
                fds.append(fd)
                with open(fd, "wb", closefd=False) as f:
                    for piece in pieces:
                        f.write(piece)
                sizes.append(sum(map(len, pieces)))
            self._send(("publish", sizes, health), fds)
        finally:
            for fd in fds:
                os.close(fd)  # the child holds its own copies

    def attach_ingest(self, ingest: Ingest) -> None:
        """Forward the child's ingest POSTs to ``ingest`` (from now on)."""
        threading.Thread(
            target=_answer_ingest, args=(ingest, self._ingest), name="ingest-rpc", daemon=True
        ).start()
        self._send(("ingest", ingest.paths, ingest.max_body_bytes))

    def reload_web(self) -> None:
        """Let the child re-read its web config (SIGHUP); it logs the outcome."""
        self._send(("reload",))

    def alive(self) -> bool:
        """Whether the child still runs. Read from /proc where multiprocessing cannot
        tell: once the child was reaped elsewhere (ECHILD) ``is_alive()`` stays True."""
        if not self._process.is_alive():
            return False
        try:
            stat = Path(f"/proc/{self._process.pid}/stat").read_text()
        except OSError:
            return False  # gone
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has stopped

    def stop(self) -> None:
        """Stop the child and wait for it (killed after :data:`STOP_TIMEOUT`)."""
        self._stopping = True
        if self._process.pid is not None:
            self._send(("stop",))
            self._process.join(STOP_TIMEOUT)
            if self.alive():
                log.warning("serving process did not stop in time; killing it")
                self._process.kill()
                self._process.join(STOP_TIMEOUT)
        self._control.close()
        self._ingest.close()


def _die_with_parent() -> None:
    """SIGTERM this process when its parent dies (Linux; the control channel's EOF is
    the portable backstop)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def child_main(
    address: tuple[str, int],
    web_config_file: str | None,
    log_format: str,
    level: int,
    control: Connection,
    ingest: Connection,
) -> None:
    """The serving process (spawned by :class:`ServingProcess`)."""
    parent = os.getppid()
    _die_with_parent()
    logging.basicConfig(level=level, format=log_format, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops us
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if os.getppid() != parent:  # the parent died before the death signal was armed
        return
    try:
        web = load_web_config(web_config_file) if web_config_file else None
        server = LoopServer(address, web=web)
    except OSError as exc:
        control.send(("error", exc.errno or 0, exc.strerror or str(exc)))
        return
    except WebConfigError as exc:
        control.send(("error", 0, str(exc)))
        return
    server.start()
    control.send(("listening", server.port, server.scheme))
    threading.Thread(
        target=_follow, args=(server, control, ingest, stop), name="control", daemon=True
    ).start()
    stop.wait()
    server.stop()


def _follow(
    server: LoopServer, control: Connection, ingest: Connection, stop: threading.Event
) -> None:
    """Apply the parent's messages until ``stop`` or EOF (the parent is gone)."""
    try:
        while True:
            message = control.recv()
            kind = message[0]
            if kind == "publish":
                _, sizes, health = message
                with socket.fromfd(control.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    fds = recvfds(s, len(sizes))
                bodies = Published.from_fds(fds, sizes, mapped=True)  # for os.sendfile
                server.source = _Published(bodies, health)
            elif kind == "ingest":
                _, paths, max_body_bytes = message
                server.ingest = ForwardingIngest(paths, max_body_bytes, ingest)
            elif kind == "reload":
                server.reload_web()
            elif kind == "stop":
                break
    except (EOFError, OSError):
        log.debug("serving process: the main process is gone; stopping")
    finally:
        stop.set()
