"""Structured logs: JSON lines off a terminal, run context on every line, secrets masked."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mfs.logs import bind_context, get_logger, mask_secrets

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
    result = subprocess.run(
        [sys.executable, "-c", SNIPPET], capture_output=True, text=True, env=dict(os.environ, **env)
    )
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


# --- what handlers we do not own see: Prefect's API handler, caplog, a plain logging.Formatter ---


@pytest.fixture
def plain_handler() -> Iterator[io.StringIO]:
    """A stdlib handler with a default Formatter (``%(message)s``) on the ``mfs`` logger, as
    Prefect's API handler is attached there."""
    get_logger()  # configured, so our own handler is in place too
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter())
    logging.getLogger("mfs").addHandler(handler)
    yield stream
    logging.getLogger("mfs").removeHandler(handler)


def test_a_plain_handler_gets_a_readable_line_with_key_values_and_context(plain_handler) -> None:
    log = get_logger("mfs.test")
    with bind_context(run_id="r-42", flow="backfill", symbol="AAPL"):
        log.info(
            "ingest window",
            interval="1h",
            start=dt.datetime(2025, 12, 1, 5, tzinfo=dt.UTC),
            symbols=10,
            counts={"inserted": 3},
            reason="no bars",
        )
    assert plain_handler.getvalue() == (
        'ingest window: interval=1h start=2025-12-01T05:00:00+00:00 symbols=10 counts={"inserted":3}'
        ' reason="no bars" (flow=backfill run_id=r-42 symbol=AAPL)\n'
    )


def test_secrets_stay_masked_in_the_readable_message(plain_handler) -> None:
    log = get_logger("mfs.test")
    log.info("connecting", url="postgresql://mfs:hunter2@127.0.0.1:5432/mfs", options="host=h password=abc user=u")
    try:
        raise RuntimeError("dsn=postgresql://u:s3cret@h/db")
    except RuntimeError:
        log.exception("failed")
    text = plain_handler.getvalue()
    first, *rest = text.splitlines()
    assert first == 'connecting: url=postgresql://mfs:***@127.0.0.1:5432/mfs options="host=h password=*** user=u"'
    assert rest[0] == "failed" and rest[-1] == "RuntimeError: dsn=postgresql://u:***@h/db"
    # the traceback comes once, masked: the record carries no exc_info a Formatter would print raw
    assert text.count("Traceback") == 1
    assert "hunter2" not in text and "abc" not in text and "s3cret" not in text and "{'" not in text


def test_caplog_sees_the_readable_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mfs"):
        get_logger("mfs.test").info("ingest window", interval="1h", symbols=10)
    assert "ingest window: interval=1h symbols=10" in caplog.messages
