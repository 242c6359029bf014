"""Every server over Streamable HTTP through the MCP conformance suite (npm, Node 22).

The suite runs all its active server scenarios against each server, with
``conformance-expected-failures.yml`` as the baseline: a regression, or a listed scenario that
starts passing, fails the run. The baseline lists only scenarios that need the suite's own
fixtures (its tools, resources and prompts) or a capability PAI does not offer, and this test
checks each listed scenario failed for exactly that reason, not because the server broke.

Two scenarios "pass" on any ``isError`` result, which a server without the suite's fixture tool
returns for the unknown tool; they are reported as vacuous, never counted as evidence.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SERVERS, RunningServer, node_client
from tests.e2e.client_fixtures import client_env, running_servers

pytestmark = pytest.mark.clients

BASELINE = Path(__file__).with_name("conformance-expected-failures.yml")
# Scenarios a server passes on its own behaviour (declared capabilities, transport, security).
MUST_PASS = {
    "server-initialize",
    "ping",
    "logging-set-level",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
}
# Scenarios whose check accepts the error result for the suite's missing fixture tool.
VACUOUS = {"tools-call-simple-text", "tools-call-error"}
# How a scenario fails when only the suite's fixture (or an undeclared capability) is missing.
MISSING_FIXTURE = re.compile(
    r"Unknown (tool|prompt|resource)|Method not found|did not request (sampling|elicitation)"
    r"|No (image|audio|resource) content found|No (log|progress) notifications received"
    r"|Expected multiple content items"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return client_env(tmp_path_factory.mktemp("conformance"))


@pytest.fixture(scope="module")
def servers(env: dict[str, str]) -> Iterator[dict[tuple[str, str], RunningServer]]:
    node_client("conformance")  # skip before starting servers if the suite is missing
    with running_servers(SERVERS, ("http",), env) as running:
        yield running


def _checks(results: Path) -> dict[str, list[dict[str, Any]]]:
    """Scenario name → its checks, from the suite's ``server-<scenario>-<time>/checks.json``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in results.glob("server-*/checks.json"):
        scenario = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", path.parent.name)
        found[scenario] = json.loads(path.read_text())
    return found


def _is_vacuous(check: dict[str, Any]) -> bool:
    result = check.get("details", {}).get("result", {})
    texts = " ".join(c.get("text", "") for c in result.get("content", []))
    return bool(result.get("isError")) and texts.startswith("Unknown tool: test_")


@pytest.mark.parametrize("name", SERVERS)
def test_conformance_suite(
    name: str,
    servers: dict[tuple[str, str], RunningServer],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    node = node_client("node")  # the suite needs Node 22; the npm package `node` provides it
    out = subprocess.run(
        [
            str(node),
            str(node_client("conformance")),
            "server",
            "--url",
            servers[(name, "http")].url,
            "--expected-failures",
            str(BASELINE),
            "-o",
            str(tmp_path / "results"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = out.stdout[out.stdout.find("=== SUMMARY ===") :]
    assert out.returncode == 0, summary or out.stdout[-3000:] + out.stderr[-2000:]

    checks = _checks(tmp_path / "results")
    passed = {s for s, cs in checks.items() if cs and all(c["status"] != "FAILURE" for c in cs)}
    expected_failures = set(re.findall(r"^\s*-\s*([\w-]+)", BASELINE.read_text(), re.M))
    assert passed >= MUST_PASS, summary
    assert passed | expected_failures == set(checks), summary

    for scenario in expected_failures & set(checks):
        reasons = [c.get("errorMessage", "") for c in checks[scenario] if c["status"] != "SUCCESS"]
        assert reasons and all(MISSING_FIXTURE.search(r) for r in reasons), (scenario, reasons)

    vacuous = {s for s in passed if any(_is_vacuous(c) for c in checks[s])}
    assert vacuous <= VACUOUS, f"new scenarios pass only on an unknown-tool error: {vacuous}"
