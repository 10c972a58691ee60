"""Pick and connect a backend from a store URL. Backend modules are imported only when used."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from vecmig.errors import ConfigError

if TYPE_CHECKING:
    from vecmig.backends.base import Backend

SCHEMES = {
    "qdrant": "qdrant",
    "qdrant+http": "qdrant",
    "qdrant+https": "qdrant",
    "qdrant+local": "qdrant",
    "qdrant+memory": "qdrant",
    "weaviate": "weaviate",
    "weaviate+http": "weaviate",
    "weaviate+https": "weaviate",
}


@dataclass
class StoreURL:
    """A parsed store URL. ``path`` is only used by ``qdrant+local``."""

    raw: str
    scheme: str
    kind: str
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    @property
    def https(self) -> bool:
        return self.scheme.endswith("+https")

    def local_path(self, here: Path) -> Path | None:
        """The folder of an embedded store (relative paths are relative to ``here``), else None."""
        if self.scheme != "qdrant+local":
            return None
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else Path(here) / path

    def status_file(self, here: Path) -> Path | None:
        """Where a run on an embedded store mirrors its progress, for `vecmig status` from another
        shell (the store itself admits one process at a time)."""
        folder = self.local_path(here)
        return folder / "vecmig_status.json" if folder else None

    def __str__(self) -> str:  # never shows credentials
        if self.scheme in ("qdrant+local", "qdrant+memory"):
            return f"{self.scheme}://{self.path}"
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host}{port}"


def parse_url(url: str) -> StoreURL:
    if "://" not in url:
        raise ConfigError(f"url {url!r} has no scheme: use e.g. qdrant+local://PATH, qdrant://host:6333 or weaviate://host:8080")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"url scheme {scheme!r} is not supported: use one of {', '.join(s + '://' for s in SCHEMES)}")
    kind = SCHEMES[scheme]
    if scheme == "qdrant+local":
        if not rest:
            raise ConfigError("url qdrant+local:// needs a path: qdrant+local://.vecmig/qdrant")
        return StoreURL(url, scheme, kind, path=rest)
    if scheme == "qdrant+memory":
        return StoreURL(url, scheme, kind, path=rest)
    parts = urlsplit(f"http://{rest}")
    if not parts.hostname:
        raise ConfigError(f"url {scheme}://… has no host: write {scheme}://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"url {scheme}://{parts.hostname}: the port is not a number") from None
    return StoreURL(url, scheme, kind, host=parts.hostname, port=port, path=parts.path, query=dict(parse_qsl(parts.query)))


def connect(cfg) -> "Backend":
    """Open the store the config points at."""
    url = parse_url(cfg.url)
    if url.kind == "qdrant":
        from vecmig.backends.qdrant import QdrantBackend

        return QdrantBackend.connect(url, cfg)
    from vecmig.backends.weaviate import WeaviateBackend

    return WeaviateBackend.connect(url, cfg)
