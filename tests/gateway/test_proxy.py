"""Reverse-proxy behaviour: headers both ways, smuggling, upstream failures, draining."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import DATA, Canned, Stack, free_port, gateway_for, http, raw_http, write_policy


def test_hop_by_hop_request_headers_removed(gw: Stack) -> None:
    r = gw.call(
        "GET",
        "/items/1",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic abc",
            "Upgrade": "h2c",
            "X-End-To-End": "kept",
        },
    )
    assert r.status == 200
    rec = gw.upstream.received[0]
    names = {k for k, _ in rec.headers}
    for hop in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert hop not in names
    assert rec.header("x-end-to-end") == "kept"


def test_forwarded_headers_are_set_not_trusted(gw: Stack) -> None:
    r = gw.call(
        "GET",
        "/items/1",
        headers={"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6", "X-Real-IP": "6.6.6.6"},
    )
    assert r.status == 200
    rec = gw.upstream.received[0]
    assert rec.header("x-forwarded-for") == "127.0.0.1"
    assert rec.header("forwarded") == f'for=127.0.0.1;proto=http;host="127.0.0.1:{gw.gateway.port}"'
    assert rec.header("x-real-ip") is None
    assert rec.header("x-request-id") == r.headers["x-request-id"]
    assert all("6.6.6.6" not in v for _, v in rec.headers)


def test_hop_by_hop_and_fingerprint_response_headers_removed(gw: Stack) -> None:
    gw.upstream.answer(
        "GET",
        "/items/1",
        body={"id": 1, "name": "x"},
        headers=[
            (b"content-type", b"application/json"),
            (b"connection", b"x-internal-hop"),
            (b"x-internal-hop", b"1"),
            (b"x-powered-by", b"PHP/5.2"),
            (b"x-custom", b"kept"),
        ],
    )
    r = gw.call("GET", "/items/1")
    assert r.status == 200
    assert "x-internal-hop" not in r.headers and "x-powered-by" not in r.headers
    assert "server" not in r.headers
    assert r.headers["x-custom"] == "kept"
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "payload",
    [
        # CL.TE and TE.CL smuggling shapes
        b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
        # duplicate Content-Length
        b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Content-Length: 20\r\n\r\n{}",
        # obfuscated Transfer-Encoding
        b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: xchunked\r\n\r\n",
        # bare LF / control bytes in a header value
        b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        # no Host
        b"GET /items/1 HTTP/1.1\r\n\r\n",
        # two Hosts
        b"GET /items/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
)
def test_smuggling_shapes_are_400(gw: Stack, payload: bytes) -> None:
    answer = raw_http(gw.gateway.port, payload)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert gw.upstream.received == []


def test_upstream_down_is_502(tmp_path: Path) -> None:
    with gateway_for(write_policy(tmp_path, DATA / "shop31.yaml", free_port())) as gw:
        r = http(gw.port, "GET", "/items/1")
    assert r.status == 502
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Bad gateway"


def test_slow_upstream_is_504(gw: Stack) -> None:
    gw.upstream.answers[("GET", "/items/2")] = Canned(delay=3.0)
    r = gw.call("GET", "/items/2")
    assert r.status == 504
    assert r.json()["title"] == "Gateway timeout"
    # the upstream would answer 200 after 3 s: a 504 shows the policy's read_timeout (1 s) fired first


def test_head_request_has_no_body(gw: Stack) -> None:
    r = gw.call("HEAD", "/items/1")
    assert r.status == 405  # HEAD is not documented for this path
    assert r.body == b""


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    from tests.support import RecordingUpstream, ServerThread

    upstream = RecordingUpstream()
    upstream.answers[("GET", "/items/1")] = Canned(delay=1.0, body=b'{"id": 1, "name": "slow"}')
    up = ServerThread(upstream).start()
    port = free_port()
    policy = write_policy(tmp_path, DATA / "shop31.yaml", up.port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "apishield", "serve", "--config", str(policy), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                raw_http(
                    port, b"GET /items/search HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=1
                )
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        results: list[int] = []
        worker = threading.Thread(target=lambda: results.append(http(port, "GET", "/items/1").status))
        worker.start()
        while not any(r.target == "/items/1" for r in upstream.received):
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=10)
        assert results == [200]
        assert proc.wait(timeout=45) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it drained on
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        up.stop()


def test_exactly_one_date_header(gw: Stack) -> None:
    gw.upstream.answer("GET", "/items/1", body={"id": 1, "name": "x"})
    upstream_answer = gw.call("GET", "/items/1")
    own_answer = gw.call("GET", "/nowhere")
    for r in (upstream_answer, own_answer):
        assert [k for k, _ in r.raw_headers].count("date") == 1
