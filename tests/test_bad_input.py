"""Bad input: one clear line naming the file, key or value; exit 1; the store untouched."""

from __future__ import annotations

import pytest

from tests.conftest import store_snapshot

BASE = """
upgrade:
  - create_collection: {name: products_v1, vectors: {v: {size: 4, distance: cosine}}}
  - create_alias: {alias: products, collection: products_v1}
"""


def rev(rev_id, down, body):
    return ("rev", rev_id, down, body)


# (id, files, command args, expected message part)
CASES = [
    ("malformed-yaml", [("raw", "versions/bad1_x.yaml", "revision: bad1\ndown_revision: base00\nupgrade: [\n")], ["upgrade", "head"], "bad1_x.yaml"),
    ("duplicate-key", [("raw", "versions/dupk_x.yaml", "revision: dupk\ndown_revision: base00\nupgrade: []\nupgrade: []\n")], ["upgrade", "head"], "duplicate key 'upgrade'"),
    ("not-a-mapping", [("raw", "versions/bad2_x.yaml", "- just\n- a list\n")], ["upgrade", "head"], "bad2_x.yaml"),
    ("missing-down-revision", [("raw", "versions/bad3_x.yaml", "revision: bad3\nupgrade: []\n")], ["upgrade", "head"], "down_revision"),
    ("unknown-op", [rev("bad4", "base00", "upgrade:\n  - create_colection: {name: x}\n")], ["upgrade", "head"], "unknown op 'create_colection': did you mean 'create_collection'?"),
    ("zero-dimension", [rev("bad5", "base00", "upgrade:\n  - create_collection: {name: x, vectors: {v: {size: 0}}}\n")], ["upgrade", "head"], "size: 0 is less than the minimum of 1"),
    ("zero-partitions", [rev("bad5p", "base00", "upgrade:\n  - copy: {source: products_v1, target: products, partitions: 0}\n")], ["upgrade", "head"], "copy.partitions: 0 is not allowed: the number of id ranges"),
    ("bad-distance", [rev("bad6", "base00", "upgrade:\n  - create_collection: {name: x, vectors: {v: {size: 4, distance: cos}}}\n")], ["upgrade", "head"], "'cos' is not one of"),
    ("unknown-param", [rev("bad7", "base00", "upgrade:\n  - create_collection: {name: x, vector: {v: {size: 4}}}\n")], ["upgrade", "head"], "'vector' was unexpected"),
    ("cycle", [rev("cyc1", "cyc2", "upgrade: []\n"), rev("cyc2", "cyc1", "upgrade: []\n")], ["upgrade", "head"], "cycle"),
    ("duplicate-id", [rev("dup1", "base00", "upgrade: []\n"), ("raw", "versions/dup1_again.yaml", "revision: dup1\ndown_revision: base00\nupgrade: []\n")], ["upgrade", "head"], "dup1"),
    ("missing-parent", [rev("orph", "nosuchrev", "upgrade: []\n")], ["upgrade", "head"], "nosuchrev"),
    ("alias-to-missing-collection", [rev("bad8", "base00", "upgrade:\n  - create_alias: {alias: a, collection: nowhere}\n")], ["upgrade", "head"], "collection 'nowhere' does not exist"),
    ("second-op-invalid-first-not-applied", [rev("bad9", "base00", "upgrade:\n  - create_collection: {name: fresh, vectors: {v: {size: 4}}}\n  - create_alias: {alias: products, collection: fresh}\n")], ["upgrade", "head"], "'products' is already an alias"),
    ("collection-exists", [rev("bad10", "base00", "upgrade:\n  - create_collection: {name: products_v1, vectors: {v: {size: 4}}}\n")], ["upgrade", "head"], "collection 'products_v1' already exists"),
    ("drop-collection-with-alias", [rev("bad11", "base00", "upgrade:\n  - drop_collection: {name: products_v1}\n")], ["upgrade", "head", "--yes"], "alias 'products' still points at it"),
    ("drop-missing-vector", [rev("bad12", "base00", "upgrade:\n  - drop_vector: {collection: products_v1, name: nope}\n")], ["upgrade", "head"], "has no vector 'nope'"),
    ("vector-dimension-mismatch", [rev("bad13", "base00", "upgrade:\n  - bulk_insert: {collection: products_v1, points: [{id: 1, vectors: {v: [1, 2, 3]}}]}\n")], ["upgrade", "head"], "has 3 dimensions, the collection expects 4"),
    ("seed-file-missing", [rev("bad14", "base00", "upgrade:\n  - bulk_insert: {collection: products_v1, file: nope.jsonl}\n")], ["upgrade", "head"], "file 'nope.jsonl' not found"),
    ("ambiguous-prefix", [rev("abc1", "base00", "upgrade: []\n"), rev("abc2", "abc1", "upgrade: []\n")], ["upgrade", "ab"], "ambiguous"),
    ("unknown-target", [], ["upgrade", "zzzz"], "zzzz"),
    ("multiple-heads", [rev("br1", "base00", "upgrade: []\n"), rev("br2", "base00", "upgrade: []\n")], ["upgrade", "head"], "multiple heads"),
    ("irreversible-auto-downgrade", [], ["downgrade", "-1"], "can't be undone"),
    ("unreachable-server", [], ["--url", "qdrant://127.0.0.1:9", "current"], "can't reach Qdrant"),
    ("wrong-url-scheme", [], ["--url", "mongodb://localhost", "current"], "url scheme 'mongodb' is not supported"),
    ("missing-env-var", [("ini", "url = ${VECMIG_NO_SUCH_VAR}")], ["current"], "environment variable VECMIG_NO_SUCH_VAR is not set"),
    ("unknown-ini-key", [("ini", "colour = blue")], ["current"], "unknown key 'colour'"),
    ("missing-config-file", [], ["-c", "nope.ini", "current"], "nope.ini: config file not found"),
    ("python-revision-syntax-error", [("raw", "versions/py1_x.py", "revision = 'py1'\ndown_revision = 'base00'\ndef upgrade(op)\n    pass\n")], ["upgrade", "head"], "py1_x.py"),
    ("downgrade-to-unapplied", [rev("later1", "base00", "upgrade: []\n")], ["downgrade", "later1"], "later1"),
    # no config: nothing falls back to the default store (which would create .vecmig/ here)
    ("no-config-file", [("rm", "vecmig.ini")], ["current"], "no vecmig.ini in "),
    ("no-config-file-upgrade", [("rm", "vecmig.ini")], ["upgrade", "head"], "run `vecmig init` here, or pass -c PATH / set VECMIG_CONFIG"),
    ("config-is-a-directory", [], ["-c", "versions", "current"], "versions: is a directory, not a config file: name the ini file inside it"),
    ("non-utf8-config", [("bytes", "vecmig.ini", b"[vecmig]\nurl = qdrant+local://store\n; caf\xe9\n")], ["current"], "vecmig.ini: not UTF-8 (byte 0xe9 at offset 41, line 3): save it as UTF-8"),
    ("secret-env-var-in-a-number", [("env", "BADINPUT_API_KEY", "sk-badinput-0123456789"), ("ini", "lock_ttl = ${BADINPUT_API_KEY}")], ["current"], "lock_ttl: ${BADINPUT_API_KEY} is not a number of seconds"),
    # an explicit downgrade is checked when the upgrade is planned, not first when it is needed
    ("unknown-op-in-explicit-downgrade", [rev("bad15", "base00", "upgrade: []\ndowngrade:\n  - drop_colection: {name: products_v1}\n")], ["upgrade", "head", "--plan"], "downgrade[0]: unknown op 'drop_colection': did you mean 'drop_collection'?"),
    ("bad-param-in-explicit-downgrade", [rev("bad16", "base00", "upgrade: []\ndowngrade:\n  - drop_collection: {nme: products_v1}\n")], ["upgrade", "head"], "downgrade[0]"),
    ("unknown-op-in-python-downgrade", [("raw", "versions/py2_x.py", "revision = 'py2'\ndown_revision = 'base00'\ndef upgrade(op):\n    pass\ndef downgrade(op):\n    op.drop_colection(name='products_v1')\n")], ["upgrade", "head"], "unknown op 'drop_colection'"),
    ("non-utf8-yaml-revision", [("bytes", "versions/enc1_x.yaml", b"revision: enc1\ndown_revision: base00\nmessage: caf\xe9\nupgrade: []\n")], ["upgrade", "head"], "enc1_x.yaml: not UTF-8 (byte 0xe9 at offset 49, line 3): save it as UTF-8"),
    ("non-utf8-python-revision", [("bytes", "versions/enc2_x.py", b"revision = 'enc2'\ndown_revision = 'base00'\n# caf\xe9\ndef upgrade(op):\n    pass\n")], ["upgrade", "head"], "enc2_x.py: not UTF-8 (byte 0xe9 at offset 48, line 3): save it as UTF-8"),
    ("template-var-not-an-integer", [], ["revision", "-m", "x", "--template", "create_collection", "--var", "size=abc"], "--var size=abc: size must be an integer"),
    ("template-var-not-an-integer-matryoshka", [], ["revision", "-m", "x", "--template", "matryoshka", "--var", "collection=c", "--var", "dims=1.5"], "--var dims=1.5: dims must be an integer"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line_and_leaves_the_store_untouched(project, case):
    name, files, args, expected = case
    project.revision("base00", None, BASE, "base")
    if name == "irreversible-auto-downgrade":
        project.revision("drop01", "base00", "upgrade:\n  - drop_alias: {alias: products}\n  - drop_collection: {name: products_v1}\n")
    project.run("upgrade", "head", "--yes")
    before = store_snapshot(project.config())
    env = {}
    for kind, *spec in files:
        if kind == "rev":
            project.revision(*spec)
        elif kind == "raw":
            project.write(*spec)
        elif kind == "bytes":  # content that must not go through str (a file that isn't UTF-8)
            (project.root / spec[0]).write_bytes(spec[1])
        elif kind == "rm":
            (project.root / spec[0]).unlink()
        elif kind == "env":
            env[spec[0]] = spec[1]
        else:
            ini = project.root / "vecmig.ini"
            ini.write_text(ini.read_text().replace("url = ", "; url = ") + spec[0] + "\n")
    files_before = sorted(p.relative_to(project.root) for p in project.root.rglob("*") if "store" not in p.parts)
    proc = project.run(*args, check=False, **env)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0], lines[0]
    for secret in env.values():
        assert secret not in proc.stdout + proc.stderr
    # nothing written next to the project either: no new revision file, no default store in .vecmig/
    assert sorted(p.relative_to(project.root) for p in project.root.rglob("*") if "store" not in p.parts) == files_before
    if any(kind == "ini" or (kind in ("rm", "bytes") and spec[0] == "vecmig.ini") for kind, *spec in files):
        (project.root / "vecmig.ini").write_text(f"[vecmig]\nurl = {project.url}\nscript_location = versions\n")
    assert store_snapshot(project.config()) == before


class _EchoingQdrant:
    """A loopback HTTP server posing as Qdrant behind a proxy whose error pages echo the request
    headers, api-key included. ``fail_connect``: even the first request (GET /collections) fails."""

    def __init__(self, fail_connect: bool):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        keys = self.keys = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                keys.append(self.headers.get("api-key"))
                if self.path.split("?")[0] == "/collections" and not fail_connect:
                    status, body = 200, b'{"result": {"collections": []}, "status": "ok", "time": 0.0}'
                else:
                    echoed = "; ".join(f"{k}={v}" for k, v in self.headers.items())
                    status, body = 502, f"bad gateway: upstream closed; request headers: {echoed}".encode()
                self.send_response(status)
                self.send_header("content-type", "application/json" if status == 200 else "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.e2e
@pytest.mark.parametrize("fail_connect", [False, True], ids=["fails-after-connect", "fails-to-connect"])
@pytest.mark.parametrize("debug", [False, True], ids=["one-line", "debug"])
def test_a_secret_echoed_by_the_store_is_never_printed(project, fail_connect, debug):
    secret = "sk-loopback-7f3a9c21e5d04b"
    project.write("vecmig.ini", "[vecmig]\nurl = qdrant+memory://\napi_key = ${BADINPUT_QDRANT_API_KEY}\n")
    server = _EchoingQdrant(fail_connect)
    try:
        args = ["--debug"] * debug + ["--url", f"qdrant://127.0.0.1:{server.port}", "current"]
        proc = project.run(*args, check=False, BADINPUT_QDRANT_API_KEY=secret)
    finally:
        server.close()
    assert secret in server.keys  # the key was sent, and the answer echoed it
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert secret not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: "), proc.stderr
    if debug:
        assert "Traceback" in proc.stderr and "api-key=***" in proc.stderr
    else:
        assert len(lines) == 1, proc.stderr


def test_config_errors_name_a_secret_variable_not_its_value(tmp_path, monkeypatch):
    from vecmig.config import Config, redact_text
    from vecmig.errors import ConfigError

    monkeypatch.setenv("BADINPUT_TOKEN", "tok-0123456789")
    (tmp_path / "vecmig.ini").write_text("[vecmig]\nurl = qdrant+memory://\nlock_timeout = ${BADINPUT_TOKEN}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Config.load(tmp_path / "vecmig.ini")
    assert "lock_timeout: ${BADINPUT_TOKEN} is not a number of seconds" in str(info.value)
    assert "tok-0123456789" not in str(info.value)
    assert redact_text("echo: tok-0123456789, b'tok-0123456789'") == "echo: ***, b'***'"


def test_the_readme_counts_the_corpus():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"`tests/test_bad_input.py`: {len(CASES)} cases" in readme
