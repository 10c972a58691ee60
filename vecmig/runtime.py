"""What applications import: ``Router``, which writes and searches a logical name (``products``)
wherever the routing table (``vecmig/routing.py``) says, with the right embedder for each target.

    from vecmig.runtime import Router

    router = Router.open("products")                 # ./vecmig.ini (or $VECMIG_CONFIG), or a Config
    router.upsert([{"id": 1, "payload": {"title": "Red shoes", "price": 40}}])
    hits = router.search("shoes for running", limit=5)   # [(id, score, payload), ...]
    router.delete([1])

During a model switch the migration turns dual-write on (``dual_write``), backfills, and cuts reads
over (``route_reads``); the application's code stays the same. Queries are always embedded with the
read target's embedder, so the query model switches with the read target and can't be forgotten.

The route is cached for ``ttl`` seconds (``routing_ttl`` in vecmig.ini) and re-read when older.
Ordering guarantees of writes (they are what backfill, reconcile and verify rely on):

* ``upsert`` writes the source (the first write target) before the others, and the others only once
  the source write succeeded, so a point never exists in a new target alone while it is created.
  Targets in one collection (vectors of an in-place switch) are written together, in one request.
* ``delete`` goes the other way: the other targets first, the source last.
* A write is complete against a route no older than ``ttl`` when it returns: if the route it used
  was loaded more than ``ttl`` before the write finished (a slow embedder, say), the route is
  re-read and, when its write targets changed meanwhile, the write is done again on the new ones.
  A write that failed (a target dropped meanwhile) is also retried once the route has changed.
  Together with the runner's wait of one ``routing_ttl`` after a change of write targets, a write
  that lands in the source after that wait has also gone to every new target. That holds while an
  application's ``ttl`` is no longer than the ``routing_ttl`` the migrations run with (the same
  vecmig.ini gives both the same value).

Importing this module imports no client library and no model library: the store's client is
imported on ``Router.open``, an embedder's library on its first use.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vecmig.datapath.points import as_stored, embed_for_store
from vecmig.datapath.text import TEXT_HASH_FIELD, TemplateError, TextTemplate, text_hash, text_hash_field
from vecmig.errors import BackendError
from vecmig.routing import Route, RoutingError, RoutingTable, Target
from vecmig.schema import Point

#: how many times one write follows a route that changed under it before giving up
MAX_ROUTE_CHANGES = 5
#: seconds a route is cached when neither ``ttl`` nor a config says
DEFAULT_TTL = 5.0

__all__ = ["Router", "RoutingError"]


def as_point(value: Point | Mapping[str, Any]) -> Point:
    """A Point from a Point or a mapping ``{"id", "payload", "vectors"}``."""
    if isinstance(value, Point):
        return value
    if not isinstance(value, Mapping) or "id" not in value:
        raise TypeError(f"a point is a vecmig.schema.Point or a mapping with an 'id', not {value!r}")
    return Point(value["id"], dict(value.get("payload") or {}), dict(value.get("vectors") or {}))


def router_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The application's payload without text-hash fields: those are the Router's to write."""
    return {k: v for k, v in payload.items() if not (k == TEXT_HASH_FIELD or k.startswith(TEXT_HASH_FIELD + "_"))}


