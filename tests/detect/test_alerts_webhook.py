"""Alert webhooks against a real local HTTP server: signature, retry after a 500, filters, bounds."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from apishield.config.detection import WebhookPolicy
from apishield.detect.alerts import Alert, new_alert
from apishield.detect.signal import Signal
from apishield.detect.webhook import Webhook, WebhookSender, verify
from tests.detect.test_blocks import until
from tests.support import Canned, Recorded, RecordingUpstream, ServerThread

SECRET = "s3cret-for-tests"


@pytest.fixture()
def receiver() -> Iterator[tuple[RecordingUpstream, ServerThread]]:
    upstream = RecordingUpstream()
    server = ServerThread(upstream).start()
    try:
        yield upstream, server
    finally:
        server.stop()


def alert(severity: int = 4, key: str = "sub:mallory") -> Alert:
    return new_alert(
        Signal("enumeration", key, severity, 1_700_000_000_000, "walked ids", {"denied": 30}, ("e1", "e2"))
    )


def expected_signature(request: Recorded) -> str:
    stamp = request.header("x-apishield-timestamp")
    assert stamp is not None
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def test_signed_delivery_retried_after_a_500(
    receiver: tuple[RecordingUpstream, ServerThread], tmp_path: Path
) -> None:
    upstream, server = receiver
    answers = iter([Canned(status=500, body=b"down"), Canned(status=204, body=b"")])
    upstream.answers[("POST", "/hooks/apishield")] = lambda _: next(answers)
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    policy = WebhookPolicy(
        url=f"http://127.0.0.1:{server.port}/hooks/apishield?source=gw",
        secret_file="hook.secret",
        timeout=5.0,
    )
    sender = WebhookSender.from_policies([policy], tmp_path)
    sent = alert()

    async def go() -> None:
        await sender.start()
        try:
            sender.submit("alert.created", sent)
            await until(lambda: sender.counters["delivered"] == 1, "delivered")
        finally:
            await sender.stop()

    asyncio.run(go())
    assert sender.counters == {"delivered": 1, "failed": 0, "dropped": 0, "retried": 1}
    first, second = upstream.received
    for request in (first, second):
        assert request.method == "POST" and request.target == "/hooks/apishield?source=gw"
        assert request.header("content-type") == "application/json"
        assert request.header("x-apishield-event") == "alert.created"
        assert request.header("x-apishield-signature") == expected_signature(request)
        stamp = request.header("x-apishield-timestamp")
        assert stamp is not None and abs(int(stamp) - time.time()) < 300
        assert verify(SECRET.encode(), stamp, request.body, request.header("x-apishield-signature") or "")
        body = orjson.loads(request.body)
        assert body["type"] == "alert.created"
        assert body["alert"]["id"] == sent.id and body["alert"]["event_ids"] == ["e1", "e2"]
        assert body["alert"]["severity_name"] == "high"
    # one delivery, retried: the same delivery id, so a receiver can tell a retry from a new alert
    assert first.header("x-apishield-delivery") == second.header("x-apishield-delivery")
    # a changed body or a foreign secret does not verify
    stamp = second.header("x-apishield-timestamp") or ""
    signature = second.header("x-apishield-signature") or ""
    assert not verify(SECRET.encode(), stamp, second.body + b" ", signature)
    assert not verify(b"other", stamp, second.body, signature)
    assert not verify(SECRET.encode(), str(int(stamp) - 3600), second.body, signature)


def test_min_severity_and_secret_from_the_environment(
    receiver: tuple[RecordingUpstream, ServerThread], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    upstream, server = receiver
    monkeypatch.setenv("APISHIELD_TEST_HOOK", SECRET)
    base = f"http://127.0.0.1:{server.port}"
    sender = WebhookSender.from_policies(
        [
            WebhookPolicy(url=f"{base}/all", secret_env="APISHIELD_TEST_HOOK"),
            WebhookPolicy(url=f"{base}/critical", min_severity=5),
        ],
        tmp_path,
    )

    async def go() -> None:
        await sender.start()
        try:
            sender.submit("alert.created", alert(severity=3))
            sender.submit("alert.escalated", alert(severity=5, key="ip:192.0.2.9"))
            await until(lambda: sender.counters["delivered"] == 3, "three deliveries")
        finally:
            await sender.stop()

    asyncio.run(go())
    by_path: dict[str, list[Recorded]] = {}
    for request in upstream.received:
        by_path.setdefault(request.target, []).append(request)
    assert len(by_path["/all"]) == 2
    assert [r.json()["alert"]["key"] for r in by_path["/critical"]] == ["ip:192.0.2.9"]
    assert by_path["/critical"][0].header("x-apishield-signature") is None  # no secret configured
    assert all(r.header("x-apishield-signature") == expected_signature(r) for r in by_path["/all"])


def test_a_refusal_is_not_retried_and_is_logged(
    receiver: tuple[RecordingUpstream, ServerThread], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream, server = receiver
    upstream.answer("POST", "/hook", status=403)
    sender = WebhookSender.from_policies(
        [WebhookPolicy(url=f"http://127.0.0.1:{server.port}/hook")], tmp_path
    )

    async def go() -> None:
        await sender.start()
        try:
            sender.submit("alert.created", alert())
            await until(lambda: sender.counters["failed"] == 1, "failed")
        finally:
            await sender.stop()

    with caplog.at_level(logging.WARNING, logger="apishield.alerts"):
        asyncio.run(go())
    assert len(upstream.received) == 1 and sender.counters["retried"] == 0
    assert any("answered 403" in r.getMessage() for r in caplog.records)


def test_unreachable_receiver_exhausts_retries_without_blocking_submit(tmp_path: Path) -> None:
    from tests.support import free_port

    policy = WebhookPolicy(url=f"http://127.0.0.1:{free_port()}/hook", retries=2, timeout=1.0)
    sender = WebhookSender([Webhook.from_policy(policy, tmp_path)], queue_size=2)

    async def go() -> None:
        await sender.start()
        try:
            for _ in range(10):  # the queue holds two; submit never waits
                sender.submit("alert.created", alert())
            assert sender.counters["dropped"] >= 7
            await until(lambda: sender.counters["failed"] >= 1, "a failed delivery")
        finally:
            await sender.stop(grace=0.1)

    asyncio.run(go())
    assert sender.counters["delivered"] == 0 and sender.counters["retried"] >= 2


def test_secret_problems_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APISHIELD_TEST_MISSING", raising=False)
    with pytest.raises(ValueError, match="APISHIELD_TEST_MISSING is not set"):
        Webhook.from_policy(WebhookPolicy(url="https://h/x", secret_env="APISHIELD_TEST_MISSING"), tmp_path)
    with pytest.raises(ValueError, match="cannot read secret_file"):
        Webhook.from_policy(WebhookPolicy(url="https://h/x", secret_file="absent.key"), tmp_path)
    with pytest.raises(ValueError, match="not both"):
        WebhookPolicy(url="https://h/x", secret_file="a", secret_env="B")
