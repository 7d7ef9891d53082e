"""Each 500 reaches Sentry once, tagged and without secrets; nothing else does; shutdown sends what is queued.

The SDK sends to a real HTTP server on this machine (``receiver.py``), so what is asserted is what would leave
the process: the envelope's bytes as they arrive.
"""

from __future__ import annotations

import json
import time

import sentry_sdk

from {{ cookiecutter.package_name }}.__main__ import check_config
from tests.conftest import MANAGEMENT, SettingsFactory, refusal
from tests.error_reports.conftest import Secrets, failing_app
from tests.error_reports.receiver import Receiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_crash_is_reported_once_with_its_request_and_trace_ids_and_no_secret(
    reporting: SettingsFactory, receiver: Receiver, secret: Secrets
) -> None:
    """A route that raises answers 500 and sends one event with the exception, tagged with the request id and the
    traceparent's trace id (left out without one); no secret is anywhere in what was sent."""
    credentials = {"Authorization": f"Bearer {secret.caller_token}", "Cookie": f"session={secret.cookie}"}
    async with failing_app(reporting()) as client:
        traced = await client.post(
            "/test/crash-holding-secrets",
            json={"card": secret.card},
            headers={
                **credentials,
                "X-Request-ID": "crash-traced",
                "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
            },
        )
        untraced = await client.post(
            "/test/crash-holding-secrets",
            json={"card": secret.card},
            headers={**credentials, "X-Request-ID": "crash-untraced"},
        )
        assert (traced.status_code, untraced.status_code) == (500, 500)
        assert traced.headers["content-type"] == "application/problem+json"
        started = time.monotonic()
        envelopes = receiver.wait_for(2)
        print(f"\n[figure] 2 crashes -> {len(envelopes)} envelopes within {time.monotonic() - started:.3f} s")
    assert len(receiver.envelopes) == 2
    tags = []
    for envelope in receiver.envelopes:
        (event,) = envelope.events()
        assert envelope.path == "/api/1/envelope/"
        assert [header["type"] for header, _ in envelope.items] == ["event"]
        (exception,) = event["exception"]["values"]
        assert exception["type"] == "RuntimeError"
        assert exception["mechanism"]["handled"] is False
        assert event["request"]["url"].endswith("/test/crash-holding-secrets")
        assert all("vars" not in frame for frame in exception["stacktrace"]["frames"])
        tags.append(event["tags"])
        leaked = [name for name, value in secret.all().items() if value.encode() in envelope.body + envelope.raw]
        print(f"[figure] envelope {len(envelope.raw)} bytes sent ({len(envelope.body)} unpacked); tags {event['tags']}")
        print(f"[figure] exception as sent: {exception['value']!r}; secrets found in it: {leaked}")
        assert leaked == []
        assert "[Filtered]" in exception["value"]
    assert tags == [{"request_id": "crash-traced", "trace_id": TRACE_ID}, {"request_id": "crash-untraced"}]


async def test_a_database_error_answered_500_is_reported(make_settings: SettingsFactory, receiver: Receiver) -> None:
    """A query the database refuses goes through the database error handler to a 500, reported once."""
    async with failing_app(make_settings(SENTRY_DSN=receiver.dsn)) as client:
        assert (await client.get("/test/bad-sql", headers={"X-Request-ID": "bad-sql"})).status_code == 500
        (envelope,) = receiver.wait_for(1)
    (event,) = envelope.events()
    assert event["exception"]["values"][-1]["type"] == "OperationalError"
    assert event["tags"] == {"request_id": "bad-sql"}
    assert len(receiver.envelopes) == 1


