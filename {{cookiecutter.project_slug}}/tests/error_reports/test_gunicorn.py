"""Error reports as production runs them: gunicorn's forked workers each start the SDK, and stop it on SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.error_reports.receiver import Receiver
from tests.failures.conftest import gunicorn


def test_each_worker_reports_its_500s_and_exits_cleanly_on_sigterm(tmp_path: Path, receiver: Receiver) -> None:
    """Under gunicorn with two workers, every 500 arrives once with its request id, and SIGTERM still exits 0."""
    with gunicorn(
        tmp_path, workers=2, SENTRY_DSN=receiver.dsn, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}"
    ) as server:
        ids = [f"worker-crash-{n}" for n in range(6)]
        with httpx.Client(base_url=server.url, timeout=5) as client:
            statuses = [client.get("/test/crash", headers={"X-Request-ID": id_}).status_code for id_ in ids]
            assert client.get("/nowhere").status_code == 404
        assert statuses == [500] * len(ids)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(30)
        exit_seconds = time.monotonic() - started
        messages = server.messages()
    reported = sorted(event["tags"]["request_id"] for envelope in receiver.envelopes for event in envelope.events())
    print(f"\n[figure] gunicorn: {len(ids)} crashes -> {len(reported)} envelopes; exit {code} {exit_seconds:.1f} s")
    assert reported == sorted(ids)
    assert code == 0
    assert messages.count("closed error reports") == 2
