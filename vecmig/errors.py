"""The one family of user-facing errors: the CLI prints each as a single line and exits non-zero."""


class VecmigError(Exception):
    """An error whose message is meant for the user: what is wrong, where, and what to do."""

    exit_code = 1


class ConfigError(VecmigError):
    """vecmig.ini, an environment variable or a -x option is wrong."""


class ScriptError(VecmigError):
    """A revision file is malformed or invalid (YAML, schema, unknown op, bad parameters)."""


class GraphError(VecmigError):
    """The revision graph is broken (cycle, missing parent, duplicate id) or a target is ambiguous."""


class PlanError(VecmigError):
    """An operation can't be applied to the live store as it is; found before any write."""


class BackendError(VecmigError):
    """The store refused or could not be reached."""


class LockError(VecmigError):
    """Another runner holds the migration lock."""


class StateError(VecmigError):
    """The state collection disagrees with the revision files (changed checksum, unknown head)."""


class CheckFailed(VecmigError):
    """A gate found the data not ready (verify, reconcile, a learned map's recall): the message gives
    the measured numbers and which check failed."""


class EmbedderError(VecmigError):
    """An embedder is misconfigured, can't be loaded, or its model or service failed."""


class Interrupted(VecmigError):
    """The run was stopped (Ctrl-C, SIGTERM) inside an op; the journal says where, so it can resume."""

    exit_code = 130
