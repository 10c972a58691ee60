"""HTTP embedders (openai and OpenAI-compatible, Azure, cohere, voyage) through the real httpx client,
against a loopback server that speaks each provider's request/response format and answers with the
static local model's vectors, with injected 429s, 5xx, slow answers, dropped connections,
malformed bodies, bad keys and too-long inputs."""

from __future__ import annotations

import email.utils
import socket
import time

import httpx
import numpy as np
import pytest

from vecmig.embed import EmbedderError, close_embedders, create_embedder, probe
from vecmig.embed.http import retry_after
from vecmig.embed.loopback import Fault, LoopbackEmbeddingServer

KEY = "sk-test-0123456789abcdef"
TEXTS = [f"text {i} about embeddings and retries" for i in range(10)]
FAST_RETRIES = {"retry_backoff": "0.01", "retry_backoff_max": "0.05", "timeout": "0.5"}


@pytest.fixture(scope="module")
def server():
    with LoopbackEmbeddingServer(api_key=KEY) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(server):
    server.reset()
    yield
    close_embedders()


def local(texts, dimensions=None):
    from static_model import get_embeddings

    vecs = np.asarray(get_embeddings(list(texts)), dtype=np.float32)
    if dimensions:
        vecs = vecs[:, :dimensions]
        vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs


def openai(server, **keys):
    return create_embedder("oa", {"provider": "openai", "model": "text-embedding-3-small",
                                  "base_url": server.url + "/v1", "api_key": KEY, **FAST_RETRIES, **keys})


# -- each provider's format --------------------------------------------------------------------


def test_openai_compatible_embedder_returns_the_served_models_vectors(server):
    emb = openai(server)
    np.testing.assert_array_equal(emb.embed_documents(TEXTS), local(TEXTS))
    req = server.requests[-1]
    assert req.path == "/v1/embeddings" and req.authorized
    assert req.body == {"input": TEXTS, "model": "text-embedding-3-small", "encoding_format": "float"}


def test_openai_dimensions_asks_the_service_for_shorter_vectors(server):
    emb = openai(server, dimensions="16")
    out = emb.embed_documents(TEXTS[:3])
    assert out.shape == (3, 16) and emb.dimension == 16
    np.testing.assert_allclose(out, local(TEXTS[:3], 16), rtol=1e-6)
    assert server.requests[-1].body["dimensions"] == 16
    assert probe(emb)["options"] == {"dimensions": 16}


def test_the_same_model_behind_http_has_the_same_probe_hash_as_in_process(server):
    over_http = probe(openai(server))
    in_process = probe(create_embedder("s", {"provider": "static"}))
    assert over_http["probe_sha256"] == in_process["probe_sha256"]
    assert KEY not in repr(over_http) and "base_url" not in over_http["options"]


def test_azure_openai_uses_the_deployment_path_api_version_and_api_key_header(server):
    emb = create_embedder("az", {"provider": "openai", "model": "text-embedding-3-large", "deployment": "emb",
                                 "api_version": "2024-10-21", "base_url": server.url, "api_key": KEY})
    np.testing.assert_array_equal(emb.embed_documents(TEXTS[:2]), local(TEXTS[:2]))
    assert server.requests[-1].path == "/openai/deployments/emb/embeddings" and server.requests[-1].authorized


def test_cohere_sends_search_document_and_search_query_input_types(server):
    emb = create_embedder("co", {"provider": "cohere", "model": "embed-v4.0", "base_url": server.url, "api_key": KEY})
    np.testing.assert_array_equal(emb.embed_documents(TEXTS), local(TEXTS))
    emb.embed_queries(["what is a vector?"])
    docs, query = server.requests[-2].body, server.requests[-1].body
    assert server.requests[-1].path == "/v2/embed"
    assert (docs["input_type"], query["input_type"]) == ("search_document", "search_query")
    assert docs["embedding_types"] == ["float"] and docs["texts"] == TEXTS


