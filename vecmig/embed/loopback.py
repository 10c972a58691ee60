"""A loopback server that speaks the OpenAI, Azure OpenAI, Cohere (v2) and Voyage embedding APIs and
answers with a real local model's vectors: for tests, benchmarks and trying vecmig without a key.

    with LoopbackEmbeddingServer(api_key="sk-test") as server:
        server.faults.extend([Fault(status=429, retry_after="1"), Fault(delay=2.0)])
        ... base_url = server.url + "/v1" ...

Faults are consumed one per request, in order; requests are recorded (without credentials).
It binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import numpy as np


@dataclass
class Fault:
    """What the next request gets instead of a normal answer."""

    status: int | None = None  #: answer with this status and the provider's error body
    message: str = "injected failure"
    retry_after: str | None = None  #: a Retry-After header value
    delay: float = 0.0  #: sleep before answering (a slow server: the client times out)
    body: bytes | None = None  #: answer 200 with this raw body (malformed answers)
    drop: bool = False  #: close the connection without answering


@dataclass
class Request:
    path: str
    body: Any
    authorized: bool


class LoopbackEmbeddingServer:
    """Serves ``/v1/embeddings`` (OpenAI, Voyage), ``/openai/deployments/D/embeddings`` (Azure)
    and ``/v2/embed`` (Cohere) on 127.0.0.1 from an Embedder (the static model by default)."""

    def __init__(self, embedder=None, *, api_key: str | None = None, max_input_chars: int = 8000, max_batch: int = 2048,
                 latency: float = 0.0):
        if embedder is None:
            from vecmig.embed import create_embedder

            embedder = create_embedder("loopback", {"provider": "static"})
        self.embedder = embedder
        self.api_key = api_key
        self.max_input_chars = max_input_chars
        self.max_batch = max_batch
        #: seconds every answer waits first, as a provider's network round trip and queueing would
        self.latency = latency
        self.faults: deque[Fault] = deque()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LoopbackEmbeddingServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "LoopbackEmbeddingServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def vectors(self, texts: list[str], dimensions: int | None) -> list[list[float]]:
        vecs = self.embedder.embed_documents(texts)
        if dimensions:
            vecs = vecs[:, :dimensions]
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.tolist()


# the error bodies each provider sends, so that clients are tested against the real shapes
def _openai_error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _cohere_error(message: str, code: str) -> dict:
    return {"id": "loopback", "message": message}


def _voyage_error(message: str, code: str) -> dict:
    return {"detail": message}


def _handler(server: LoopbackEmbeddingServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # headers and body go out in two writes: without this, Nagle + delayed ACK add 40ms a request
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format, *args):  # quiet
            pass

        def do_POST(self):
            url = urlparse(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            api = self.api(url.path)
            if api is None:
                return self.send(404, {"error": f"no route {url.path}"})
            error = {"openai": _openai_error, "azure": _openai_error, "cohere": _cohere_error, "voyage": _voyage_error}[api]
            try:
                body = json.loads(raw)
            except ValueError:
                return self.send(400, error("We could not parse the JSON body of your request.", "invalid_json"))
            authorized = self.authorized(api)
            server.record(Request(url.path, body, authorized))
            if server.latency:
                time.sleep(server.latency)
            fault = server.next_fault()
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault.body is not None:
                    return self.send_raw(200, fault.body)
                if fault.status:
                    headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
                    return self.send(fault.status, error(fault.message, "injected"), headers)
            if not authorized:
                message = {
                    "openai": "Incorrect API key provided. You can find your API key at your account's API keys page.",
                    "azure": "Access denied due to invalid subscription key or wrong API endpoint.",
                    "cohere": "invalid api token",
                    "voyage": "Provided API key is invalid.",
                }[api]
                return self.send(401, error(message, "invalid_api_key"))
            if api == "cohere":
                texts, dims = body.get("texts"), body.get("output_dimension")
            else:
                texts, dims = body.get("input"), body.get("dimensions") or body.get("output_dimension")
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return self.send(400, error("'input' must be a string or a list of strings", "invalid_input"))
            if len(texts) > server.max_batch:
                return self.send(400, error(f"batch of {len(texts)} inputs is over the limit of {server.max_batch}", "batch_too_large"))
            longest = max((len(t) for t in texts), default=0)
            if longest > server.max_input_chars:
                return self.send(400, error(
                    f"This model's maximum context length is {server.max_input_chars} tokens, however you requested "
                    f"{longest} tokens. Please reduce your prompt.", "context_length_exceeded"))
            vectors = server.vectors(texts, dims)
            model = body.get("model", "loopback")
            if api == "cohere":
                answer = {"id": "loopback", "embeddings": {"float": vectors}, "texts": texts,
                          "meta": {"billed_units": {"input_tokens": sum(len(t.split()) for t in texts)}}, "response_type": "embeddings_by_type"}
            else:
                answer = {"object": "list", "model": model,
                          "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                          "usage": {"prompt_tokens": sum(len(t.split()) for t in texts), "total_tokens": sum(len(t.split()) for t in texts)}}
            self.send(200, answer)

        def api(self, path: str) -> str | None:
            if path == "/v2/embed":
                return "cohere"
            if path.startswith("/openai/deployments/") and path.endswith("/embeddings"):
                return "azure"
            if path.endswith("/embeddings"):
                return "voyage" if path.startswith("/voyage/") else "openai"
            return None

        def authorized(self, api: str) -> bool:
            if server.api_key is None:
                return True
            if api == "azure":
                return self.headers.get("api-key") == server.api_key
            return self.headers.get("authorization") == f"Bearer {server.api_key}"

        def send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self.send_raw(status, json.dumps(payload).encode(), headers)

        def send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                self.close_connection = True

    return Handler


def main(argv: list[str] | None = None) -> None:
    """``python -m vecmig.embed.loopback [--provider static|onnx] [--api-key KEY] [--latency S]``: serve
    until interrupted; the first line printed is the server's URL."""
    import argparse

    ap = argparse.ArgumentParser(description="a loopback embeddings API (OpenAI, Azure, Cohere, Voyage formats)")
    ap.add_argument("--provider", default="static", help="the local model that answers: static or onnx")
    ap.add_argument("--api-key", default=None, help="require this key (default: none)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds each answer waits first, like a provider's round trip")
    args = ap.parse_args(argv)
    from vecmig.embed import create_embedder

    server = LoopbackEmbeddingServer(create_embedder("loopback", {"provider": args.provider}), api_key=args.api_key,
                                    latency=args.latency)
    print(server.url, flush=True)
    try:
        server._httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
