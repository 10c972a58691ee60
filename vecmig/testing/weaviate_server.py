"""A real Weaviate server for tests: built from source with Go, started on free loopback ports.

Weaviate has no pip-installable server, and the client's embedded mode downloads a release binary.
``go install`` builds ``weaviate-server`` from the Go module proxy (or a module cache) instead; the
binary is cached per version, so only the first run pays for the build (a few minutes).

    python -m vecmig.testing.weaviate_server build     # build (or find) the cached binary, print its path
    python -m vecmig.testing.weaviate_server run       # start one, print its url, stop on Ctrl-C

In Python::

    with WeaviateServer() as server:        # builds if needed, waits until ready
        cfg.url = server.url                 # weaviate://127.0.0.1:PORT?grpc_port=GRPC
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

#: Aliases need Weaviate >= 1.32; bump together with the tests that pin features to it. The newest
#: 1.38.x that ``go install`` can build from the module proxy: v1.38.15 and later need
#: github.com/weaviate/sroar v0.0.17+, whose zips proxy.golang.org refuses (403). Needs Go >= 1.26.
PINNED = "v1.38.14"
MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"
HOST = "127.0.0.1"
_PORT_NAMES = ("http", "grpc", "gossip", "data", "raft", "raft_rpc")


class WeaviateServerError(RuntimeError):
    """The server could not be built or started; the message says why and what to do."""


def cache_dir() -> Path:
    """``$VECMIG_CACHE``, else ``~/.cache/vecmig``."""
    return Path(os.environ.get("VECMIG_CACHE") or Path.home() / ".cache" / "vecmig")


def binary_path(version: str = PINNED) -> Path:
    return cache_dir() / f"weaviate-server-{version}" / "weaviate-server"


def ensure_built(version: str = PINNED) -> Path:
    """The cached ``weaviate-server`` binary of ``version``, built with ``go install`` if missing."""
    target = binary_path(version)
    if _is_executable(target):
        return target
    go = shutil.which("go")
    if go is None:
        raise WeaviateServerError(
            f"building weaviate-server {version} needs Go on PATH (https://go.dev/dl/): install it, "
            "or point VECMIG_TEST_WEAVIATE_URL at a running Weaviate (weaviate://host:8080?grpc_port=50051)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / ".build.lock"):
        if _is_executable(target):  # another process built it while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=".gobin-", dir=target.parent))
        try:
            print(f"building weaviate-server {version} with `go install` (first time only, a few minutes)...", file=sys.stderr, flush=True)
            started = time.monotonic()
            proc = subprocess.run(
                [go, "install", f"{MODULE}@{version}"],
                env={**os.environ, "GOBIN": str(staging)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.strip().splitlines()[-20:])
                raise WeaviateServerError(f"`go install {MODULE}@{version}` failed (exit {proc.returncode}):\n{tail}")
            os.replace(staging / "weaviate-server", target)
            print(f"built weaviate-server {version} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX ``flock``; no lock where that is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent first builds just race on os.replace
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def free_ports(names: tuple[str, ...] = _PORT_NAMES, udp: tuple[str, ...] = ("gossip",)) -> dict[str, int]:
    """Distinct free loopback ports, one per name; those in ``udp`` are free for UDP as well.

    Every socket is held until all ports are chosen, so the OS can't hand out one port twice.
    """
    held: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for name in names:
            for _ in range(50):
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                tcp.bind((HOST, 0))
                held.append(tcp)
                port = tcp.getsockname()[1]
                if name not in udp:
                    break
                dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    dgram.bind((HOST, port))
                except OSError:
                    dgram.close()
                    continue
                held.append(dgram)
                break
            else:
                raise WeaviateServerError(f"could not find a free TCP+UDP port for {name}")
            ports[name] = port
        return ports
    finally:
        for sock in held:
            sock.close()


class WeaviateServer:
    """One throw-away single-node Weaviate: free ports, a temp data dir, anonymous access, no modules.

    Use as a context manager, or call ``start()`` / ``stop()``. ``url`` is a vecmig store URL.
    """

    def __init__(
        self,
        binary: str | os.PathLike | None = None,
        *,
        version: str = PINNED,
        startup_timeout: float = 60.0,
        env: dict[str, str] | None = None,
        data_dir: str | os.PathLike | None = None,
    ):
        self.binary = Path(binary) if binary else None
        self.version = version
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self._given_data_dir = Path(data_dir) if data_dir else None
        self.ports: dict[str, int] = {}
        self.workdir: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def grpc_port(self) -> int:
        return self.ports["grpc"]

    @property
    def url(self) -> str:
        return f"weaviate://{HOST}:{self.http_port}?grpc_port={self.grpc_port}"

    @property
    def data_dir(self) -> Path:
        assert self.workdir is not None, "the server is not started"
        return self._given_data_dir or self.workdir / "data"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "the server is not started"
        return self.workdir / "weaviate.log"

    def environment(self) -> dict[str, str]:
        p = self.ports
        env = {
            # a clean environment: a developer's own WEAVIATE/AUTH variables must not leak in
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
            "PERSISTENCE_DATA_PATH": str(self.data_dir),
            "DEFAULT_VECTORIZER_MODULE": "none",
            "ENABLE_MODULES": "",
            "GRPC_PORT": str(p["grpc"]),
            "CLUSTER_HOSTNAME": "node1",
            # localhost mode would dial the internal RPC port at raft port + 1, ignoring
            # RAFT_INTERNAL_RPC_PORT; a single node needs none of its port conventions
            "CLUSTER_IN_LOCALHOST": "false",
            "CLUSTER_BIND_ADDR": HOST,
            "CLUSTER_GOSSIP_BIND_PORT": str(p["gossip"]),
            "CLUSTER_DATA_BIND_PORT": str(p["data"]),
            "RAFT_PORT": str(p["raft"]),
            "RAFT_INTERNAL_RPC_PORT": str(p["raft_rpc"]),
            "RAFT_JOIN": f"node1:{p['raft']}",
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "GO_PROFILING_DISABLE": "true",
            "PROMETHEUS_MONITORING_ENABLED": "false",
            "DISABLE_TELEMETRY": "true",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "text",
        }
        env.update(self.extra_env)
        return env

    def start(self) -> "WeaviateServer":
        if self.process is not None:
            return self
        binary = self.binary or ensure_built(self.version)
        self.workdir = Path(tempfile.mkdtemp(prefix="vecmig-weaviate-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = free_ports()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(binary), "--host", HOST, "--port", str(self.http_port), "--scheme", "http"],
                env=self.environment(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it cleanly
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        ready = f"http://{HOST}:{self.http_port}/v1/.well-known/ready"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise WeaviateServerError(f"weaviate-server exited with code {code} while starting; log tail:\n{self.log_tail()}")
            if _http_ok(ready) and _port_open(self.grpc_port):
                return
            time.sleep(0.2)
        raise WeaviateServerError(f"weaviate-server was not ready after {self.startup_timeout:.0f} s ({ready}); log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; removes the temp dir."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "WeaviateServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, ask for SIGTERM when the starting process dies, so a
    killed test run leaves no server behind."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via an HTTP proxy


def _http_ok(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vecmig.testing.weaviate_server", description="Build or run a throw-away Weaviate server for tests.")
    parser.add_argument("command", choices=("build", "run"), help="build: build/cache the binary and print its path; run: start a server until Ctrl-C")
    parser.add_argument("--version", default=PINNED, help=f"Weaviate version to build (default {PINNED})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server to be ready")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(ensure_built(args.version))
            return 0
        with WeaviateServer(version=args.version, startup_timeout=args.timeout) as server:
            print(f"weaviate-server {args.version} ready at {server.url}", flush=True)
            print(f"  export VECMIG_TEST_WEAVIATE_URL='{server.url}'", flush=True)
            print(f"  log: {server.log_path}  (Ctrl-C stops it and deletes its data)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
                while server.process is not None and server.process.poll() is None:
                    time.sleep(0.5)
                if server.process is not None:
                    print(f"weaviate-server exited with code {server.process.returncode}; log tail:\n{server.log_tail()}", file=sys.stderr)
                    return 1
        return 0
    except WeaviateServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
