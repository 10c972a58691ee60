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
    for kind, *spec in files:
        if kind == "rev":
            project.revision(*spec)
        elif kind == "raw":
            project.write(*spec)
        else:
            ini = project.root / "vecmig.ini"
            ini.write_text(ini.read_text().replace("url = ", "; url = ") + spec[0] + "\n")
    proc = project.run(*args, check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0], lines[0]
    if files and files[0][0] == "ini":
        (project.root / "vecmig.ini").write_text(f"[vecmig]\nurl = {project.url}\nscript_location = versions\n")
    assert store_snapshot(project.config()) == before
