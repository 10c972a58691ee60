"""The HTTP client that embedding services are called through: JSON POSTs with retries.

Retried: 408, 429, 500, 502, 503, 504, timeouts and dropped connections, with exponential backoff
and full jitter, honouring ``Retry-After`` (seconds or an HTTP date) and ``retry-after-ms``. Not
retried: any other 4xx (a bad key, a too-long input, an unknown model), raised at once with the
provider's own message. Api keys travel in headers only and are scrubbed from every message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Callable, ClassVar, Iterable

import httpx

from vecmig.config import add_secret
from vecmig.embed.base import Embedder, EmbedderError, Settings, one_line

log = logging.getLogger("vecmig.embed")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
HINTS = {
    401: "check `api_key` (or the provider's API key variable)",
    403: "check that `api_key` may use this model",
    404: "check `base_url` and `model`",
}


@dataclass
class RetryPolicy:
    """How long and how often a request is tried. Each key may be set in the embedder's section."""

    timeout: float = 60.0  #: seconds for one request
    max_retries: int = 6  #: retries after the first try
    retry_backoff: float = 0.5  #: ceiling of the first wait; doubles each retry (full jitter)
    retry_backoff_max: float = 30.0  #: ceiling of any one wait without Retry-After
    max_retry_time: float = 600.0  #: give up rather than wait past this many seconds after the first try

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        d = cls()
        return cls(
            timeout=settings.float("timeout", d.timeout, minimum=0.001),
            max_retries=settings.int("max_retries", d.max_retries, minimum=0),
            retry_backoff=settings.float("retry_backoff", d.retry_backoff),
            retry_backoff_max=settings.float("retry_backoff_max", d.retry_backoff_max),
            max_retry_time=settings.float("max_retry_time", d.max_retry_time),
        )

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**retry)] (retry counts from 0)."""
        return random.uniform(0.0, min(self.retry_backoff_max, self.retry_backoff * (2.0**retry)))


def retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``Retry-After``; None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def provider_message(response: httpx.Response) -> str:
    """The service's own explanation from an error body (OpenAI, Cohere, Voyage, TEI, FastAPI shapes)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return one_line(text, 200) if text else response.reason_phrase
    for candidate in _messages(body):
        if candidate:
            return one_line(candidate, 300)
    return one_line(json.dumps(body), 200)


