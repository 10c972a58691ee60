"""vecmig.ini + environment -> Config.

Precedence: ``-c/--config`` > ``VECMIG_CONFIG`` > ``./vecmig.ini``; ``VECMIG_URL`` overrides ``url``.
Values may use ``${ENV}`` or ``${ENV:-default}``; interpolated secrets are never printed.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from vecmig.errors import ConfigError

DEFAULT_URL = "qdrant+local://.vecmig/qdrant"
#: words of a key or variable name (split at `_`, `-`, `.`) that mark it as holding a secret:
#: api_key, QDRANT_API_KEY, GITHUB_TOKEN, db_password — not tokenizer or TOKENIZERS_PARALLELISM
SECRET_WORDS = {"key", "apikey", "password", "passwd", "pwd", "token", "secret", "credential", "credentials"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: values shorter than this are not taken as secrets: no real key is that short, and replacing
#: every occurrence of a two-letter string would garble every message
MIN_SECRET_LENGTH = 4
#: every secret value this process has read (config keys, ${ENV} values of secret-looking names)
_SECRET_VALUES: set[str] = set()


def interpolate(value: str, where: str) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}`` with environment values. A value that comes from a
    variable whose name looks secret (``${QDRANT_API_KEY}``) is remembered as a secret."""

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            if is_secret(name):
                add_secret(os.environ[name])
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set: export it or give a default as ${{{name}:-value}}")

    return _ENV_REF.sub(sub, value)


def is_secret(key: str) -> bool:
    """Whether a config key or an environment variable name looks like it holds a secret."""
    return any(word in SECRET_WORDS for word in re.split(r"[^a-z0-9]+", key.lower()))


