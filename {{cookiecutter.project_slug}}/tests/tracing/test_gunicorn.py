"""The last spans of a worker reach the collector when gunicorn stops it with SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.failures.conftest import gunicorn
from tests.tracing.receiver import Receiver


def test_sigterm_flushes_the_last_spans(tmp_path: Path, migrated: str, receiver: Receiver) -> None:
    """Spans still queued at SIGTERM (the batch delay is ten minutes) are delivered before gunicorn exits 0."""
    with gunicorn(
        tmp_path,
        workers=1,
        DATABASE_URL=migrated,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="600000",
    ) as server:
        for n in range(5):
            response = httpx.get(f"{server.url}/test/query", headers={"x-request-id": f"last-{n}"}, timeout=5)
            assert response.status_code == 200
        time.sleep(0.2)
        assert receiver.spans == [], "spans left before the shutdown: the test proves nothing"
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(30)
        exit_seconds = time.monotonic() - started
        messages = server.messages()
    requests = [s for s in receiver.spans if s.name == "GET /test/query"]
    print(
        f"\n[figure] SIGTERM: {len(requests)} of 5 request spans ({len(receiver.spans)} spans in all) "
        f"received in {receiver.posts} export(s); exit {code} {exit_seconds:.2f} s after the signal"
    )
    assert len(requests) == 5
    assert code == 0
    assert "closed tracing" in messages
