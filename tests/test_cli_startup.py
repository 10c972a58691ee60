"""`vecmig --help` stays instant: it must not import store clients or model libraries."""

from __future__ import annotations

import subprocess
import sys


def test_help_imports_no_client_library():
    code = (
        "import sys; from vecmig.cli import cli; from click.testing import CliRunner;"
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('qdrant_client', 'weaviate', 'numpy', 'jsonschema', 'httpx', 'grpc') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