def _messages(body: Any) -> Iterable[str]:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            yield str(err.get("message") or "")
        elif isinstance(err, str):
            yield err
        for key in ("message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                yield value
            elif isinstance(value, list) and value and isinstance(value[0], dict):  # FastAPI validation
                yield "; ".join(str(v.get("msg", v)) for v in value)
    elif isinstance(body, str):
        yield body


class HttpClient:
    """POSTs JSON to one service for one embedder; thread-safe (one connection pool)."""

    def __init__(
        self,
        where: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy | None = None,
        secrets: Iterable[str | None] = (),
        pool_size: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        self.where = where
        self.policy = policy or RetryPolicy()
        self.secrets = [s for s in secrets if s]
        self.sleep = sleep
        try:
            url = httpx.URL(base_url)
        except Exception:
            raise EmbedderError(f"{where} base_url: {base_url!r} is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise EmbedderError(f"{where} base_url: {self._scrub(base_url)!r} must start with http:// or https://")
        self.base_url = str(url).rstrip("/")
        from vecmig import __version__

        self._client = httpx.Client(
            headers={"user-agent": f"vecmig/{__version__}", **(headers or {})},
            timeout=httpx.Timeout(self.policy.timeout, connect=min(10.0, self.policy.timeout)),
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def post_json(self, path: str, body: dict[str, Any], *, params: dict[str, str] | None = None) -> Any:
        """The decoded JSON answer to a POST; retried as the policy says; EmbedderError otherwise."""
        url = self.url(path)
        shown = self._shown(url)
        policy = self.policy
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client.post(url, json=body, params=params)
            except _RETRY_ERRORS as e:
                problem = f"{_error_name(e)}{': ' + one_line(str(e), 160) if str(e) else ''}"
                wait = None
            except httpx.HTTPError as e:
                raise EmbedderError(f"{self.where} POST {shown}: {self._scrub(one_line(str(e)))}") from None
            else:
                if response.status_code < 400:
                    return self._decode(response, shown)
                message = self._scrub(provider_message(response))
                status = f"{response.status_code} {response.reason_phrase}".strip()
                if response.status_code not in RETRY_STATUSES:
                    hint = HINTS.get(response.status_code)
                    raise EmbedderError(f"{self.where} POST {shown} -> {status}: {message}{': ' + hint if hint else ''}")
                problem = f"{status}: {message}"
                wait = retry_after(response.headers)
            retry = attempt - 1
            elapsed = time.monotonic() - started
            if wait is None:
                wait = policy.backoff(retry)
            if retry >= policy.max_retries or elapsed + wait > policy.max_retry_time:
                why = (
                    f"the service asks to wait {wait:.0f}s more, past max_retry_time = {policy.max_retry_time:g}"
                    if retry < policy.max_retries
                    else "raise `max_retries` or try again later"
                )
                raise EmbedderError(
                    f"{self.where} POST {shown} failed after {attempt} attempt{'s' if attempt > 1 else ''} "
                    f"in {elapsed:.1f}s, last: {problem}: {why}"
                )
            log.info("%s POST %s: %s; retry %d in %.2fs", self.where, shown, problem, attempt, wait)
            self.sleep(wait)

    def _decode(self, response: httpx.Response, shown: str) -> Any:
        try:
            return response.json()
        except ValueError:
            sample = one_line(response.text, 80) or "an empty body"
            raise EmbedderError(
                f"{self.where} POST {shown} -> {response.status_code}: the answer is not JSON ({self._scrub(sample)!r}): "
                "check that `base_url` points at the embeddings API"
            ) from None

    def _shown(self, url: str) -> str:
        """The URL as messages show it: no credentials, no query string."""
        u = httpx.URL(url)
        port = f":{u.port}" if u.port else ""
        return f"{u.scheme}://{u.host}{port}{u.path}"

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _error_name(e: Exception) -> str:
    if isinstance(e, httpx.TimeoutException):
        return "timed out"
    if isinstance(e, httpx.ConnectError):
        return "could not connect"
    return type(e).__name__



class HttpEmbedder(Embedder):
    """An embedder behind an HTTP API: ``base_url``, an api key, the retry policy, a pooled client."""

    default_base_url: ClassVar[str] = ""
    #: environment variables the api key is read from when the section has no ``api_key``
    api_key_env: ClassVar[tuple[str, ...]] = ()
    default_batch_size = 128
    default_concurrency = 4

    def configure(self, settings: Settings) -> None:
        self.base_url = (settings.str("base_url", self.default_base_url) or "").rstrip("/")
        key = settings.str("api_key")
        if key is None:
            key = next((os.environ[v] for v in self.api_key_env if os.environ.get(v)), None)
        add_secret(key)
        self.api_key = key
        if not key and self.base_url == self.default_base_url.rstrip("/") and self.api_key_env:
            raise settings.error(
                "api_key", f"not set: export {self.api_key_env[0]} or add `api_key = ${{{self.api_key_env[0]}}}` to the section"
            )
        self.policy = RetryPolicy.from_settings(settings)
        self._client: HttpClient | None = None

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def client(self) -> HttpClient:
        with self._lock:
            if self._client is None:
                self._client = HttpClient(
                    self.where, self.base_url, headers=self.auth_headers(), policy=self.policy,
                    secrets=[self.api_key], pool_size=max(self.concurrency, 1),
                )
            return self._client

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()
            self._client = None

    def malformed(self, what: str) -> EmbedderError:
        return EmbedderError(f"{self.where} {self.base_url}: malformed answer: {what}: check that `base_url` is an embeddings API compatible with {self.provider}")
