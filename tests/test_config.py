"""vecmig.ini parsing, environment interpolation and overrides."""

from __future__ import annotations

import pytest

from vecmig.backends import parse_url
from vecmig.config import Config, redact
from vecmig.errors import ConfigError


def write_ini(tmp_path, text: str):
    path = tmp_path / "vecmig.ini"
    path.write_text(text, encoding="utf-8")
    return path


def test_env_interpolation_fills_values_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret")
    path = write_ini(tmp_path, "[vecmig]\nurl = ${STORE_URL:-qdrant://db:6333}\napi_key = ${QDRANT_API_KEY}\n")
    cfg = Config.load(path)
    assert cfg.url == "qdrant://db:6333"
    assert cfg.api_key == "s3cret"
    assert "s3cret" not in repr(cfg)


def test_vecmig_url_overrides_the_file_and_the_flag_overrides_both(tmp_path, monkeypatch):
    path = write_ini(tmp_path, "[vecmig]\nurl = qdrant+memory://\n")
    monkeypatch.setenv("VECMIG_URL", "qdrant://env:6333")
    assert Config.load(path).url == "qdrant://env:6333"
    assert Config.load(path, url="qdrant://flag:6333").url == "qdrant://flag:6333"


def test_vecmig_config_env_picks_the_file(tmp_path, monkeypatch):
    path = write_ini(tmp_path, "[vecmig]\nurl = qdrant+memory://\nscript_location = migrations\n")
    monkeypatch.setenv("VECMIG_CONFIG", str(path))
    cfg = Config.load()
    assert cfg.script_location == tmp_path / "migrations"


def test_embedder_sections_are_collected_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    path = write_ini(tmp_path, "[vecmig]\nurl = qdrant+memory://\n[embedder:minilm]\nprovider = local\n[embedder:ada]\nprovider = openai\napi_key = ${OPENAI_API_KEY}\n")
    cfg = Config.load(path)
    assert set(cfg.embedders) == {"minilm", "ada"}
    assert redact(cfg.embedders["ada"]) == {"provider": "openai", "api_key": "***"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("url = x\n", "no [vecmig] section"),
        ("[vecmig]\nurl = ${NOPE_NOT_SET}\n", "environment variable NOPE_NOT_SET is not set"),
        ("[vecmig]\nlock_ttl = soon\n", "lock_ttl: 'soon' is not a number of seconds"),
        ("[vecmig]\nurls = x\n", "unknown key 'urls'"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, monkeypatch, text, message):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config.load(write_ini(tmp_path, text))


@pytest.mark.parametrize(
    "url, kind, shown",
    [
        ("qdrant+local://.vecmig/qdrant", "qdrant", "qdrant+local://.vecmig/qdrant"),
        ("qdrant+local:///var/lib/store", "qdrant", "qdrant+local:///var/lib/store"),
        ("qdrant+memory://", "qdrant", "qdrant+memory://"),
        ("qdrant://db:6333", "qdrant", "qdrant://db:6333"),
        ("qdrant+https://user:pw@cloud.example:6333", "qdrant", "qdrant+https://cloud.example:6333"),
        ("weaviate://127.0.0.1:8080?grpc_port=50051", "weaviate", "weaviate://127.0.0.1:8080"),
    ],
)
def test_store_urls_parse_and_print_without_credentials(url, kind, shown):
    parsed = parse_url(url)
    assert parsed.kind == kind and str(parsed) == shown


def test_grpc_port_is_read_from_the_query():
    assert parse_url("weaviate://h:8080?grpc_port=50052").query == {"grpc_port": "50052"}


@pytest.mark.parametrize("url, message", [("mongodb://x", "url scheme 'mongodb' is not supported"), ("localhost:6333", "has no scheme"), ("qdrant+local://", "needs a path")])
def test_bad_urls_say_what_to_write(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_url(url)
