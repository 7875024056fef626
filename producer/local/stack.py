"""The embedded local stack: real processes on loopback, no Docker.

``LocalStack`` starts a ``redis-server``, a local S3 server (moto's server mode), Celery worker
processes, the expander (``blurq expander``), Flower and the HTTP API (with the dashboard) on free
ports, waits until each answers,
and stops everything it started. It makes up fresh secrets for its children: the API key, the
webhook secret, Redis's password (given to redis-server on its standard input, never in argv) and
Flower's basic-auth password (in Flower's environment).
``blurq dev up``, ``blurq demo`` and the integration tests all use it.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from infra.settings import Settings

S3_KEY = "blurq-local"
"""Credentials of the local S3 server (it accepts any; these keep boto3 from looking further)."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalStack:
    """Redis, S3, workers, the expander, Flower and the API: child processes; a context manager."""

    workers: int = 2
    log_dir: Path | None = None
    expander: bool = True
    flower: bool = True
    redis_appendonly: bool = False
    redis_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """What redis-server requires (URL-safe, so that redis_url carries it as it is)."""
    redis_port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    flower_port: int = field(default_factory=free_port)
    api: bool = True
    api_port: int = field(default_factory=free_port)
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """The key the stack's API accepts (X-API-Key or Authorization: Bearer)."""
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """The key the stack's workers sign completion webhooks with."""
    flower_user: str = "blurq"
    flower_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """Flower's basic-auth password (its UI and API answer 401 without it)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        """Where the local Redis listens (status and broker)."""
        return f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    @property
    def s3_endpoint(self) -> str:
        """Where the local S3 server listens."""
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def flower_url(self) -> str:
        """Where Flower serves its pages and API."""
        return f"http://127.0.0.1:{self.flower_port}"

    @property
    def flower_headers(self) -> dict[str, str]:
        """The Authorization header Flower wants (basic auth)."""
        pair = f"{self.flower_user}:{self.flower_password}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}

    @property
    def api_url(self) -> str:
        """Where the HTTP API (``/v1``) and the dashboard (``/``) are served."""
        return f"http://127.0.0.1:{self.api_port}"

    def settings(self, base: Settings | None = None) -> Settings:
        """Settings pointing at this stack, other fields taken from base."""
        base = base or Settings()
        return base.model_copy(update=self._overrides())

    def _overrides(self) -> dict[str, str]:
        flower_auth = f"{self.flower_user}:{self.flower_password}" if self.flower else ""
        return {
            "redis_url": self.redis_url,
            "broker_url": "",
            "s3_endpoint_url": self.s3_endpoint,
            "s3_access_key_id": S3_KEY,
            "s3_secret_access_key": S3_KEY,
            "api_keys": self.api_key,
            "webhook_secret": self.webhook_secret,
            "flower_url": self.flower_url if self.flower else "",
            "flower_basic_auth": flower_auth,
        }

    def environment(self) -> dict[str, str]:
        """The environment of the stack's children: ours plus BLURQ_* pointing here."""
        env = dict(os.environ)
        env.update({f"BLURQ_{name.upper()}": value for name, value in self._overrides().items()})
        env["BLURQ_ONNX_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, self.workers)))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start every process and wait until each answers."""
        self.log_dir = self.log_dir or Path(tempfile.mkdtemp(prefix="blurq-stack-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_redis()
            self._start_s3()
            for number in range(1, self.workers + 1):
                self.start_worker(f"worker{number}")
            if self.expander:
                self.start_expander()
            if self.flower:
                self._start_flower()
            if self.api:
                self._start_api()
        except BaseException:
            self.stop()
            raise

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        stdin: bytes | None = None,  # written, then closed: secrets that stay out of argv
    ) -> subprocess.Popen[bytes]:
        assert self.log_dir is not None
        environment = {**self.environment(), **(env or {})}
        with (self.log_dir / f"{name}.log").open("ab") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                argv,
                stdin=None if stdin is None else subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.log_dir,
                preexec_fn=_die_with_parent,
            )
        if stdin is not None:
            assert process.stdin is not None
            with process.stdin:
                process.stdin.write(stdin)
        self.processes[name] = process
        return process

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: install it (apt-get install redis-server)")
        options = {
            "port": str(self.redis_port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "yes" if self.redis_appendonly else "no",
            "maxmemory-policy": "noeviction",
            "dir": str(self.log_dir),
        }
        argv = [binary, "-"]  # "-": more config on standard input, so the password is not in ps
        for name, value in options.items():
            argv += [f"--{name}", value]
        self._spawn("redis", argv, stdin=f"requirepass {self.redis_password}\n".encode())
        client = redis.Redis.from_url(self.redis_url)
        self._wait("redis", lambda: bool(client.ping()))

    def restart_redis(self, down_for: float = 0.0) -> None:
        """Stop redis-server (it writes its append-only file on the way out), start it again."""
        process = self.processes.pop("redis")
        process.send_signal(signal.SIGTERM)
        _reap([process], grace=20.0)
        time.sleep(down_for)
        self._start_redis()

    def _start_s3(self) -> None:
        self._spawn(
            "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)]
        )
        self._wait("s3", lambda: _http_ok(f"{self.s3_endpoint}/moto-api/"))

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start one more worker process (concurrency 1) consuming both queues; env overrides."""
        argv = [sys.executable, "-m", "producer.cli", "worker", "--name", f"{name}@%h"]
        return self._spawn(name, [*argv, "--concurrency", "1"], env)

    def start_expander(self) -> subprocess.Popen[bytes]:
        """Start the expander (``blurq expander``: prefix and manifest batches, the sweep)."""
        return self._spawn("expander", [sys.executable, "-m", "producer.cli", "expander"])

    def _start_flower(self) -> None:
        # blurq flower reads its credentials from BLURQ_FLOWER_BASIC_AUTH (environment()).
        argv = [sys.executable, "-m", "producer.cli", "flower", "--port", str(self.flower_port)]
        self._spawn("flower", [*argv, "--address", "127.0.0.1"])
        ready = f"{self.flower_url}/api/tasks"
        self._wait("flower", lambda: _http_ok(ready, self.flower_headers))

    def _start_api(self) -> None:
        argv = [sys.executable, "-m", "producer.cli", "api", "--port", str(self.api_port)]
        self._spawn("api", [*argv, "--host", "127.0.0.1"])
        self._wait("api", lambda: _http_ok(f"{self.api_url}/openapi.json"))

    def wait_for_workers(self, count: int | None = None, timeout: float = 120.0) -> None:
        """Block until count workers answer a ping."""
        from infra.celery_app import create_app

        app = create_app(self.settings())
        expected = self.workers if count is None else count
        self._wait("workers", lambda: len(app.control.ping(timeout=1.0) or []) >= expected, timeout)

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for other, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{other} exited early; see {self.log_dir}/{other}.log")
            try:
                if ready():
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"{name} did not become ready in {timeout:.0f} s; logs in {self.log_dir}"
        )

    def stop(self) -> None:
        """Stop what was started: workers, Flower, API first (warm shutdown), then S3 and Redis."""
        services = ("s3", "redis")
        front = [p for name, p in self.processes.items() if name not in services]
        back = [p for name, p in self.processes.items() if name in services]
        for group in (front, back):
            for process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            _reap(group, grace=20.0)
        self.processes.clear()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started the stack dies.

    Without it a test run killed mid-way (timeout, out of memory) leaves whole stacks behind.
    Linux only; elsewhere the children outlive a killed parent as before.
    """
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _reap(processes: list[subprocess.Popen[bytes]], *, grace: float) -> None:
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=2) as response:
        return bool(response.status == 200)
