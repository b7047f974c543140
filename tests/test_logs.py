"""Structured logs: JSON lines off a terminal, run context on every line, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mfs.logs import mask_secrets

SNIPPET = """
from mfs.logs import bind_context, get_logger
log = get_logger("mfs.test")
with bind_context(run_id="r-42", flow="collect", symbol="AAPL"):
    log.info("fetched", url="postgresql://mfs:hunter2@127.0.0.1:5432/mfs")
    log.debug("hidden at info")
    try:
        raise RuntimeError("dsn=postgresql://u:s3cret@h/db")
    except RuntimeError:
        log.exception("failed")
"""


def run_snippet(**env: str) -> list[dict]:
    result = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True,
                            env=dict(os.environ, **env))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stderr.splitlines() if line.strip()]


def test_json_lines_with_context_and_masking() -> None:
    lines = run_snippet(MFS_LOG_LEVEL="INFO")
    assert [line["event"] for line in lines] == ["fetched", "failed"]
    for line in lines:
        assert (line["run_id"], line["flow"], line["symbol"]) == ("r-42", "collect", "AAPL")
    assert lines[0]["url"] == "postgresql://mfs:***@127.0.0.1:5432/mfs"
    assert "s3cret" not in json.dumps(lines) and "hunter2" not in json.dumps(lines)
    assert "RuntimeError" in lines[1]["exception"]


def test_level_from_environment() -> None:
    assert "hidden at info" in [line["event"] for line in run_snippet(MFS_LOG_LEVEL="DEBUG")]


def test_mask_key_value_passwords() -> None:
    assert mask_secrets("host=h password=abc user=u") == "host=h password=*** user=u"
