"""vecmig.ini + environment -> Config.

Precedence: ``-c/--config`` > ``VECMIG_CONFIG`` > ``./vecmig.ini``; ``VECMIG_URL`` overrides ``url``.
Values may use ``${ENV}`` or ``${ENV:-default}``; interpolated secrets are never printed.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vecmig.errors import ConfigError

DEFAULT_URL = "qdrant+local://.vecmig/qdrant"
SECRET_KEYS = {"api_key", "password", "token", "secret"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: str, where: str) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}`` with environment values."""

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set: export it or give a default as ${{{name}:-value}}")

    return _ENV_REF.sub(sub, value)


def is_secret(key: str) -> bool:
    return any(part in key.lower() for part in SECRET_KEYS)


def redact(settings: dict[str, str]) -> dict[str, str]:
    """A copy safe to print: secret-looking values are replaced."""
    return {k: ("***" if is_secret(k) and v else v) for k, v in settings.items()}


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
        """Read the config file (if any) and apply environment overrides."""
        explicit = path or os.environ.get("VECMIG_CONFIG")
        file = Path(explicit) if explicit else Path("vecmig.ini")
        cfg = cls(x=dict(x or {}))
        if file.is_file():
            cfg._read(file)
        elif explicit or require_file:
            raise ConfigError(f"{file}: config file not found: run `vecmig init DIR` or pass -c PATH")
        if os.environ.get("VECMIG_URL"):
            cfg.url = os.environ["VECMIG_URL"]
        if url:
            cfg.url = url
        return cfg

    def _read(self, file: Path) -> None:
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
        try:
            parser.read(file, encoding="utf-8")
        except configparser.MissingSectionHeaderError:
            raise ConfigError(f"{file}: no [vecmig] section header: start the file with [vecmig]") from None
        except configparser.Error as e:
            raise ConfigError(f"{file}: not a valid ini file: {str(e).splitlines()[0]}") from None
        self.path = file.resolve()
        if not parser.has_section("vecmig"):
            raise ConfigError(f"{file}: no [vecmig] section: add one with at least `url = ...`")
        main = {k: interpolate(v, f"{file} [vecmig] {k}") for k, v in parser.items("vecmig")}
        known = {"url", "script_location", "template_location", "state_collection", "api_key", "lock_ttl", "lock_timeout", "routing_ttl", "prepend_sys_path"}
        unknown = sorted(set(main) - known)
        if unknown:
            raise ConfigError(f"{file} [vecmig]: unknown key {unknown[0]!r}: known keys are {', '.join(sorted(known))}")
        self.url = main.get("url", self.url)
        self.script_location = self.here / main.get("script_location", "versions")
        self.template_location = self.here / main.get("template_location", "templates")
        self.state_collection = main.get("state_collection") or None
        self.api_key = main.get("api_key") or None
        self.prepend_sys_path = [self.here / part for part in main.get("prepend_sys_path", "").split(os.pathsep) if part.strip()]
        for key in ("lock_ttl", "lock_timeout", "routing_ttl"):
            if key in main:
                try:
                    setattr(self, key, float(main[key]))
                except ValueError:
                    raise ConfigError(f"{file} [vecmig] {key}: {main[key]!r} is not a number of seconds") from None
        for section in parser.sections():
            if section.startswith("embedder:"):
                name = section.split(":", 1)[1].strip()
                if not name:
                    raise ConfigError(f"{file} [{section}]: an embedder section needs a name: [embedder:NAME]")
                self.embedders[name] = {
                    k: interpolate(v, f"{file} [{section}] {k}") for k, v in parser.items(section)
                }

    def resolve_path(self, value: str | os.PathLike) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.here / p