def add_secret(value: str | None) -> None:
    """Remember ``value`` as a secret: ``redact_text`` replaces it in everything vecmig prints.
    Every place that reads a secret calls this: config keys, ``${ENV}`` references, the key an
    embedder takes from its provider's variable (OPENAI_API_KEY) when the section names none."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH and value not in _SECRET_VALUES:
        _SECRET_VALUES.add(value)
        _secret_forms.cache_clear()


def secret_values() -> set[str]:
    """Every secret value this process has read."""
    return set(_SECRET_VALUES)


@lru_cache(maxsize=1)
def _secret_forms() -> tuple[str, ...]:
    """Each secret as it is written, and as repr, JSON and URL quoting write it; longest first."""
    import json
    from urllib.parse import quote

    forms = set()
    for value in _SECRET_VALUES:
        forms.update({value, repr(value)[1:-1], repr(value.encode("utf-8"))[2:-1], json.dumps(value)[1:-1], quote(value, safe="")})
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def redact_text(text: str) -> str:
    """``text`` with every secret value replaced by ``***`` (also where an exception shows a raw
    HTTP body that echoes a request header). The one rule for everything vecmig prints."""
    for form in _secret_forms() if text else ():
        text = text.replace(form, "***")
    return text


def redact(settings: dict[str, str]) -> dict[str, str]:
    """A copy safe to print: secret-looking values are replaced."""
    return {k: ("***" if is_secret(k) and v else v) for k, v in settings.items()}


def shown_value(raw: str, value: str) -> str:
    """How a config error shows a value: as written in the file (``${QDRANT_API_KEY}``) when it
    came from a secret-looking environment variable, else the value itself (quoted)."""
    if any(is_secret(m.group(1)) for m in _ENV_REF.finditer(raw)):
        return raw
    return repr(value)


@dataclass
class Config:
    """Everything a command needs to know about the project and the store."""

    path: Path | None = None
    url: str = DEFAULT_URL
    script_location: Path = Path("versions")
    template_location: Path = Path("templates")
    state_collection: str | None = None
    api_key: str | None = field(default=None, repr=False)
    lock_ttl: float = 60.0
    lock_timeout: float = 0.0
    #: how long applications (vecmig.runtime.Router) cache the routing table; the runner waits this
    #: long after changing write targets before it relies on them
    routing_ttl: float = 5.0
    #: folders put in front of sys.path before a Python revision file runs (its helper modules)
    prepend_sys_path: list[Path] = field(default_factory=list)
    embedders: dict[str, dict[str, str]] = field(default_factory=dict)
    x: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        add_secret(self.api_key)

    @property
    def here(self) -> Path:
        """The folder relative paths in the config are resolved against."""
        return self.path.parent if self.path else Path.cwd()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        *,
        url: str | None = None,
        x: dict[str, str] | None = None,
        require_file: bool = False,
    ) -> "Config":
        """Read the config file (if any) and apply environment overrides.

        ``require_file`` (the CLI): a project must be named. Without a file, only a store named
        explicitly (``url`` or VECMIG_URL) with a ``versions/`` folder here will do; nothing falls
        back to the default store, which would create ``.vecmig/`` in whatever folder this runs in.
        """
        explicit = path or os.environ.get("VECMIG_CONFIG")
        file = Path(explicit) if explicit else Path("vecmig.ini")
        override = url or os.environ.get("VECMIG_URL")
        cfg = cls(x=dict(x or {}))
        if file.is_dir():
            inside = file / "vecmig.ini"
            how = f"set VECMIG_CONFIG={inside}" if not path else f"pass -c {inside}"
            raise ConfigError(f"{file}: is a directory, not a config file: name the ini file inside it ({how})")
        if file.is_file():
            cfg._read(file)
        elif explicit:
            raise ConfigError(f"{file}: config file not found: run `vecmig init DIR` or pass -c PATH")
        elif require_file and not (override and Path("versions").is_dir()):
            also = " (and no versions/ folder for the store --url or VECMIG_URL names)" if override else ""
            raise ConfigError(f"no vecmig.ini in {Path.cwd()}{also}: run `vecmig init` here, or pass -c PATH / set VECMIG_CONFIG")
        if os.environ.get("VECMIG_URL"):
            cfg.url = os.environ["VECMIG_URL"]
        if url:
            cfg.url = url
        cfg._remember_url_secrets()
        return cfg

    def _remember_url_secrets(self) -> None:
        """A password in the URL (``https://user:pw@host``) or a secret-looking query value."""
        from urllib.parse import parse_qsl, urlsplit

        try:
            parts = urlsplit(self.url)
            add_secret(parts.password)
        except ValueError:
            return
        for key, value in parse_qsl(parts.query):
            if is_secret(key):
                add_secret(value)

    def _read(self, file: Path) -> None:
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
        try:
            data = file.read_bytes()
        except OSError as e:
            raise ConfigError(f"{file}: can't read the config file: {e.strerror or e}") from None
        try:
            parser.read_string(data.decode("utf-8-sig"), source=str(file))
        except UnicodeDecodeError as e:
            raise ConfigError(not_utf8(file, data, e)) from None
        except configparser.MissingSectionHeaderError:
            raise ConfigError(f"{file}: no [vecmig] section header: start the file with [vecmig]") from None
        except configparser.Error as e:
            raise ConfigError(f"{file}: not a valid ini file: {str(e).splitlines()[0]}") from None
        self.path = file.resolve()
        if not parser.has_section("vecmig"):
            raise ConfigError(f"{file}: no [vecmig] section: add one with at least `url = ...`")
        raw = dict(parser.items("vecmig"))
        main = {k: interpolate(v, f"{file} [vecmig] {k}") for k, v in raw.items()}
        known = {"url", "script_location", "template_location", "state_collection", "api_key", "lock_ttl", "lock_timeout", "routing_ttl", "prepend_sys_path"}
        unknown = sorted(set(main) - known)
        if unknown:
            raise ConfigError(f"{file} [vecmig]: unknown key {unknown[0]!r}: known keys are {', '.join(sorted(known))}")
        self.url = main.get("url", self.url)
        self.script_location = self.here / main.get("script_location", "versions")
        self.template_location = self.here / main.get("template_location", "templates")
        self.state_collection = main.get("state_collection") or None
        self.api_key = main.get("api_key") or None
        for key, value in main.items():
            if is_secret(key):
                add_secret(value)
        self.prepend_sys_path = [self.here / part for part in main.get("prepend_sys_path", "").split(os.pathsep) if part.strip()]
        for key in ("lock_ttl", "lock_timeout", "routing_ttl"):
            if key in main:
                try:
                    setattr(self, key, float(main[key]))
                except ValueError:
                    raise ConfigError(f"{file} [vecmig] {key}: {shown_value(raw[key], main[key])} is not a number of seconds") from None
        for section in parser.sections():
            if section.startswith("embedder:"):
                name = section.split(":", 1)[1].strip()
                if not name:
                    raise ConfigError(f"{file} [{section}]: an embedder section needs a name: [embedder:NAME]")
                self.embedders[name] = {
                    k: interpolate(v, f"{file} [{section}] {k}") for k, v in parser.items(section)
                }
                for key, value in self.embedders[name].items():
                    if is_secret(key):
                        add_secret(value)

    def resolve_path(self, value: str | os.PathLike) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.here / p


def not_utf8(path: str | os.PathLike, data: bytes, e: UnicodeDecodeError) -> str:
    """The message for a file that isn't UTF-8: the first bad byte, where it is, what to do."""
    skipped = len(data) - len(e.object) if isinstance(e.object, bytes) and data.endswith(e.object) else 0  # a BOM
    at = e.start + skipped
    line = data[:at].count(b"\n") + 1
    return f"{path}: not UTF-8 (byte 0x{data[at]:02x} at offset {at}, line {line}): save it as UTF-8"
