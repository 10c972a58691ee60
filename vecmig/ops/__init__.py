"""The operation vocabulary. Importing this package registers every op."""

from vecmig.ops import aliases, collections, data, indexes, points, reconcile, routing, transform, vectors, verify  # noqa: F401
from vecmig.ops.base import OPS, Op, OpContext, build_op, register

__all__ = ["OPS", "Op", "OpContext", "build_op", "register"]
