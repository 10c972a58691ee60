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


@pytest.mark.parametrize(
    "name, secret",
    [("api_key", True), ("QDRANT_API_KEY", True), ("GITHUB_TOKEN", True), ("db_password", True), ("AWS_SECRET_ACCESS_KEY", True),
     ("tokenizer", False), ("TOKENIZERS_PARALLELISM", False), ("KEYBOARD", False), ("lock_ttl", False)],
)
def test_secret_names_are_words_not_substrings(name, secret):
    from vecmig.config import is_secret

    assert is_secret(name) is secret


def test_every_configured_secret_is_redacted_by_value(tmp_path, monkeypatch):
    from vecmig.config import redact_text

    monkeypatch.setenv("CFG_TEST_DB_PASSWORD", "pw-from-the-env-1")
    monkeypatch.setenv("CFG_TEST_HOST", "db-host-not-secret")
    path = write_ini(tmp_path, (
        "[vecmig]\nurl = qdrant+https://user:pw-in-the-url-2@${CFG_TEST_HOST}:6333\napi_key = literal-key-3\n"
        "[embedder:x]\nprovider = openai\ntoken = tok-in-a-section-4\nbase_url = http://h/${CFG_TEST_DB_PASSWORD}\n"
    ))
    Config.load(path)
    text = "pw-from-the-env-1 pw-in-the-url-2 literal-key-3 tok-in-a-section-4 db-host-not-secret"
    assert redact_text(text) == "*** *** *** *** db-host-not-secret"


def test_without_a_config_file_the_cli_needs_a_named_store_and_a_versions_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VECMIG_URL", raising=False)
    monkeypatch.delenv("VECMIG_CONFIG", raising=False)
    assert Config.load().path is None  # the Python API keeps its defaults
    with pytest.raises(ConfigError, match=rf"^no vecmig.ini in {tmp_path}: run `vecmig init` here, or pass -c PATH / set VECMIG_CONFIG$"):
        Config.load(require_file=True)
    with pytest.raises(ConfigError, match="and no versions/ folder for the store --url or VECMIG_URL names"):
        Config.load(require_file=True, url="qdrant+memory://")
    (tmp_path / "versions").mkdir()
    monkeypatch.setenv("VECMIG_URL", "qdrant+memory://")
    assert Config.load(require_file=True).url == "qdrant+memory://"
    assert not (tmp_path / ".vecmig").exists()


def test_a_config_path_that_is_a_directory_says_so(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: is a directory, not a config file: name the ini file inside it \(pass -c {tmp_path}/vecmig.ini\)$"):
        Config.load(tmp_path)
    monkeypatch.setenv("VECMIG_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=rf"set VECMIG_CONFIG={tmp_path}/vecmig.ini"):
        Config.load()
