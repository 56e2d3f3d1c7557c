"""A 127.0.0.1 port that exists only while a command runs, relayed into a container by ``docker exec``.

Compose keeps Postgres and Redis on an internal network and may publish no api port. On-call's
`schedgen health --target compose` needs them without a hand-opened tunnel, so each accepted local
connection starts ``docker exec -i CONTAINER python -c RELAY HOST PORT`` in a container that is on that
network (the api: our image has python) and pumps bytes both ways. Nothing is published, nothing
outlives the command, and a hanging container only stalls the check that uses it (each check has its own
deadline).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from types import TracebackType

#: Runs inside the container: connect to HOST:PORT and copy stdin -> socket, socket -> stdout.
RELAY = (
    "import os,socket,sys,threading\n"
    "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=5)\n"
    "s.settimeout(None)\n"
    "def up():\n"
    "    while True:\n"
    "        d=os.read(0,65536)\n"
    "        if not d: break\n"
    "        s.sendall(d)\n"
    "    s.shutdown(socket.SHUT_WR)\n"
    "threading.Thread(target=up,daemon=True).start()\n"
    "while True:\n"
    "    d=s.recv(65536)\n"
    "    if not d: break\n"
    "    os.write(1,d)\n"
)


def relay_argv(container: str, host: str, port: int) -> list[str]:
    """The per-connection relay command (pure, for tests and --debug)."""
    return ["docker", "exec", "-i", container, "python", "-c", RELAY, host, str(port)]


class ExecTunnel:
    """Listen on 127.0.0.1:<free port>; relay every connection to ``host:port`` inside ``container``."""

    def __init__(self, container: str, host: str, port: int):
        self.container, self.host, self.port = container, host, port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.local_port: int = self._listener.getsockname()[1]
        self._procs: list[subprocess.Popen[bytes]] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            proc = subprocess.Popen(
                relay_argv(self.container, self.host, self.port),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self._procs.append(proc)
            threading.Thread(target=self._to_container, args=(conn, proc), daemon=True).start()
            threading.Thread(target=self._from_container, args=(conn, proc), daemon=True).start()

    @staticmethod
    def _to_container(conn: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            while data := conn.recv(65536):
                proc.stdin.write(data)
                proc.stdin.flush()
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()

    @staticmethod
    def _from_container(conn: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            while data := os.read(proc.stdout.fileno(), 65536):
                conn.sendall(data)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            with contextlib.suppress(subprocess.SubprocessError):
                proc.wait(timeout=2)

    def __enter__(self) -> ExecTunnel:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def tunnels(container: str, targets: dict[str, tuple[str, int]]) -> Iterator[dict[str, int]]:
    """Open one tunnel per named target; yields name -> local port; closes them all afterwards."""
    opened: dict[str, ExecTunnel] = {}
    try:
        for name, (host, port) in targets.items():
            opened[name] = ExecTunnel(container, host, port)
        yield {name: tunnel.local_port for name, tunnel in opened.items()}
    finally:
        for tunnel in opened.values():
            tunnel.close()
