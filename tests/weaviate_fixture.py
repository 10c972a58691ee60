"""The ``weaviate_url`` session fixture: one real Weaviate server for the whole test run.

Import it where it is needed (``from weaviate_fixture import weaviate_url  # noqa: F401``), in
``conftest.py`` to share it with every test module. The server is a process-wide singleton, so a
second import site does not start a second server.

Where the server comes from:
1. ``VECMIG_TEST_WEAVIATE_URL`` (e.g. ``weaviate://127.0.0.1:8080?grpc_port=50051``): used as is;
2. else, with Go installed: ``weaviate-server`` is built once (cached under ``$VECMIG_CACHE``) and
   started on free loopback ports for this run;
3. else the tests are skipped, except under CI (``CI`` set), where they fail: CI must not pass by
   silently skipping a backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

SKIP_REASON = "Weaviate tests need Go (to build weaviate-server) or VECMIG_TEST_WEAVIATE_URL=weaviate://host:8080?grpc_port=50051"

_server = None
_failure: str | None = None


def _start_server() -> str:
    """Build (if needed) and start the shared server once; later calls get its url (or its failure)."""
    global _server, _failure
    if _failure:
        pytest.fail(_failure, pytrace=False)
    if _server is None:
        from vecmig.testing.weaviate_server import WeaviateServer, WeaviateServerError

        try:
            _server = WeaviateServer().start()
        except WeaviateServerError as e:
            _failure = f"could not start a Weaviate server for the tests: {e}\n(or set VECMIG_TEST_WEAVIATE_URL to a running one)"
            pytest.fail(_failure, pytrace=False)
    return _server.url


def _stop_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


@pytest.fixture(scope="session")
def weaviate_url(request) -> str:
    url = os.environ.get("VECMIG_TEST_WEAVIATE_URL")
    if url:
        return url
    if shutil.which("go") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{SKIP_REASON} (CI is set: Weaviate tests may not be skipped)", pytrace=False)
        pytest.skip(SKIP_REASON)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        url = _start_server()  # the first build takes minutes: let its progress lines through
    request.session.config.add_cleanup(_stop_server)
    return url
