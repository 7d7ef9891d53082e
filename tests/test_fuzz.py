"""schemathesis against the default bake's OpenAPI, on the running service backed by real PostgreSQL and Redis.

One bounded run (at most ``MAX_EXAMPLES`` generated cases per operation and phase, a fixed seed) feeds every
test here: no response is a 5xx, and every response (problem+json included) is one the schema documents. The
servers come from the baked project's own tests/servers.py, so this needs what its integration tests need.
``FUZZ_SEED=<n>`` explores other cases; a failure prints the request that reproduces it.

The tests at the end replay, one request each, problems an earlier run found, so that they stay fixed.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import run

TOOLS = Path(sys.executable).parent  # schemathesis, from requirements-test.txt
MAX_EXAMPLES = 50
SEED = os.environ.get("FUZZ_SEED", "20261125")
SCHEMA_CHECKS = {
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
}
INPUT_CHECKS = {"negative_data_rejection", "positive_data_acceptance", "missing_required_header"}
METHOD_CHECKS = {"unsupported_method", "allow_header_conformance"}
PROBE = r"/health(/live|/ready|/startup)?"


@dataclass(frozen=True)
class Failure:
    check: str
    code: str
    request: str  # "METHOD /path"
    status: int | None
    message: str
    curl: str

    def __str__(self) -> str:
        first_line = (self.message.splitlines() or [""])[0]
        return f"{self.code} {self.check}: {self.request} -> {self.status}: {first_line}\n    {self.curl}"


@dataclass
class Report:
    cases: int
    statuses: Counter[int]
    per_operation: Counter[str]
    failures: list[Failure]
    errors: list[str]

    def unexpected(self, checks: set[str]) -> list[str]:
        found = {str(f) for f in self.failures if f.check in checks}
        return sorted(found)


def load_servers(project: Path, module: str = "tests.servers") -> ModuleType:
    """A module of the baked project's tests, imported from its package ``tests`` (this folder is no package)."""
    sys.path.insert(0, str(project))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(project))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def service(default_project: Path, default_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The default bake serving on a free port, migrated, on a throwaway PostgreSQL and Redis; yields its URL."""
    servers = load_servers(default_project)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TEST_SERVERS", "local")  # test_containers.py covers the container path
        postgres = servers.postgres_server()
        redis = load_servers(default_project, "tests.redis_cache.servers").redis_server()
    workdir = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    env |= {"DATABASE_URL": postgres.url, "REDIS_URL": redis.url, "PORT": str(port), "LOG_LEVEL": "WARNING"}
    env["MANAGEMENT_PORT"] = str(free_port())  # not the default, which another bake's server may hold
    package = next(p.name for p in (default_project / "src").iterdir() if (p / "__init__.py").exists())
    python = str(default_bin / "python")
    log = workdir / "service.log"
    process = None
    try:
        run([python, "-m", package, "migrate"], cwd=workdir, env=env)
        with log.open("wb") as out:
            process = subprocess.Popen([python, "-m", package, "serve"], cwd=workdir, env=env, stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while get(f"{url}/health/ready") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the service did not become ready:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        redis.close()
        postgres.close()


def failures_of(recorder: dict[str, Any]) -> Iterator[Failure]:
    for case_id, checks in recorder.get("checks", {}).items():
        interaction = recorder.get("interactions", {}).get(case_id) or {}
        request, response = interaction.get("request", {}), interaction.get("response") or {}
        path = urllib.parse.urlparse(request.get("uri", "")).path
        for check in checks:
            if check["status"] != "failure":
                continue
            failure = check.get("failure_info", {}).get("failure", {})
            body = request.get("body", {}).get("$base64")
            method, uri = request.get("method"), request.get("uri")
            curl = f"curl -X {method} {uri}" + (f" (body, base64: {body})" if body else "")
            code, message = failure.get("code", "?"), failure.get("message", "")
            yield Failure(check["name"], code, f"{method} {path}", response.get("status_code"), message, curl)


def read_report(path: Path) -> Report:
    """Count the requests, statuses and failed checks of schemathesis's NDJSON event stream."""
    report = Report(0, Counter(), Counter(), [], [])
    seen: set[str] = set()
    for line in path.read_text().splitlines():
        ((kind, event),) = json.loads(line).items()
        if "Error" in kind:
            report.errors.append(f"{kind}: {json.dumps(event)[:2000]}")
        if kind != "ScenarioFinished":
            continue
        recorder = event.get("recorder", {})
        for case_id, interaction in recorder.get("interactions", {}).items():
            if case_id in seen or not interaction.get("response"):
                continue
            seen.add(case_id)
            report.cases += 1
            report.statuses[interaction["response"]["status_code"]] += 1
            report.per_operation[recorder.get("label", "?")] += 1
        report.failures.extend(failures_of(recorder))
    return report


@pytest.fixture(scope="module")
def report(service: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One schemathesis run over every operation and phase: examples, coverage, fuzzing, stateful."""
    workdir = tmp_path_factory.mktemp("schemathesis")
    events = workdir / "events.ndjson"
    cmd = [str(TOOLS / "schemathesis"), "run", f"{service}/openapi.json", "--checks", "all", "--no-color"]
    cmd += ["--max-examples", str(MAX_EXAMPLES), "--seed", SEED, "--workers", "1", "--request-timeout", "10"]
    cmd += ["--suppress-health-check", "all", "--report", "ndjson", "--report-ndjson-path", str(events)]
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.monotonic() - started
    assert result.returncode in (0, 1), f"schemathesis could not run:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    parsed = read_report(events)
    statuses = dict(sorted(parsed.statuses.items()))
    print(f"\nschemathesis (seed {SEED}): {parsed.cases} requests in {elapsed:.0f}s, statuses {statuses}")
    return parsed


def test_every_operation_is_exercised(report: Report) -> None:
    """The run reached every operation of the schema, without an error of its own."""
    assert report.errors == []
    assert {"GET /api/v1/items", "POST /api/v1/items", "GET /api/v1/items/{item_id}", "GET /health/ready"} <= set(
        report.per_operation
    )
    assert report.cases >= 100


def test_no_server_errors(report: Report) -> None:
    """No generated request, valid or not, makes the service answer 5xx while its dependencies are healthy."""
    assert report.unexpected({"not_a_server_error"}) == []


def test_responses_match_the_schema(report: Report) -> None:
    """Every status code, content type, header and body, problem+json included, is one the OpenAPI documents."""
    assert report.unexpected(SCHEMA_CHECKS) == []


def test_validation_matches_the_schema(report: Report) -> None:
    """Requests the schema rejects are refused with a 4xx, and requests it accepts are not."""
    assert report.unexpected(INPUT_CHECKS) == []


def test_undeclared_methods_are_refused(report: Report) -> None:
    """A method the schema does not list answers 405 with an Allow header naming the ones it does."""
    assert report.unexpected(METHOD_CHECKS) == []


def request(url: str, method: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def openapi(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=5) as response:
        loaded: dict[str, Any] = json.load(response)
        return loaded


def test_probe_paths_refuse_other_methods_with_405(service: str) -> None:
    """POST on a probe path answers 405 problem+json naming GET, not a plain-text 500."""
    status, headers, _ = request(f"{service}/health/live", "POST", b"{}")
    assert (status, headers.get("content-type")) == (405, "application/problem+json")
    assert "GET" in headers.get("allow", "")


def test_probe_content_type_is_documented(service: str) -> None:
    """The content type /health answers with is the one its OpenAPI operation documents."""
    status, headers, _ = request(f"{service}/health", "GET")
    documented = openapi(service)["paths"]["/health"]["get"]["responses"][str(status)].get("content", {})
    assert headers["content-type"].split(";")[0] in documented


def test_405_lists_every_method_of_the_path(service: str) -> None:
    """A 405 on /api/v1/items lists both GET and POST in Allow."""
    status, headers, _ = request(f"{service}/api/v1/items", "DELETE")
    assert status == 405
    assert {"GET", "POST"} <= {method.strip() for method in headers.get("allow", "").split(",")}


def test_unparsable_body_status_is_documented(service: str) -> None:
    """A body that is not UTF-8 is refused with a status the operation documents."""
    status, headers, _ = request(f"{service}/api/v1/items", "POST", b'{"name": "\xff"}')
    assert 400 <= status < 500 and headers["content-type"] == "application/problem+json"
    assert str(status) in openapi(service)["paths"]["/api/v1/items"]["post"]["responses"]


def test_schema_refuses_what_the_service_refuses(service: str) -> None:
    """The item name pattern in the OpenAPI excludes NUL, which the service answers 422 to."""
    status, _, _ = request(f"{service}/api/v1/items", "POST", json.dumps({"name": "a\u0000b"}).encode())
    assert status == 422
    schema = openapi(service)["components"]["schemas"]["ItemCreate"]["properties"]["name"]
    assert "pattern" in schema and not re.search(schema["pattern"], "a\u0000b")
