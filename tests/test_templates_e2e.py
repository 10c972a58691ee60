"""Each strategy template writes a revision that plans, applies and downgrades as generated."""

from __future__ import annotations

import json

import pytest

from tests.test_cli_e2e import CREATE, SEED, count, status

pytestmark = pytest.mark.e2e


@pytest.fixture
def seeded(project):
    project.revision("aaa111", None, CREATE.format(name="products_v1", alias="products").replace("v: {", "old: {"), "create products")
    project.revision("bbb222", "aaa111", SEED.format(name="products_v1").replace("vectors: {v:", "vectors: {old:"), "seed products")
    ini = project.root / "vecmig.ini"
    ini.write_text(ini.read_text() + "[embedder:static]\nprovider = static\n")
    project.run("upgrade", "head")
    return project


def aliases(project) -> dict:
    from vecmig.command import open_store

    with open_store(project.config()) as (backend, _):
        return backend.list_aliases()


def test_switch_model_template_cuts_the_alias_over_to_a_backfilled_collection(seeded):
    seeded.run("revision", "-m", "switch products", "--template", "switch_model", "--var", "embedder=static", "--var", "text={{ kind }} item")
    plan = seeded.run("upgrade", "head", "--plan").stdout
    assert "Embedder static" in plan and "repoint_alias" in plan
    seeded.run("upgrade", "head")
    assert aliases(seeded)["products"] == "products_v2" and count(seeded, "products_v2") == 2
    seeded.run("downgrade", "-1", "--yes")
    assert aliases(seeded)["products"] == "products_v1"


def test_side_by_side_template_adds_and_fills_a_second_vector_in_place(seeded):
    seeded.run("revision", "-m", "try static", "--template", "side_by_side", "--var", "collection=products_v1",
               "--var", "embedder=static", "--var", "text={{ kind }} item")
    seeded.run("upgrade", "head")
    from vecmig.command import open_store

    with open_store(seeded.config()) as (backend, _):
        points = backend.retrieve("products_v1", [1, 2], with_vectors=True)
    assert all(len(p.vectors["new"]) == 64 and len(p.vectors["old"]) == 4 for p in points)
    seeded.run("downgrade", "-1", "--yes")
    assert "new" not in json.dumps(seeded.run("check", "--json").stdout)


def test_quantization_template_changes_settings_and_downgrade_restores_them(seeded):
    seeded.run("revision", "-m", "quantize products", "--template", "quantization", "--var", "collection=products_v1")
    seeded.run("upgrade", "head")
    seeded.run("downgrade", "-1")
    assert status(seeded)["heads"] == ["bbb222"]


def test_matryoshka_template_derives_a_truncated_renormalized_vector_without_a_model(seeded):
    seeded.run("revision", "-m", "short vectors", "--template", "matryoshka", "--var", "collection=products_v1",
               "--var", "from_vector=old", "--var", "dims=2")
    assert "transform_vectors" in seeded.run("upgrade", "head", "--plan").stdout
    seeded.run("upgrade", "head")
    from vecmig.command import open_store

    with open_store(seeded.config()) as (backend, _):
        points = {p.id: p for p in backend.retrieve("products_v1", [1, 2], with_vectors=True)}
    assert points[1].vectors["dense_2"] == pytest.approx([1.0, 0.0])  # [1, 0, 0, 0] cut to 2, unit length
    assert points[2].vectors["dense_2"] == pytest.approx([0.0, 1.0])
    seeded.run("downgrade", "-1", "--yes")
    with open_store(seeded.config()) as (backend, _):
        assert "dense_2" not in backend.get_collection("products_v1").vectors


def test_hybrid_template_adds_a_sparse_bm25_vector_in_place_and_fills_it(seeded):
    ini = seeded.root / "vecmig.ini"
    ini.write_text(ini.read_text() + "[embedder:bm25]\nprovider = bm25\n")
    seeded.run("revision", "-m", "hybrid products", "--template", "hybrid", "--var", "collection=products_v1",
               "--var", "text={{ kind }} item")
    plan = seeded.run("upgrade", "head", "--plan").stdout
    assert "Embedder bm25: bm25 bm25, sparse" in plan and "bm25 makes sparse vectors, the vector is sparse: ok" in plan
    seeded.run("upgrade", "head")
    from vecmig.command import open_store
    from vecmig.embed import create_embedder

    expected = create_embedder("bm25", {"provider": "bm25"}).embed_sparse_documents(["a item", "b item"])
    with open_store(seeded.config()) as (backend, _):
        assert backend.get_collection("products_v1").sparse_vectors["sparse"].modifier == "idf"
        points = backend.retrieve("products_v1", [1, 2], with_vectors=True)
    assert [p.vectors["sparse"]["indices"] for p in points] == [e.indices for e in expected]
    assert all(len(p.vectors["old"]) == 4 for p in points)
    seeded.run("downgrade", "-1", "--yes")
    with open_store(seeded.config()) as (backend, _):
        assert backend.get_collection("products_v1").sparse_vectors == {}
    seeded.run("check")