async def test_client_errors_and_the_services_own_refusals_are_not_reported(
    reporting: SettingsFactory, receiver: Receiver, secret: Secrets
) -> None:
    """404, 405, 422, 413, 503 (database down, breaker open) and 504 (deadline) send nothing; a 500 after them is
    the only envelope."""
    admin = {"Authorization": f"Bearer {secret.admin_token}"}
    async with failing_app(reporting(MAX_BODY_BYTES="1000")) as client:
        answers = {
            "404 unknown route": await client.get("/nowhere"),
            "405 wrong method": await client.delete("/test/echo"),
            "422 invalid body": await client.post(
                "/test/echo", content=b"[1", headers={"content-type": "application/json"}
            ),
            "413 body too large": await client.post("/test/echo", content=b"{}" + b" " * 2000),
            "503 database down": await client.get("/test/query"),
            "breaker forced open": await client.post(
                f"{MANAGEMENT}/admin/breakers/database", json={"action": "force_open"}, headers=admin
            ),
            "503 breaker open": await client.get("/test/query"),
            "504 deadline": await client.get("/test/wait?seconds=2", headers={"X-Request-Timeout": "0.2"}),
        }
        statuses = {name: response.status_code for name, response in answers.items()}
        print(f"\n[figure] answered {statuses}")
        assert statuses == {
            "404 unknown route": 404,
            "405 wrong method": 405,
            "422 invalid body": 422,
            "413 body too large": 413,
            "503 database down": 503,
            "breaker forced open": 200,
            "503 breaker open": 503,
            "504 deadline": 504,
        }
        assert (await client.get("/test/crash", headers={"X-Request-ID": "last"})).status_code == 500
        receiver.wait_for(1)
    # Shutdown has sent everything queued: an envelope for any of the refusals would be here too.
    events = [event for envelope in receiver.envelopes for event in envelope.events()]
    print(f"[figure] envelopes received: {len(receiver.envelopes)}, tagged {[e['tags'] for e in events]}")
    assert [event["tags"]["request_id"] for event in events] == ["last"]
    assert receiver.requests == 1


async def test_without_a_dsn_the_sdk_is_not_started(make_settings: SettingsFactory, receiver: Receiver) -> None:
    """With SENTRY_DSN unset, the SDK has no client and a crash is answered 500 and only logged."""
    async with failing_app(make_settings()) as client:
        assert not sentry_sdk.get_client().is_active()
        assert (await client.get("/test/crash")).status_code == 500
    assert not sentry_sdk.get_client().is_active()
    assert receiver.requests == 0


async def test_shutdown_sends_what_is_queued_and_stops_the_sdk(
    make_settings: SettingsFactory, receiver: Receiver
) -> None:
    """A report still queued when the service stops is sent during shutdown; then the SDK is stopped."""
    async with failing_app(make_settings(SENTRY_DSN=receiver.dsn)) as client:
        assert sentry_sdk.get_client().is_active()
        assert (await client.get("/test/crash")).status_code == 500
    assert len(receiver.envelopes) == 1  # no wait: shutdown returned after sending it
    assert not sentry_sdk.get_client().is_active()


async def test_a_sentry_that_does_not_answer_delays_shutdown_no_longer_than_its_budget(
    make_settings: SettingsFactory,
) -> None:
    """With Sentry taking the report and never answering, shutdown still ends within SHUTDOWN_CLOSE_SECONDS."""
    hung = Receiver(hang=True)
    try:
        async with failing_app(make_settings(SENTRY_DSN=hung.dsn, SHUTDOWN_CLOSE_SECONDS="1")) as client:
            assert (await client.get("/test/crash")).status_code == 500
            started = time.monotonic()
        took = time.monotonic() - started
        print(
            f"\n[figure] shutdown with a hung Sentry took {took:.2f} s (budget 1 s); requests it got: {hung.requests}"
        )
        assert hung.requests == 1
        assert took < 1.3
    finally:
        hung.close()


def test_check_config_masks_the_dsn(make_settings: SettingsFactory) -> None:
    """check-config shows where reports go, never the DSN's key."""
    shown = check_config(make_settings(SENTRY_DSN="https://0123456789abcdef@o1.ingest.example/42"))
    assert json.loads(shown)["error_reports"]["dsn"] == "https://***@o1.ingest.example/42"
    assert "0123456789abcdef" not in shown


def test_a_bad_dsn_stops_the_service_naming_the_variable(make_settings: SettingsFactory) -> None:
    """A DSN Sentry would refuse stops the service at start with one line naming SENTRY_DSN, without echoing it."""
    line = refusal(make_settings, SENTRY_DSN="ftp://key@sentry.example/1")
    assert line.startswith("SENTRY_DSN: ")
    assert "ftp://" not in line
