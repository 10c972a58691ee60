"""Plan-time checks of embedders, and comparing the fingerprints recorded with the data.

At plan time each embedder a revision names is probed once (``probe``): that proves it loads and
answers, and gives its dimension, which must equal the target vector's size
(``check_vector_size``). A mismatch is a PlanError before the first write, not a failure an hour
into a backfill; so is a sparse embedder (BM25) for a dense vector, or a dense one for a sparse
vector. ``fingerprint_changes`` tells whether the model behind a name has changed since
its fingerprint was recorded.
"""

from __future__ import annotations

from typing import Any

from vecmig.errors import PlanError
from vecmig.schema import SPARSE

#: largest difference between recorded and current probe values still taken as float noise
PROBE_TOLERANCE = 0.01


def probe(embedder) -> dict[str, Any]:
    """The embedder's fingerprint: embeds the probe text once per process, then cached."""
    return embedder.fingerprint()


def check_vector_size(config, embedder_name: str, size: int | str | None, what: str) -> dict[str, Any]:
    """Probe ``embedder_name`` for the vector ``what``; PlanError unless its dimension is ``size``.

    With ``size`` None (left out of the revision) any dimension passes: the caller takes
    ``fingerprint["dimension"]`` as the size. ``size`` SPARSE (a sparse vector) needs a sparse
    embedder, any other size a dense one. Returns the fingerprint.
    """
    from vecmig.embed import load_embedder

    fingerprint = probe(load_embedder(embedder_name, config))
    model = f"{fingerprint['provider']} {fingerprint['model']}"
    if fingerprint.get("sparse") and size != SPARSE:
        raise PlanError(
            f"{what}: embedder {embedder_name!r} ({model}) makes sparse vectors: it fills a sparse vector only "
            "(add_vector with `sparse: true`, or `sparse_vectors` of create_collection); use a dense embedder here"
        )
    if size == SPARSE:
        if not fingerprint.get("sparse"):
            raise PlanError(f"{what}: the vector is sparse and embedder {embedder_name!r} ({model}) makes dense vectors: use a sparse embedder (provider = bm25)")
        return fingerprint
    dim = fingerprint["dimension"]
    if size is not None and size != dim:
        raise PlanError(
            f"{what}: size is {size} but embedder {embedder_name!r} ({fingerprint['provider']} "
            f"{fingerprint['model']}) makes {dim}-d vectors: set `size: {dim}`, leave size out, or use another embedder"
        )
    return fingerprint


def fingerprint_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between a recorded fingerprint and the current one; [] when it is the same model.

    A different probe hash alone is not a change while the probe values agree within
    PROBE_TOLERANCE: hosted services return slightly different floats from call to call. A sparse
    embedder's probe (local and exact) must hash the same.
    """
    changes = []
    for key in ("provider", "model", "dimension", "normalize", "options"):
        if recorded.get(key) != current.get(key):
            changes.append(f"{key}: {recorded.get(key)!r} -> {current.get(key)!r}")
    if bool(recorded.get("sparse")) != bool(current.get("sparse")):
        changes.append(f"sparse: {bool(recorded.get('sparse'))} -> {bool(current.get('sparse'))}")
    if recorded.get("probe_sha256") != current.get("probe_sha256"):
        old, new = recorded.get("probe_head") or [], current.get("probe_head") or []
        close = not current.get("sparse") and len(old) == len(new) > 0 and all(abs(a - b) <= PROBE_TOLERANCE for a, b in zip(old, new))
        if not close:
            changes.append("probe embedding differs: the model behind this embedder has changed")
    return changes
