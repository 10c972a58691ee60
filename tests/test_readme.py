"""The README's examples run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.conftest import VECMIG

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.mark.e2e
def test_your_own_project_commands_run_in_order(tmp_path):
    import subprocess

    cwd = tmp_path
    for line in blocks(section("Your own project"), "sh")[0].splitlines():
        command = line.split("#", 1)[0].strip()
        if not command or command.startswith("pip "):
            continue
        for part in command.split("&&"):
            argv = shlex.split(part)
            if argv[0] == "cd":
                cwd = cwd / argv[1]
                continue
            argv[0] = VECMIG
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, input="y\n")
            assert proc.returncode == 0, f"{part}\n{proc.stdout}\n{proc.stderr}"
    assert list((tmp_path / "myproj" / "versions").glob("*_create_products.yaml"))


def test_the_revision_example_is_a_valid_revision(tmp_path):
    from vecmig.script.revision import load_revision

    text = blocks(section("Revision files"), "yaml")[0]
    path = tmp_path / "3f2a9c1d7b0e_products_v2.yaml"
    path.write_text(text, encoding="utf-8")
    rev = load_revision(path)
    assert [op.op_name for op in rev.upgrade_ops()] == ["create_collection", "repoint_alias"]
    assert rev.downgrade_ops() is None


def test_the_config_example_is_a_valid_config(tmp_path, monkeypatch):
    from vecmig.config import Config

    monkeypatch.setenv("QDRANT_API_KEY", "k")
    path = tmp_path / "vecmig.ini"
    path.write_text(blocks(section("Configuration"), "ini")[0], encoding="utf-8")
    cfg = Config.load(path)
    assert cfg.url == "qdrant+local://.vecmig/qdrant" and cfg.state_collection == "vecmig_state"


def test_every_op_in_the_registry_is_documented():
    from vecmig.ops import OPS

    table = section("Revision files")
    assert {name for name in OPS if f"| `{name}` |" not in table} == set()
    assert yaml.safe_load(blocks(table, "yaml")[0])["downgrade"] == "auto"


def test_the_embedder_example_configures_real_embedders(tmp_path, monkeypatch):
    from vecmig.config import Config
    from vecmig.embed import load_embedder

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    path = tmp_path / "vecmig.ini"
    path.write_text("[vecmig]\nurl = qdrant+memory://\n" + blocks(section("Embedders"), "ini")[0], encoding="utf-8")
    cfg = Config.load(path)
    assert set(cfg.embedders) == {"static", "minilm", "ada", "bm25"}
    static = load_embedder("static", cfg)
    assert static.dimension == 64 and static.embed_documents(["a question"]).shape == (1, 64)
    bm25 = load_embedder("bm25", cfg)
    assert bm25.sparse and len(bm25.embed_sparse_documents(["a question"])[0].indices) == 1  # "a" is a stop word


def test_the_model_switch_example_is_a_valid_revision(tmp_path):
    from vecmig.script.revision import load_revision

    text = blocks(section("A model switch, worked"), "yaml")[0]
    path = tmp_path / "9d0c5e7f3a21_switch.yaml"
    path.write_text(text, encoding="utf-8")
    ops = [op.op_name for op in load_revision(path).upgrade_ops()]
    assert ops == ["create_collection", "dual_write", "backfill", "reconcile", "verify", "route_reads"]
