"""Clients that send too much or too slowly, over raw sockets, against real gunicorn on real PostgreSQL.

Each attack gets its refusal and a closed connection while a well-behaved client goes on reading and writing:
it sees no error and no slow answer, the one worker's memory stays bounded, and no worker is replaced.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.failures.conftest import Gunicorn, gunicorn

MiB = 1024 * 1024
HEAD_TIMEOUT = 2.0
RSS_BOUND_MIB = 200  # the Deployment's limit is 512 MiB


class WellBehaved(threading.Thread):
    """Reads and writes in a loop, counting errors and the slowest answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.errors, self.worst, self.requests = url, 0, 0.0, 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stopping.is_set():
                for method, path, body in (("GET", "/test/query", None), ("POST", "/test/echo", {"a": 1})):
                    started = time.monotonic()
                    try:
                        ok = client.request(method, path, json=body).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    self.worst = max(self.worst, time.monotonic() - started)
                    self.errors += not ok
                    self.requests += 1

    def served(self, more: int) -> None:
        """Wait until it has had ``more`` answers."""
        target = self.requests + more
        deadline = time.monotonic() + 30
        while self.requests < target and time.monotonic() < deadline:
            time.sleep(0.01)


@contextmanager
def well_behaved(server: Gunicorn) -> Iterator[WellBehaved]:
    """A well-behaved client at work from before the block (10 answers) until after it (10 more)."""
    client = WellBehaved(server.url)
    client.start()
    client.served(10)
    try:
        yield client
        client.served(10)
    finally:
        client.stopping.set()
        client.join(15)