def test_voyage_sends_document_and_query_input_types(server):
    emb = create_embedder("vo", {"provider": "voyage", "model": "voyage-3.5", "base_url": server.url + "/voyage/v1",
                                 "api_key": KEY, "dimensions": "32"})
    np.testing.assert_allclose(emb.embed_documents(TEXTS[:4]), local(TEXTS[:4], 32), rtol=1e-6)
    emb.embed_queries(["q"])
    assert [r.body["input_type"] for r in server.requests] == ["document", "query"]
    assert server.requests[0].body["output_dimension"] == 32


def test_many_batches_on_a_thread_pool_come_back_in_order(server):
    texts = [f"sentence {i}" for i in range(500)]
    emb = openai(server, batch_size="16", concurrency="4")
    np.testing.assert_array_equal(emb.embed_documents(texts), local(texts))
    assert len(server.requests) == 32


# -- retries -----------------------------------------------------------------------------------


def test_429_without_retry_after_is_retried_with_backoff(server):
    server.faults.extend([Fault(status=429, message="Rate limit reached"), Fault(status=429)])
    np.testing.assert_array_equal(openai(server).embed_documents(TEXTS), local(TEXTS))
    assert len(server.requests) == 3


def test_429_with_retry_after_waits_as_long_as_the_service_asks(server):
    server.faults.append(Fault(status=429, retry_after="1"))
    started = time.monotonic()
    np.testing.assert_array_equal(openai(server).embed_documents(TEXTS), local(TEXTS))
    assert time.monotonic() - started >= 0.95  # the policy alone would wait at most 0.05s
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(server, status):
    server.faults.extend([Fault(status=status), Fault(status=status)])
    np.testing.assert_array_equal(openai(server).embed_documents(TEXTS[:2]), local(TEXTS[:2]))
    assert len(server.requests) == 3


def test_a_slow_answer_times_out_and_the_retry_succeeds(server):
    server.faults.append(Fault(delay=1.5))
    emb = openai(server, timeout="0.3")
    np.testing.assert_array_equal(emb.embed_documents(TEXTS), local(TEXTS))
    assert len(server.requests) == 2


def test_a_dropped_connection_is_retried(server):
    server.faults.append(Fault(drop=True))
    np.testing.assert_array_equal(openai(server).embed_documents(TEXTS), local(TEXTS))
    assert len(server.requests) == 2


def test_it_gives_up_after_max_retries_with_the_last_error(server):
    server.faults.extend([Fault(status=503, message="The server is overloaded")] * 5)
    with pytest.raises(EmbedderError) as e:
        openai(server, max_retries="2").embed_documents(TEXTS)
    assert len(server.requests) == 3
    message = str(e.value)
    assert message.startswith(f"[embedder:oa] POST {server.url}/v1/embeddings failed after 3 attempts in ")
    assert message.endswith("last: 503 Service Unavailable: The server is overloaded: raise `max_retries` or try again later")


def test_a_retry_after_past_max_retry_time_gives_up_at_once(server):
    server.faults.append(Fault(status=429, retry_after="120"))
    with pytest.raises(EmbedderError, match=r"the service asks to wait 120s more, past max_retry_time = 5"):
        openai(server, max_retry_time="5").embed_documents(TEXTS)
    assert len(server.requests) == 1


def test_nothing_listening_is_retried_then_reported(server):
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emb = create_embedder("down", {"provider": "openai", "model": "m", "base_url": f"http://127.0.0.1:{port}/v1",
                                   "max_retries": "1", **FAST_RETRIES})
    with pytest.raises(EmbedderError, match=rf"\[embedder:down\] POST http://127.0.0.1:{port}/v1/embeddings failed after 2 attempts .* could not connect"):
        emb.embed_documents(["x"])


# -- hard errors: no retry, the provider's message --------------------------------------------


