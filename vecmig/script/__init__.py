"""Revision files, their graph, and new revisions from templates."""

from vecmig.script.directory import ScriptDirectory
from vecmig.script.graph import DOWN, UP, RevisionGraph
from vecmig.script.operations import CallOp, Operations
from vecmig.script.revision import PythonRevision, Revision, YamlRevision, load_revision

__all__ = [
    "DOWN", "UP", "CallOp", "Operations", "PythonRevision", "Revision", "RevisionGraph",
    "ScriptDirectory", "YamlRevision", "load_revision",
]
