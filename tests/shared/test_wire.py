"""Malformed JSON-RPC is recognised and answered; weak bearer tokens are refused."""

from __future__ import annotations

import json
import logging

import pytest

from pai_core.errors import ConfigError
from pai_core.runtime import MIN_TOKEN_LENGTH, check_token, token_variables
from pai_core.wire import INVALID_REQUEST, PARSE_ERROR, RateLimitedLog, triage


@pytest.mark.parametrize(
    "line",
    [
        '{"jsonrpc":"2.0","id":3,"method":"ping"}',
        '{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}',
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        '{"jsonrpc":"2.0","id":3,"result":{}}',
    ],
)
def test_valid_messages_pass(line: str) -> None:
    assert triage(line) is None


@pytest.mark.parametrize(
    ("line", "code", "want_id"),
    [
        ("not json", PARSE_ERROR, None),
        ("[" * 100_000, PARSE_ERROR, None),
        ('{"jsonrpc":"2.0","id":NaN,"method":"ping"}', INVALID_REQUEST, None),
        ('{"jsonrpc":"2.0","id":{},"method":"ping"}', INVALID_REQUEST, None),
        ('{"jsonrpc":"2.0","id":1e99999,"method":"ping"}', INVALID_REQUEST, None),
        ('{"jsonrpc":"2.0","id":true,"method":"ping"}', INVALID_REQUEST, None),
        ('[{"jsonrpc":"2.0","id":1,"method":"ping"}]', INVALID_REQUEST, None),
        ('{"jsonrpc":"1.0","id":7,"method":"ping"}', INVALID_REQUEST, 7),
        (
            json.dumps(
                {"jsonrpc": "2.0", "id": 5, "method": "x", "params": {"a": [[[[[[]]]]]] * 1}}
            ).replace("[[[[[[]]]]]]", "[" * 200 + "]" * 200),
            INVALID_REQUEST,
            5,
        ),
    ],
)
def test_malformed_messages_get_their_error(line: str, code: int, want_id: object) -> None:
    rejection = triage(line)
    assert rejection is not None
    assert (rejection.code, rejection.id) == (code, want_id)
    assert len(rejection.message) < 300  # never echoes a huge input back
    assert json.loads(rejection.as_json())["error"]["code"] == code


def test_rate_limited_log_holds_back_a_flood_and_says_how_much(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limited = RateLimitedLog(logging.getLogger("pai-test"), window_s=3600)
    with caplog.at_level(logging.WARNING):
        sent = [limited.warning("origin", "refused %s", i) for i in range(300)]
        limited.warning("host", "refused host")
    assert sent.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == ["refused 0", "refused host"]


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("x", "at least"),
        ("a" * (MIN_TOKEN_LENGTH - 1), "at least"),
        (" " * 40, "whitespace"),
        ("a long token with spaces inside it", "whitespace"),
        ("a-long-token-ending-in-newline-000\n", "whitespace"),
    ],
)
def test_weak_tokens_are_refused_with_the_reason(token: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        check_token(token, token_variables("pai-gpu_jobs"))
    assert "PAI_GPU_JOBS_HTTP_TOKEN" in str(info.value)
    if token.strip():
        assert token.strip() not in str(info.value)


def test_a_strong_token_and_no_token_pass() -> None:
    check_token("a" * MIN_TOKEN_LENGTH, "PAI_HTTP_TOKEN")
    check_token(None, "PAI_HTTP_TOKEN")