class Router:
    """Reads and writes one logical name through the routing table; thread-safe.

    Build it with ``Router.open(name, config)`` (it connects, and closes the connection on
    ``close()``), or around a connected backend with ``Router(backend, name, config=...)``.
    ``embedders`` ({name: Embedder}) overrides or adds embedders; the others are loaded from the
    config's ``[embedder:NAME]`` sections, once per name. ``clock`` (default ``time.monotonic``)
    is what the cache's age is measured with.
    """

    def __init__(
        self,
        backend,
        name: str,
        *,
        config=None,
        records=None,
        ttl: float | None = None,
        embedders: Mapping[str, Any] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.backend = backend
        self.name = name
        self.config = config
        if records is None:
            state = getattr(config, "state_collection", None) or backend.default_state_collection
            records = backend.records(state)
        self.table = RoutingTable(records)
        if ttl is None:
            ttl = getattr(config, "routing_ttl", DEFAULT_TTL) if config is not None else DEFAULT_TTL
        self.ttl = float(ttl)
        self._clock = clock
        self._embedders: dict[str, Any] = dict(embedders or {})
        self._embedders_lock = threading.Lock()
        self._templates: dict[str, TextTemplate] = {}
        self._route_lock = threading.Lock()
        self._route: Route | None = None
        self._loaded_at = 0.0
        self._owns_backend = False

    @classmethod
    def open(cls, name: str, config=None, *, url: str | None = None, ttl: float | None = None,
             embedders: Mapping[str, Any] | None = None) -> "Router":
        """Connect to the store of ``config`` (a Config, a path to vecmig.ini, or None for
        ``$VECMIG_CONFIG`` / ``./vecmig.ini``); ``url`` overrides the config's store URL."""
        from vecmig.backends import connect
        from vecmig.config import Config

        if isinstance(config, Config):
            cfg = dataclasses.replace(config, url=url) if url else config
        else:
            cfg = Config.load(config, url=url)
        router = cls(connect(cfg), name, config=cfg, ttl=ttl, embedders=embedders)
        router._owns_backend = True
        return router

    def close(self) -> None:
        """Close the store connection if ``open`` made it."""
        if self._owns_backend:
            self.backend.close()
            self._owns_backend = False

    def __enter__(self) -> "Router":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the route ---------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() if self._clock is not None else time.monotonic()

    def route(self) -> Route:
        """The route: the cached one while it is younger than ``ttl``, else read again."""
        return self._cached()[0]

    def refresh(self) -> Route:
        """Read the route now, whatever the cache's age."""
        with self._route_lock:
            return self._load()[0]

    def _cached(self) -> tuple[Route, float]:
        with self._route_lock:
            if self._route is None or self.now() - self._loaded_at >= self.ttl:
                return self._load()
            return self._route, self._loaded_at

    def _load(self) -> tuple[Route, float]:
        started = self.now()  # before the read: the age of what it returns is never understated
        route = self.table.get(self.name)
        if route is None:
            raise RoutingError(
                f"route {self.name!r} does not exist in state collection {self.table.records.name!r}: apply the "
                "revision with its dual_write or route_reads, or check the store URL and state_collection"
            )
        self._route, self._loaded_at = route, started
        return route, started

    def _follow(self, part: Callable[[Route], Any], action: Callable[[Route], Any], *, fresh_at_end: bool) -> Any:
        """``action(route)``, done again on a newer route when it failed and ``part`` of the route has
        changed since; with ``fresh_at_end`` also when the route it used is older than ``ttl`` by the
        time it is done and ``part`` changed meanwhile (see the module docstring)."""
        route, loaded_at = self._cached()
        for _ in range(MAX_ROUTE_CHANGES):
            try:
                result, failure = action(route), None
            except BackendError as e:
                result, failure = None, e
            if failure is None and (not fresh_at_end or self.now() - loaded_at < self.ttl):
                return result
            with self._route_lock:
                fresh, loaded_at = self._load()
            if part(fresh) == part(route):
                if failure is not None:
                    raise failure
                return result
            route = fresh
        raise RoutingError(f"route {self.name!r} changed {MAX_ROUTE_CHANGES} times during one call: try again")

    # embedders and texts -----------------------------------------------------------------------

    def embedder(self, name: str):
        """The embedder ``name``: given to the Router, or loaded from the config once."""
        with self._embedders_lock:
            found = self._embedders.get(name)
            if found is None:
                if self.config is None:
                    raise RoutingError(f"route {self.name!r} needs embedder {name!r}: give the Router a config with [embedder:{name}] or embedders={{...}}")
                from vecmig.embed import load_embedder

                found = self._embedders[name] = load_embedder(name, self.config)
            return found

    def _template(self, source: str) -> TextTemplate:
        template = self._templates.get(source)
        if template is None:
            template = self._templates[source] = TextTemplate(source)
        return template

    # writes ------------------------------------------------------------------------------------

    def upsert(self, points: Iterable[Point | Mapping[str, Any]]) -> None:
        """Write whole points (id, payload, optional precomputed ``vectors`` by vector name) to every
        write target, the source first, each target's vector made by its own embedder from its own
        text template, with the text's hash next to it (the field backfill and verify use)."""
        points = [as_point(p) for p in points]
        if points:
            self._follow(lambda r: r.writes, lambda route: self._upsert(route, points), fresh_at_end=True)

    def delete(self, ids: Iterable[int | str]) -> None:
        """Delete points by id from every write target: the others first, the source last."""
        ids = list(ids)
        if ids:
            self._follow(lambda r: r.writes, lambda route: self._delete(route, ids), fresh_at_end=True)

    def _upsert(self, route: Route, points: list[Point]) -> None:
        groups = self._groups(route)
        self._check_precomputed(route, points)
        memo: dict[tuple, dict[int, list[float]]] = {}
        vectors = {t: self._vectors(t, points, memo) for t in route.writes}
        for collection, targets in groups.items():
            out = []
            for i, p in enumerate(points):
                payload = router_payload(p.payload)
                point_vectors = {}
                for t in targets:
                    point_vectors[t.vector], text = vectors[t][i]
                    if text is not None:
                        payload[text_hash_field(t.vector)] = text_hash(text)
                out.append(Point(p.id, payload, point_vectors))
            self.backend.upsert(collection, out)

    def _delete(self, route: Route, ids: list) -> None:
        for collection in reversed(list(self._groups(route))):
            self.backend.delete(collection, ids)

    def _groups(self, route: Route) -> dict[str, list[Target]]:
        """Write targets by collection, the source's collection first."""
        if not route.writes:
            raise RoutingError(f"route {self.name!r} has no write targets: apply a dual_write for it")
        groups: dict[str, list[Target]] = {}
        for t in route.writes:
            groups.setdefault(t.collection, []).append(t)
        return groups

    def _vectors(self, target: Target, points: list[Point], memo: dict) -> list[tuple[Any, str | None]]:
        """(vector, rendered text or None) per point for one target: precomputed or embedded.
        ``memo`` keeps what was embedded for another target with the same embedder and template."""
        texts: list[str | None] = [None] * len(points)
        if target.text:
            template = self._template(target.text)
            for i, p in enumerate(points):
                try:
                    texts[i] = template.render(p)
                except TemplateError as e:
                    raise RoutingError(f"route {self.name!r}, write target {target.label!r}: {e}") from None
        missing = [i for i, p in enumerate(points) if target.vector not in p.vectors]
        embedded: dict[int, Any] = {}
        if missing:
            if not (target.text and target.embedder):
                raise RoutingError(
                    f"route {self.name!r}, write target {target.label!r}: point {points[missing[0]].id!r} has no vector "
                    f"{target.vector!r}, and the route gives no text template to embed: pass vectors={{{target.vector!r}: [...]}}"
                )
            key = (target.embedder, target.text, tuple(missing))
            embedded = memo.get(key) or {}
            if not embedded:
                vectors = embed_for_store(self.embedder(target.embedder), [texts[i] for i in missing])
                embedded = memo[key] = dict(zip(missing, vectors))
        return [(embedded[i] if i in embedded else as_stored(p.vectors[target.vector]), texts[i]) for i, p in enumerate(points)]

    def _check_precomputed(self, route: Route, points: list[Point]) -> None:
        """A precomputed vector names a vector the route writes, made by one model."""
        by_name: dict[str, set[str | None]] = {}
        for t in route.writes:
            by_name.setdefault(t.vector, set()).add(t.embedder)
        for p in points:
            for name in p.vectors:
                if name not in by_name:
                    have = ", ".join(repr(t.label) for t in route.writes)
                    raise RoutingError(f"route {self.name!r}: point {p.id!r} has vector {name!r}, which no write target writes ({have})")
                if len(by_name[name]) > 1:
                    raise RoutingError(
                        f"route {self.name!r}: point {p.id!r} has vector {name!r}, which write targets of different "
                        f"embedders ({', '.join(sorted(map(str, by_name[name])))}) share: leave it out, the Router embeds it"
                    )

    # reads -------------------------------------------------------------------------------------

    def search(self, text: str, limit: int = 10, filter: dict | None = None) -> list[tuple[int | str, float, dict]]:
        """The ``limit`` best points for ``text`` from the read target, as (id, score, payload); the
        query is embedded with the read target's embedder (``embed_queries``, or
        ``embed_sparse_queries`` for a sparse vector). ``filter`` is Qdrant's filter JSON on every store."""
        if not isinstance(text, str):
            raise TypeError("search takes one query text")
        return self._follow(lambda r: r.read, lambda route: self._search(route, text, limit, filter), fresh_at_end=False)

    def _search(self, route: Route, text: str, limit: int, filter: dict | None):
        read = route.read
        if read is None:
            raise RoutingError(f"route {self.name!r} has no read target: apply a route_reads for it")
        if not read.embedder:
            raise RoutingError(f"route {self.name!r}: read target {read.label!r} names no embedder for queries")
        query = embed_for_store(self.embedder(read.embedder), [text], query=True)[0]
        return self.backend.search(read.collection, read.vector, query, limit=limit, filter=filter)

    def __repr__(self) -> str:
        return f"<Router {self.name!r} ttl={self.ttl:g}s>"

