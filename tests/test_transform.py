"""transform_vectors on every backend (embedded Qdrant; the real Weaviate server): truncation is the
model's own lower-dimensional output, and a learned linear map reports the recall it measured —
from the shipped static model (64-d) to its 32-d truncation, and to real OpenAI ada-002 vectors."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from test_verify import TEMPLATE, Ops, all_points, embed, jeopardy, make, render, unit

from vecmig.backends import connect
from vecmig.config import Config
from vecmig.errors import PlanError, ScriptError
from vecmig.ops import build_op
from vecmig.ops.transform import MAP_CHUNK, Learned, LinearMap, clear_map, learn_linear_map, load_map, save_map, truncate
from vecmig.errors import CheckFailed
from vecmig.datapath.text import text_hash, text_hash_field
from vecmig.schema import CollectionSpec, SchemaView, VectorSpec
from vecmig.state import StateStore

N = 120


@pytest.mark.parametrize("in_place", [False, True], ids=["new-collection", "in-place"])
def test_truncate_gives_what_the_model_gives_at_fewer_dimensions(backend, in_place):  # noqa: F811
    ops = Ops(backend)
    points = jeopardy(N, ("static",))
    for p in points:  # as a backfill leaves them: the hash of the embedded text next to the vector
        p.payload[text_hash_field("static")] = text_hash(render(p.payload))
    if in_place:
        source = target = make(backend, "Jeopardy", {"static": 64, "static32": 32}, points)
        params = {"source": source}
    else:
        source = make(backend, "Jeopardy_v1", {"static": 64}, points)
        target = make(backend, "Jeopardy_v2", {"static32": 32})
        params = {"source": source, "target": target}
    op, result = ops.apply("transform_vectors", {**params, "from_vector": "static", "to_vector": "static32", "method": "truncate",
                                                 "dims": 32, "batch_size": 32})
    assert result == {"method": "truncate", "dims": 32, "points": N, "skipped": 0}
    got = all_points(backend, target)
    assert sorted(got) == list(range(N))
    derived = np.asarray([got[i].vectors["static32"] for i in range(N)])
    assert np.allclose(np.linalg.norm(derived, axis=1), 1.0, atol=1e-5)  # re-normalized
    assert np.allclose(derived, embed("static32", [render(p.payload) for p in points]), atol=1e-5)
    assert all(got[i].payload[text_hash_field("static32")] == points[i].payload[text_hash_field("static")] for i in range(N))
    assert got[3].payload["question"] == points[3].payload["question"]
    assert op.reverse(result).op_name == "nothing_to_undo"


def test_a_linear_map_to_the_32_dim_truncation_is_learned_from_points_that_have_both(backend):  # noqa: F811
    """60 points were dual-written with both vectors; the map fills static32 for the 60 others."""
    ops = Ops(backend)
    points = jeopardy(N, ("static",))
    truth = embed("static32", [render(p.payload) for p in points])
    for p in points[:60]:
        p.vectors["static32"] = truth[p.id].tolist()
    name = make(backend, "Jeopardy", {"static": 64, "static32": 32}, points)
    _, result = ops.apply("transform_vectors", {"source": name, "from_vector": "static", "to_vector": "static32", "method": "linear",
                                                "sample": 60, "min_recall": 0.7})
    assert (result["method"], result["sample"], result["sample_points"], result["folds"]) == ("linear", "60 points that have both vectors", 60, 5)
    assert 0.7 <= result["recall_at_10"] <= 1.0 and result["chance"] == pytest.approx(10 / 59, abs=1e-4) and result["points"] == N
    assert result["map"]["shape"] == [64, 32] and result["map"]["normalize"] is True
    journaled = LinearMap.from_raw(base64.b64decode(result["map"]["float32_base64"]), [64, 32], True)
    assert journaled.sha256 == result["map"]["sha256"]
    got = all_points(backend, name)
    assert all(np.allclose(got[i].vectors["static32"], truth[i], atol=1e-5) for i in range(60))  # the dual-written ones are kept
    derived = unit([got[i].vectors["static32"] for i in range(60, N)])
    assert np.allclose(derived, journaled(np.asarray([points[i].vectors["static"] for i in range(60, N)])), atol=1e-4)
    assert np.mean(np.sum(derived * truth[60:], axis=1)) > 0.9  # close to what the model makes


def test_a_linear_map_to_another_model_reports_its_low_recall_and_min_recall_stops_it(backend):  # noqa: F811
    """static (64-d) -> OpenAI ada-002 (1536-d): 100 points have both; the map exists, but loses most
    of the neighbourhood, and min_recall refuses it before anything is written."""
    ops = Ops(backend)
    source = make(backend, "Jeopardy_v1", {"static": 64}, jeopardy(N, ("static",)))
    target = make(backend, "Jeopardy_v2", {"ada": 1536}, jeopardy(100))
    params = {"source": source, "target": target, "from_vector": "static", "to_vector": "ada", "method": "linear", "sample": 100}
    with pytest.raises(CheckFailed) as failed:
        ops.apply("transform_vectors", {**params, "min_recall": 0.9})
    message = str(failed.value)
    recall = float(message.split("recall@10 of the learned linear map is ")[1].split(" ")[0])
    assert 0.13 < recall < 0.5  # above chance (0.101), far below what re-embedding gives (1.0)
    assert message.endswith(f"{recall:.3f} (chance 0.101, cross-validated among 100 sample points), below min_recall 0.9: "
                            "nothing was written; re-embed with backfill instead")
    assert backend.count(target) == 100


def test_a_linear_map_learned_from_a_sample_embedded_with_the_new_model(backend):  # noqa: F811
    ops = Ops(backend)
    source = make(backend, "Jeopardy_v1", {"static": 64}, jeopardy(N, ("static",)))
    target = make(backend, "Jeopardy_v2", {"static32": 32})
    _, result = ops.apply("transform_vectors", {"source": source, "target": target, "from_vector": "static", "to_vector": "static32",
                                                "method": "linear", "sample": {"size": 100, "embedder": "static32", "text": TEMPLATE}})
    assert result["sample"] == "100 points embedded with 'static32'" and result["measured_points"] == 100 and result["points"] == N
    assert result["recall_at_10"] >= 0.7
    assert any("linear map 64 -> 32 learned on 100 points embedded with 'static32'" in line and "cross-validated among 100 points" in line
               for line in ops.lines)
    assert any("note: 100 sample points are few for 64-d old vectors" in line for line in ops.lines)
    assert backend.count(target) == N


def test_learn_linear_map_recovers_an_exact_linear_relation():
    rng = np.random.default_rng(1)
    old = rng.normal(size=(300, 16))
    weights = rng.normal(size=(16, 8))
    learned = learn_linear_map(old, old @ weights, "dot")
    assert learned.recall == 1.0 and (learned.points, learned.measured) == (300, 300) and learned.chance == pytest.approx(10 / 299)
    assert np.allclose(learned.map.weights, weights, atol=1e-4) and learned.map.normalize is False
    assert np.allclose(truncate(np.array([[3.0, 4.0, 12.0]]), 2), [[0.6, 0.8]])
    assert "float32_base64" in learned.map.describe()  # 128 values: journaled in full
    assert "float32_base64" not in LinearMap(np.zeros((64, 1536), np.float32), True).describe()  # 98,304: shape and sha256 only


def test_the_learned_map_survives_a_resume_in_checkpoint_records():
    backend = connect(Config(url="qdrant+memory://"))
    state = StateStore(backend.records("vecmig_state"))
    state.ensure()
    big = Learned(LinearMap(np.random.default_rng(2).normal(size=(520, 520)).astype(np.float32), True), 0.61, 0.01, 1000, 1000)
    assert big.map.weights.size > MAP_CHUNK  # kept in two records
    save_map(state, "r1/up/0", big, "1000 points")
    loaded, how = load_map(state, "r1/up/0")
    assert how == "1000 points" and loaded.map.sha256 == big.map.sha256 and loaded.summary() == big.summary()
    clear_map(state, "r1/up/0")
    assert load_map(state, "r1/up/0") is None and not state.records.scan("checkpoint")


def test_transform_vectors_is_checked_at_plan_time():
    backend = connect(Config(url="qdrant+memory://"))
    backend.create_collection(CollectionSpec("c", vectors={"big": VectorSpec(64), "small": VectorSpec(32)}))
    view = SchemaView.from_backend(backend)
    base = {"source": "c", "from_vector": "big", "to_vector": "small"}

    def check(params, match, error=PlanError):
        with pytest.raises(error, match=match):
            build_op("transform_vectors", {**base, **params}, "test").validate(view, backend)

    check({"method": "truncate"}, r"truncate needs `dims`")
    check({"method": "truncate", "dims": 16}, r"dims is 16 but c.small has 32 dimensions")
    check({"method": "truncate", "dims": 100, "to_vector": "big", "from_vector": "small"}, r"dims 100 is more than the 32 dimensions of 'small'")
    check({"method": "truncate", "dims": 32, "sample": 100}, r"`sample` and `min_recall` are for method: linear")
    check({"method": "linear"}, r"a linear map is learned from a sample")
    check({"method": "linear", "sample": 100, "dims": 32}, r"`dims` is for truncate")
    check({"method": "linear", "sample": 10}, r"sample: 10 is not allowed", ScriptError)
    check({"method": "linear", "sample": {"size": 100, "embedder": "e", "text": "{{ x "}}, r"text template")
    check({"method": "truncate", "dims": 32, "to_vector": "big"}, r"from_vector and to_vector are the same vector")
    check({"method": "truncate", "dims": 32, "to_vector": "nope"}, r"collection 'c' has no vector 'nope'")
    check({"method": "truncate", "dims": 32, "target": "c"}, r"leave `target` out to transform in place")
    check({"method": "cut", "dims": 32}, r"method: 'cut' is not one of", ScriptError)
    op = build_op("transform_vectors", {**base, "method": "linear", "sample": {"size": 100, "embedder": "static32", "text": "{{ x }}"}}, "test")
    op.validate(view, backend)
    assert op.embedder_names(view) == {"static32": 32}


def test_a_resumed_run_writes_with_the_map_it_saved_instead_of_learning_again():
    backend = connect(Config(url="qdrant+memory://"))
    ops = Ops(backend)
    name = make(backend, "jeopardy", {"static": 64, "static32": 32}, jeopardy(60, ("static",)))
    saved = Learned(LinearMap(np.eye(64, 32, dtype=np.float32), True), 0.5, 0.1, 100, 100)  # what the killed run learned
    save_map(ops.state, "r1/up/0", saved, "100 points that have both vectors")
    _, result = ops.apply("transform_vectors", {"source": name, "from_vector": "static", "to_vector": "static32", "method": "linear",
                                                "sample": 50}, checkpoint_key="r1/up/0")
    assert "resuming with the map learned before (recall@10 0.500)" in ops.lines[0]
    assert result["map"]["sha256"] == saved.map.sha256 and result["recall_at_10"] == 0.5
    got = all_points(backend, name)
    assert np.allclose(got[9].vectors["static32"], truncate(np.asarray([got[9].vectors["static"]]), 32)[0], atol=1e-6)
    assert load_map(ops.state, "r1/up/0") is None  # cleared once done


def test_too_few_points_with_both_vectors_is_a_clear_failure():
    backend = connect(Config(url="qdrant+memory://"))
    ops = Ops(backend)
    points = jeopardy(30, ("static",))
    for p in points[:10]:
        p.vectors["static32"] = p.vectors["static"][:32]
    name = make(backend, "jeopardy", {"static": 64, "static32": 32}, points)
    with pytest.raises(CheckFailed, match=r"the sample has only 10 points \(10 points that have both vectors\); a linear map needs at least 50: "
                                          r"embed one with `sample: \{size: N, embedder: NEW, text: TEMPLATE\}`"):
        ops.apply("transform_vectors", {"source": name, "from_vector": "static", "to_vector": "static32", "method": "linear", "sample": 100})
