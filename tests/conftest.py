"""Shared fixtures: throwaway projects on embedded Qdrant, the installed console script, and the
`backend` fixture that runs a test on every store (embedded Qdrant, a Qdrant server, Weaviate)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from weaviate_fixture import weaviate_url  # noqa: F401  (the shared real Weaviate server)

VECMIG = shutil.which("vecmig", path=str(Path(sys.executable).parent)) or "vecmig"


class Project:
    """A vecmig project in a temp folder, driven through the real `vecmig` command."""

    def __init__(self, root: Path, url: str):
        self.root = root
        self.url = url
        (root / "versions").mkdir(parents=True, exist_ok=True)
        (root / "vecmig.ini").write_text(f"[vecmig]\nurl = {url}\nscript_location = versions\n", encoding="utf-8")

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def revision(self, rev: str, down, body: str, message: str | None = None, slug: str = "r") -> Path:
        down_yaml = "null" if down is None else (f"[{', '.join(down)}]" if isinstance(down, (list, tuple)) else down)
        head = f"revision: {rev}\ndown_revision: {down_yaml}\nmessage: {message or rev}\n"
        return self.write(f"versions/{rev}_{slug}.yaml", head + textwrap.dedent(body).lstrip())

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECMIG_")}
        env.update(extra)
        return env

    def run(self, *args, check: bool = True, timeout: float = 120, **env) -> subprocess.CompletedProcess:
        proc = subprocess.run([VECMIG, *args], cwd=self.root, env=self.env(**env), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"vecmig {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args, **env) -> subprocess.Popen:
        return subprocess.Popen([VECMIG, *args], cwd=self.root, env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def config(self):
        from vecmig.config import Config

        return Config.load(self.root / "vecmig.ini")


@pytest.fixture
def project(tmp_path) -> Project:
    """A project on an embedded Qdrant store kept in the project folder."""
    return Project(tmp_path / "proj", "qdrant+local://store")


def store_snapshot(cfg, with_state: bool = True) -> dict:
    """Everything in the store (collections, aliases, points, state records), to prove nothing changed."""
    from vecmig.command import open_store

    with open_store(cfg) as (backend, state):
        out = {"aliases": backend.list_aliases(), "collections": {}}
        for name in sorted(backend.list_collections()):
            if name == state.name and not with_state:
                continue
            points = sorted((str(p.id), repr(sorted(p.payload.items()))) for page in backend.scroll(name, batch_size=1000) for p in page)
            out["collections"][name] = points
        return out


BACKENDS = ["qdrant-memory", "qdrant-server", "weaviate"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "qdrant-memory":
        url = "qdrant+memory://"
    elif request.param == "qdrant-server":
        url = os.environ.get("VECMIG_TEST_QDRANT_URL") or pytest.skip("set VECMIG_TEST_QDRANT_URL=qdrant://host:6333 to run against a Qdrant server")
    else:
        url = request.getfixturevalue("weaviate_url")
    from vecmig.backends import connect
    from vecmig.config import Config

    b = connect(Config(url=url))
    created_before = set(b.list_collections())
    yield b
    for alias, coll in b.list_aliases().items():
        if coll not in created_before:
            b.drop_alias(alias)
    for name in set(b.list_collections()) - created_before:
        b.drop_collection(name)
    b.close()
