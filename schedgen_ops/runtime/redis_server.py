"""A local redis-server from the binary on this machine: start, wait, stop, restart (AOF replayed).

Used by the tests (real servers, no mocks) and by backup tests and snapshots that stop and restart a
server on the same data directory.

    rd = RedisServer.start(Path("/tmp/x/redis"), appendonly="yes")
    rd.url; rd.restart(); rd.stop()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from schedgen_ops.runtime.localserver import LocalServer, find_redis_server, free_port


class RedisServer(LocalServer):
    """A local redis-server on 127.0.0.1; ``config`` items become ``--name value`` arguments.

    Defaults suit a queue Redis: ``appendonly yes`` and ``maxmemory-policy noeviction`` (eviction on a
    queue silently loses jobs), RDB snapshots off.
    """

    DEFAULTS: ClassVar[dict[str, str]] = {
        "appendonly": "yes",
        "maxmemory-policy": "noeviction",
        "save": "",
    }

    program = "redis-server"
    code = "redis"
    ready_means = "answer PING"
    poll_s = 0.05
    start_timeout = 15.0  # restart() replays the AOF within this

    def __init__(
        self, data_dir: Path, port: int, config: dict[str, str], log_path: Path, password: str | None = None
    ) -> None:
        super().__init__(data_dir, port, log_path)
        self.config = config
        self.password = password
        self.binary = find_redis_server()

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        timeout: float = 15.0,
        password: str | None = None,
        **directives: Any,
    ) -> RedisServer:
        """Start redis-server with ``dir=data_dir``; keyword directives use underscores for dashes.

        ``password``: the ``default`` user's, when the config (e.g. ``include=`` ACL users) requires one;
        the start-up probe authenticates with it.
        """
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        merged = dict(cls.DEFAULTS)
        merged.update({key.replace("_", "-"): str(value) for key, value in directives.items()})
        server = cls(
            data_dir,
            port or free_port(),
            merged,
            Path(log_path) if log_path else data_dir.parent / f"{data_dir.name}.log",
            password,
        )
        server._launch(timeout)
        return server

    @property
    def url(self) -> str:
        """URL of database 0."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """URL of logical database ``db``."""
        return f"redis://{self.host}:{self.port}/{db}"

    def _launch(self, timeout: float) -> None:
        argv = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        for name, value in self.config.items():
            argv += [f"--{name}", value]
        self.pid = self._spawn(argv).pid
        self._wait_ready(timeout)

    def _probe(self) -> str | None:
        import redis

        try:
            client = redis.Redis(
                host=self.host,
                port=self.port,
                password=self.password,
                socket_timeout=1,
                socket_connect_timeout=1,
            )
            try:
                # LOADING (AOF replay) raises BusyLoadingError; wait for it to finish.
                info = client.info("server")
                if int(info.get("process_id", -1)) == self.pid:
                    return None
                return f"port {self.port} is answered by another redis-server"
            finally:
                client.close()
        except redis.RedisError as exc:
            return str(exc)

    def is_running(self) -> bool:
        """True while the server process runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM (Redis flushes the AOF and exits) and wait; SIGKILL after ``timeout``."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        self._reap(timeout)

    def kill(self) -> None:
        """SIGKILL the server (a crash: only what the AOF already holds survives)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self.stop()
