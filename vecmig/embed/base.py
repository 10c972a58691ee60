"""The embedder protocol: a named model that turns batches of texts into vectors.

Providers implement one method, ``embed_batch(texts, kind)``; this base class does what every
provider needs the same way: reading its ``[embedder:NAME]`` section, splitting work into batches,
running batches on a bounded thread pool (in order), checking the shape of what comes back,
normalizing, and the fingerprint recorded with the data so that queries use the same model.

Sparse embedders (term weights, e.g. BM25) subclass ``SparseEmbedder`` and implement
``embed_sparse_batch`` instead; they fill sparse vectors only, and have no dimension.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Sequence

import numpy as np

from vecmig.errors import EmbedderError, VecmigError  # noqa: F401 - EmbedderError is re-exported

DOCUMENT, QUERY = "document", "query"
KINDS = (DOCUMENT, QUERY)
#: embedded once per embedder to fingerprint it and to learn its dimension
PROBE_TEXT = "vecmig probe: the quick brown fox jumps over the lazy dog."
#: decimals the probe vector is rounded to before hashing (hides float noise across machines)
PROBE_DECIMALS = 2
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SparseVector(NamedTuple):
    """A sparse vector: term indices (unique) and their weights, as sparse embedders return them."""

    indices: list[int]
    values: list[float]


class Settings:
    """The keys of one ``[embedder:NAME]`` section, read with type checks and one-line errors."""

    def __init__(self, name: str, values: dict[str, str], here: Path | None = None):
        self.name = name
        self.values = dict(values)
        self.here = here or Path.cwd()
        self.known: set[str] = {"provider"}

    @property
    def where(self) -> str:
        return f"[embedder:{self.name}]"

    def error(self, key: str, problem: str) -> EmbedderError:
        return EmbedderError(f"{self.where} {key}: {problem}")

    def str(self, key: str, default: str | None = None, *, required: bool = False, choices: Sequence[str] = ()) -> str | None:
        self.known.add(key)
        value = self.values.get(key, "").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":  # "query: " keeps its space
            value = value[1:-1]
        if not value:
            if required:
                raise self.error(key, f"is required: add `{key} = ...` to the section")
            return default
        if choices and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def int(self, key: str, default: int | None = None, *, minimum: int = 1) -> int | None:
        raw = self.str(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.error(key, f"{raw!r} is not a whole number") from None
        if value < minimum:
            raise self.error(key, f"{value} is less than {minimum}")
        return value

    def float(self, key: str, default: float | None = None, *, minimum: float = 0.0) -> float | None:
        raw = self.str(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self.error(key, f"{raw!r} is not a number") from None
        if value < minimum:
            raise self.error(key, f"{value} is less than {minimum}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        raw = self.str(key)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise self.error(key, f"{raw!r} is not true or false")

    def path(self, key: str) -> Path | None:
        raw = self.str(key)
        if raw is None:
            return None
        p = Path(raw).expanduser()
        return p if p.is_absolute() else self.here / p

    def check_unknown(self) -> None:
        unknown = sorted(set(self.values) - self.known)
        if unknown:
            from difflib import get_close_matches

            close = get_close_matches(unknown[0], self.known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(self.known))}"
            raise self.error(unknown[0], f"unknown key for provider {self.values.get('provider')!r}: {hint}")


class Embedder(ABC):
    """A named embedding model. Subclasses set ``provider`` and implement ``embed_batch``."""

    provider: ClassVar[str] = ""
    #: True for embedders of sparse vectors (``SparseEmbedder``): they fill sparse vectors only
    sparse: ClassVar[bool] = False
    default_batch_size: ClassVar[int] = 64
    default_concurrency: ClassVar[int] = 1
    default_normalize: ClassVar[bool] = False

    def __init__(self, name: str, settings: Settings):
        self.name = name
        self.settings = settings
        self.model: str = settings.str("model", self.default_model()) or ""
        self._dimension = settings.int("dimension")
        self.normalize = settings.bool("normalize", self.default_normalize)
        self.batch_size = settings.int("batch_size", self.default_batch_size)
        self.concurrency = settings.int("concurrency", self.default_concurrency)
        self.document_prefix = settings.str("document_prefix", "") or ""
        self.query_prefix = settings.str("query_prefix", "") or ""
        self.configure(settings)
        settings.check_unknown()
        if not self.model:
            raise settings.error("model", "is required: add `model = ...` to the section")
        self._pool: ThreadPoolExecutor | None = None
        # `concurrency` bounds the model calls in flight across all callers (pipeline workers,
        # Router threads), not only the batches of one embed() call
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.RLock()  # loading models, clients and the pool
        self._probe_lock = threading.Lock()
        self._fingerprint: dict | None = None

    # -- what providers implement -------------------------------------------------------------

    def default_model(self) -> str | None:
        """The model used when the section names none (None: ``model`` is required)."""
        return None

    def configure(self, settings: Settings) -> None:
        """Read the provider's own keys from ``settings`` (each read marks the key as known)."""

    @abstractmethod
    def embed_batch(self, texts: list[str], kind: str) -> Any:
        """Vectors for one batch of texts (prefixes already applied), as an (n, dim) array-like."""

    def options(self) -> dict[str, Any]:
        """Provider settings that change the vectors, recorded in the fingerprint (never secrets)."""
        return {}

    def close(self) -> None:
        """Release clients, sessions and threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -- the interface callers use ------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"[embedder:{self.name}]"

    @property
    def dimension(self) -> int | None:
        """The length of the vectors: configured, or learned by embedding the probe text once
        (None for a sparse embedder: its vectors have no fixed length)."""
        if self._dimension is None and not self.sparse:
            self.fingerprint()
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors (n, dimension) float32 for texts stored in the collection."""
        return self.embed(texts, DOCUMENT)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors (n, dimension) float32 for search queries against those documents."""
        return self.embed(texts, QUERY)

    def embed(self, texts: Sequence[str], kind: str = DOCUMENT) -> np.ndarray:
        parts = self._in_batches(texts, kind, self._embed_checked)
        if not parts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        if len({p.shape[1] for p in parts}) > 1:
            dims = sorted({p.shape[1] for p in parts})
            raise EmbedderError(f"{self.where} returned vectors of different lengths ({', '.join(map(str, dims))}) in one call")
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0, norms, 1.0)
        return out

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the vectors this embedder makes; recorded in the state with the data.

        The probe text is embedded once (this is also the plan-time check that the embedder works);
        ``probe_sha256`` hashes the rounded probe vector, ``probe_head`` keeps its first values so
        that float noise from a service can be told apart from a different model.
        """
        with self._probe_lock:
            if self._fingerprint is None:
                self._fingerprint = {
                    "provider": self.provider,
                    "model": self.model,
                    "dimension": None,
                    "normalize": self.normalize,
                    "options": self.fingerprint_options(),
                    **self._probe(),
                }
            return dict(self._fingerprint)

    def _probe(self) -> dict[str, Any]:
        """The fingerprint's probe fields (and its dimension), from embedding the probe text."""
        vec = self.embed_documents([PROBE_TEXT])[0]
        if self._dimension is None:
            self._dimension = int(vec.shape[0])
        rounded = np.round(vec.astype(np.float64), PROBE_DECIMALS) + 0.0  # +0.0: no "-0.0"
        return {
            "dimension": self._dimension,
            "probe_sha256": hashlib.sha256(json.dumps(rounded.tolist()).encode()).hexdigest(),
            "probe_head": [round(float(x), 4) for x in vec[:8]],
        }

    def fingerprint_options(self) -> dict[str, Any]:
        opts = {k: v for k, v in self.options().items() if v not in (None, "")}
        if self.document_prefix:
            opts["document_prefix"] = self.document_prefix
        if self.query_prefix:
            opts["query_prefix"] = self.query_prefix
        return opts

    # -- internals ----------------------------------------------------------------------------

    def _in_batches(self, texts: Sequence[str], kind: str, embed_one) -> list[Any]:
        """``embed_one(batch, kind)`` over ``texts`` (prefixed) in batches of ``batch_size``, on up to
        ``concurrency`` threads; the results in order, one per batch ([] for no texts)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts, not a single string")
        prefix = self.document_prefix if kind == DOCUMENT else self.query_prefix
        items = [prefix + t for t in texts] if prefix else list(texts)
        size = self.batch_size
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        if len(batches) <= 1 or self.concurrency <= 1:
            return [embed_one(b, kind) for b in batches]
        return list(self._executor().map(lambda b: embed_one(b, kind), batches))

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"embed-{self.name}")
            return self._pool

    def _embed_checked(self, batch: list[str], kind: str) -> np.ndarray:
        try:
            with self._slots:
                raw = self.embed_batch(batch, kind)
        except VecmigError:
            raise
        except Exception as e:  # a model library's own error: one line, with the embedder's name
            raise EmbedderError(f"{self.where} {self.provider} model {self.model!r} failed: {type(e).__name__}: {one_line(str(e))}") from e
        try:
            arr = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError):
            raise EmbedderError(f"{self.where} returned something that is not a list of vectors") from None
        if arr.ndim != 2 or arr.shape[0] != len(batch):
            raise EmbedderError(
                f"{self.where} returned {arr.shape[0] if arr.ndim else 0} vectors of shape {arr.shape[1:]} for {len(batch)} texts"
            )
        expected = self._dimension
        if expected is not None and arr.shape[1] != expected:
            raise EmbedderError(
                f"{self.where} dimension: the model returned {arr.shape[1]}-d vectors, not {expected}: "
                f"set `dimension = {arr.shape[1]}` or remove it to probe"
            )
        if not np.isfinite(arr).all():
            raise EmbedderError(f"{self.where} returned vectors with NaN or infinite values")
        return arr

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.provider}:{self.model}>"


class SparseEmbedder(Embedder):
    """An embedder of sparse vectors (term index -> weight). Subclasses implement
    ``embed_sparse_batch``; ``embed_sparse_documents``/``embed_sparse_queries`` are what callers use,
    and the dense ``embed*`` methods refuse. The keys ``dimension`` and ``normalize`` don't apply."""

    sparse = True

    def __init__(self, name: str, settings: Settings):
        super().__init__(name, settings)
        if self._dimension is not None:
            raise settings.error("dimension", "a sparse embedder has no dimension: remove the key")
        if self.normalize:
            raise settings.error("normalize", "sparse term weights are not normalized: remove the key")

    @abstractmethod
    def embed_sparse_batch(self, texts: list[str], kind: str) -> list[tuple[Sequence[int], Sequence[float]]]:
        """(indices, values) per text of one batch (prefixes already applied)."""

    def embed_batch(self, texts: list[str], kind: str) -> Any:
        raise self._dense_refused()

    def embed(self, texts: Sequence[str], kind: str = DOCUMENT) -> np.ndarray:
        raise self._dense_refused()

    def _dense_refused(self) -> EmbedderError:
        return EmbedderError(f"{self.where} makes sparse vectors: use embed_sparse_documents / embed_sparse_queries")

    def embed_sparse_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """Sparse vectors for texts stored in the collection."""
        return self.embed_sparse(texts, DOCUMENT)

    def embed_sparse_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """Sparse vectors for search queries against those documents."""
        return self.embed_sparse(texts, QUERY)

    def embed_sparse(self, texts: Sequence[str], kind: str = DOCUMENT) -> list[SparseVector]:
        return [v for part in self._in_batches(texts, kind, self._embed_sparse_checked) for v in part]

    def _probe(self) -> dict[str, Any]:
        vec = self.embed_sparse_documents([PROBE_TEXT])[0]
        order = sorted(range(len(vec.indices)), key=vec.indices.__getitem__)
        pairs = [[vec.indices[i], round(vec.values[i], PROBE_DECIMALS) + 0.0] for i in order]
        return {
            "sparse": True,
            "probe_sha256": hashlib.sha256(json.dumps(pairs).encode()).hexdigest(),
            "probe_head": [round(float(vec.values[i]), 4) for i in order[:8]],
        }

    def _embed_sparse_checked(self, batch: list[str], kind: str) -> list[SparseVector]:
        try:
            with self._slots:
                raw = self.embed_sparse_batch(batch, kind)
        except VecmigError:
            raise
        except Exception as e:
            raise EmbedderError(f"{self.where} {self.provider} model {self.model!r} failed: {type(e).__name__}: {one_line(str(e))}") from e
        if len(raw) != len(batch):
            raise EmbedderError(f"{self.where} returned {len(raw)} sparse vectors for {len(batch)} texts")
        out = []
        for indices, values in raw:
            vec = SparseVector([int(i) for i in indices], [float(v) for v in values])
            if len(vec.indices) != len(vec.values) or len(set(vec.indices)) != len(vec.indices) or not all(0 <= i < 1 << 32 for i in vec.indices):
                raise EmbedderError(f"{self.where} returned a sparse vector whose indices are not unique integers in [0, 2^32), one per value")
            if not np.isfinite(vec.values).all():
                raise EmbedderError(f"{self.where} returned sparse vectors with NaN or infinite values")
            out.append(vec)
        return out


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def missing_extra(where: str, module: str, extra: str) -> EmbedderError:
    """The error for a provider whose optional library is not installed."""
    return EmbedderError(f"{where} provider needs the {module!r} package: pip install 'vecmig[{extra}]'")