@pytest.fixture
def server(tmp_path: Path, migrated: str) -> Iterator[Gunicorn]:
    env = {"DATABASE_URL": migrated, "HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT), "BODY_READ_TIMEOUT_SECONDS": "1"}
    with gunicorn(tmp_path, workers=1, **env) as running:
        yield running


def connect(server: Gunicorn) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def rss_mib(server: Gunicorn) -> float:
    (pid,) = server.worker_pids()
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024


def declared_body(sock: socket.socket, size: int) -> bytes:
    head = f"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    sock.sendall(head.encode() + b'{"a": "' + b"x" * 65536)
    return answer(sock)


def chunked_body(sock: socket.socket, size: int) -> bytes:
    head = b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    sock.sendall(head + b"\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    sent = 0
    try:
        while sent < size:
            sock.sendall(chunk)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass  # cut off at the limit, as it should be
    assert sent < 16 * MiB, f"the server read {sent / MiB:.0f} MiB of a chunked body"
    try:
        return answer(sock)
    except ConnectionResetError:
        return b"HTTP/1.1 413 (reset after the answer)"


def huge_header(sock: socket.socket) -> bytes:
    try:
        sock.sendall(b"GET /test/query HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * MiB + b"\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    return answer(sock)


def many_headers(sock: socket.socket) -> bytes:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
    try:
        sock.sendall(b"GET /test/query HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    return answer(sock)


def body_stops_halfway(sock: socket.socket) -> bytes:
    head = b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    sock.sendall(head + b'{"a": ')  # then nothing
    return answer(sock)


ATTACKS = [
    pytest.param(lambda sock: declared_body(sock, 400 * MiB), b" 413 ", id="content-length-400MiB"),
    pytest.param(lambda sock: chunked_body(sock, 200 * MiB), b" 413 ", id="chunked-200MiB"),
    pytest.param(huge_header, b" 431 ", id="one-1MiB-header"),
    pytest.param(many_headers, b" 431 ", id="2000-headers"),
    pytest.param(body_stops_halfway, b" 408 ", id="body-stops-halfway"),
]


@pytest.mark.parametrize(("attack", "refusal"), ATTACKS)
def test_an_oversized_request_is_refused_and_closed_while_others_are_served(
    server: Gunicorn, attack: Callable[[socket.socket], bytes], refusal: bytes
) -> None:
    """The attack gets its 4xx and a closed connection; the worker stays well under the pod's memory limit."""
    workers = server.worker_pids()
    with well_behaved(server) as client:
        before = rss_mib(server)
        with connect(server) as sock:
            started = time.monotonic()
            answered = attack(sock)
            took = time.monotonic() - started
        after = rss_mib(server)
    print(
        f"\n[figure] {answered[:40]!r} in {took:.2f} s; worker RSS {before:.0f} -> {after:.0f} MiB; "
        f"well-behaved: {client.requests} requests, {client.errors} errors, worst {client.worst * 1000:.0f} ms"
    )
    assert refusal in answered.split(b"\r\n", 1)[0], answered[:300]
    assert after < RSS_BOUND_MIB
    assert client.errors == 0 and client.worst < 1.0 and client.requests > 0
    assert server.worker_pids() == workers


@pytest.mark.parametrize("count", [200, 2000])
def test_connections_that_send_half_a_head_or_nothing_are_closed_after_the_head_timeout(
    server: Gunicorn, count: int
) -> None:
    """Connections that never finish a head (half a request line, or nothing) are closed once HEAD_TIMEOUT_SECONDS
    has passed, and cost the worker little meanwhile."""
    workers = server.worker_pids()
    with well_behaved(server) as client:
        socks = [connect(server) for _ in range(count)]
        for i, sock in enumerate(socks):
            if i % 2 == 0:
                sock.sendall(b"GET /test/que")  # half a request line, then nothing
        time.sleep(HEAD_TIMEOUT + 1.5)
        closed = 0
        for sock in socks:
            with sock:
                sock.settimeout(2)
                try:
                    answer(sock)  # returns once the server has closed the connection
                except (TimeoutError, ConnectionResetError):
                    continue
                closed += 1
        rss = rss_mib(server)
    print(
        f"\n[figure] {count} slow connections: {closed} closed by the server after {HEAD_TIMEOUT + 1.5:.1f} s; "
        f"worker RSS {rss:.0f} MiB; well-behaved: {client.requests} requests, {client.errors} errors, "
        f"worst {client.worst * 1000:.0f} ms"
    )
    assert closed == count
    assert rss < RSS_BOUND_MIB
    assert client.errors == 0 and client.worst < 1.0
    assert server.worker_pids() == workers


def test_past_limit_concurrency_a_worker_answers_503_and_recovers(tmp_path: Path, migrated: str) -> None:
    """More open connections than LIMIT_CONCURRENCY: a request gets 503 instead of costing a file descriptor
    more; once they close, requests are served again."""
    with gunicorn(tmp_path, workers=1, DATABASE_URL=migrated, LIMIT_CONCURRENCY="50") as server:
        socks = [connect(server) for _ in range(60)]
        try:
            time.sleep(0.5)  # every connection accepted by the worker
            crowded = httpx.get(f"{server.url}/test/query", timeout=10)
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.5)
        served = httpx.get(f"{server.url}/test/query", timeout=10)
    assert (crowded.status_code, served.status_code) == (503, 200)


def test_large_bodies_on_a_kept_alive_connection_are_not_taken_for_heads(server: Gunicorn) -> None:
    """A body over MAX_HEADER_BYTES, read by its route or left unread by a 404, then the next request on the same
    connection: each is answered, none refused."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(3):
            assert client.post("/test/upload", content=b"x" * 200_000).json() == {"bytes": 200_000}
            assert client.post("/nowhere", content=b"x" * 200_000).status_code == 404
            assert client.get("/test/query").status_code == 200


def statuses(answered: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answered)]


SLOW = b"GET /test/sleep?seconds=3 HTTP/1.1\r\nHost: x\r\n\r\n"  # answered after HEAD_TIMEOUT has passed
NEXT = {
    "head-over-MAX_HEADER_BYTES": (b"GET /test/query HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 65536, 431),
    "head-not-finished": (b"GET /test/qu", 408),
}


@pytest.mark.parametrize("refused", NEXT, ids=list(NEXT))
def test_a_refusal_behind_a_request_in_flight_comes_after_its_response(server: Gunicorn, refused: str) -> None:
    """A pipelining client sends the next head while the route is still at work: the response goes out first,
    then the refusal (RFC 9112 9.3.2); the next head's time starts when the response has gone out."""
    head, status = NEXT[refused]
    with connect(server) as sock:
        sock.sendall(SLOW)
        time.sleep(0.5)  # a read of its own, while the route sleeps
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the connection closed before all of it was read, as the unfixed protocol does
        answered = answer(sock)
    assert statuses(answered) == [200, status], answered[:300]
    assert b'{"status":"slept"}' in answered


def test_a_head_begun_with_the_request_before_it_gets_408_after_the_head_timeout(server: Gunicorn) -> None:
    """A request and the first bytes of the next in one write, then nothing: the response, then 408 once
    HEAD_TIMEOUT_SECONDS has passed, not a silent close when KEEPALIVE_SECONDS (75) has."""
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /test/query HTTP/1.1\r\nHost: x\r\n\r\nGET /test/qu")
        answered = answer(sock)
        took = time.monotonic() - started
    print(f"\n[figure] {statuses(answered)} in {took:.2f} s")
    assert statuses(answered) == [200, 408], answered[:300]
    assert HEAD_TIMEOUT <= took < HEAD_TIMEOUT + 3