def test_a_bad_key_fails_at_once_with_the_providers_message_and_no_secret(server):
    emb = create_embedder("oa", {"provider": "openai", "model": "m", "base_url": server.url + "/v1",
                                 "api_key": "sk-wrong-key-987654321", **FAST_RETRIES})
    with pytest.raises(EmbedderError) as e:
        emb.embed_documents(TEXTS)
    assert len(server.requests) == 1
    assert str(e.value) == (
        f"[embedder:oa] POST {server.url}/v1/embeddings -> 401 Unauthorized: Incorrect API key provided. You can find "
        "your API key at your account's API keys page.: check `api_key` (or the provider's API key variable)"
    )


def test_a_key_echoed_back_by_the_service_is_scrubbed(server):
    server.faults.append(Fault(status=401, message=f"Incorrect API key provided: {KEY}."))
    with pytest.raises(EmbedderError) as e:
        openai(server).embed_documents(TEXTS)
    assert KEY not in str(e.value) and "Incorrect API key provided: ***." in str(e.value)


@pytest.mark.parametrize("provider,base,message", [
    ("openai", "/v1", "This model's maximum context length is 8000 tokens, however you requested 9000 tokens"),
    ("cohere", "", "This model's maximum context length is 8000 tokens"),
    ("voyage", "/voyage/v1", "This model's maximum context length is 8000 tokens"),
])
def test_a_too_long_input_fails_at_once_with_the_providers_message(server, provider, base, message):
    emb = create_embedder("long", {"provider": provider, "model": "m", "base_url": server.url + base, "api_key": KEY, **FAST_RETRIES})
    with pytest.raises(EmbedderError) as e:
        emb.embed_documents(["short", "x" * 9000])
    assert len(server.requests) == 1
    assert "-> 400 Bad Request: " + message in str(e.value)


def test_a_body_that_is_not_json_is_a_clear_error(server):
    server.faults.append(Fault(body=b"<html><body>502 from a proxy</body></html>"))
    with pytest.raises(EmbedderError) as e:
        openai(server).embed_documents(TEXTS)
    assert str(e.value) == (
        f"[embedder:oa] POST {server.url}/v1/embeddings -> 200: the answer is not JSON "
        "('<html><body>502 from a proxy</body></html>'): check that `base_url` points at the embeddings API"
    )


@pytest.mark.parametrize("body,problem", [
    (b'{"object": "list"}', "no `data` list"),
    (b'{"data": [{"embedding": [0.1, 0.2]}]}', "1 embeddings for 10 inputs"),
    (b'{"data": ' + b"[" + b",".join([b'{"index": 0, "embedding": "AAAA"}'] * 10) + b"]}", "an item of `data` has no `embedding` list"),
])
def test_json_of_the_wrong_shape_is_a_clear_error(server, body, problem):
    server.faults.append(Fault(body=body))
    with pytest.raises(EmbedderError) as e:
        openai(server).embed_documents(TEXTS)
    assert str(e.value) == f"[embedder:oa] {server.url}/v1: malformed answer: {problem}: check that `base_url` is an embeddings API compatible with openai"


def test_the_public_api_without_a_key_is_refused_before_any_request(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmbedderError, match=r"\[embedder:oa\] api_key: not set: export OPENAI_API_KEY or add `api_key = \$\{OPENAI_API_KEY\}`"):
        create_embedder("oa", {"provider": "openai", "model": "text-embedding-3-small"})


def test_the_key_is_read_from_the_providers_environment_variable(server, monkeypatch):
    monkeypatch.setenv("VOYAGE_API_KEY", KEY)
    emb = create_embedder("vo", {"provider": "voyage", "model": "voyage-3.5", "base_url": server.url + "/voyage/v1"})
    emb.embed_documents(["x"])
    assert server.requests[-1].authorized


# -- Retry-After parsing -----------------------------------------------------------------------


def test_retry_after_accepts_seconds_http_dates_and_milliseconds():
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after(httpx.Headers({"retry-after": "7"}), now) == 7.0
    assert retry_after(httpx.Headers({"retry-after": date}), now) == pytest.approx(30.0)
    assert retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "7"}), now) == 0.25
    assert retry_after(httpx.Headers({"retry-after": "soon"}), now) is None
    assert retry_after(httpx.Headers({}), now) is None
