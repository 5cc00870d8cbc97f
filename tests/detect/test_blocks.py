"""Blocks: the block list, the enforcement stages, the Redis store across instances, ``apishield blocks``."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from apishield.audit.event import fingerprint
from apishield.auth.principal import Principal
from apishield.cli.alerts import blocks as blocks_group
from apishield.core.client_ip import TrustedProxies
from apishield.core.exchange import Exchange, RequestHead
from apishield.core.stages.blocklist import IPBlockStage, PrincipalBlockStage
from apishield.detect.blocks import BlockList, MemoryBlockStore, Throttles, make_block, target_of
from apishield.detect.blocks_redis import RedisBlockStore
from tests.services import require_redis
from tests.support import DATA

NOW = time.time()


# -- the block list ---------------------------------------------------------------------------------------


def test_targets_are_normalised_and_checked() -> None:
    assert make_block("ip", "::ffff:192.0.2.1", until=NOW + 60).value == "192.0.2.1"
    assert make_block("ip", "2001:DB8:0:0::1", until=NOW + 60).value == "2001:db8::1"
    assert target_of("sub:alice") == ("subject", "alice")
    assert target_of("token:" + "a" * 32) == ("token", "a" * 32)
    assert target_of("ip:::ffff:10.0.0.1") == ("ip", "10.0.0.1")
    assert target_of("account:alice") is None  # a login name is not a verified caller
    assert target_of("service:customers") is None
    assert target_of("ip:not-an-address") is None
    with pytest.raises(ValueError, match="not an IP address"):
        make_block("ip", "300.1.1.1", until=NOW + 60)
    with pytest.raises(ValueError, match="kind is one of"):
        make_block("account", "alice", until=NOW + 60)
    with pytest.raises(ValueError, match="needs a rate"):
        make_block("subject", "alice", until=NOW + 60, mode="throttle")


def test_match_prefers_a_block_over_a_throttle_and_forgets_expired_ones() -> None:
    throttle = make_block("subject", "alice", until=NOW + 60, mode="throttle", rate=5)
    block = make_block("token", "f" * 32, until=NOW + 60)
    expired = make_block("ip", "192.0.2.1", until=NOW - 1)
    blocks = BlockList([throttle, block, expired])
    assert blocks.match(subject="alice", now=NOW) == throttle
    assert blocks.match(subject="alice", token_fp="f" * 32, now=NOW) == block
    assert blocks.match(subject="bob", client_id="alice", now=NOW) is None  # kinds do not mix
    assert blocks.match(ip="192.0.2.1", now=NOW) is None
    assert len(blocks) == 2  # the expired block was dropped when met
    assert blocks.match(subject="alice", now=NOW + 61) is None
    # one block per target: a new one replaces the old
    blocks.put(make_block("subject", "alice", until=NOW + 600))
    match = blocks.match(subject="alice", now=NOW)
    assert match is not None and match.mode == "block"


def test_throttle_allows_the_rate_then_refuses_with_a_wait() -> None:
    block = make_block("ip", "192.0.2.1", until=NOW + 60, mode="throttle", rate=3, per=60.0)
    throttles = Throttles()
    results = [throttles.check(block, now=100.0) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert 19 < results[3].retry_after <= 20  # one request comes back every 60/3 s
    assert throttles.check(block, now=121.0).allowed


# -- the stages --------------------------------------------------------------------------------------------


def exchange(peer: str = "192.0.2.1", headers: list[tuple[bytes, bytes]] | None = None) -> Exchange:
    head = RequestHead("GET", b"/items", b"", headers or [], client=(peer, 40000))
    return Exchange(request=head, request_id="r1", started_ns=0)


def test_ip_stage_refuses_a_blocked_address_with_the_block_as_rule() -> None:
    block = make_block("ip", "192.0.2.1", until=time.time() + 60, reason="enumeration")
    stage = IPBlockStage(BlockList([block]), TrustedProxies())
    ex = exchange()
    stage.on_request_head(ex)
    assert ex.reply is not None and ex.reply.status == 403
    body = orjson.loads(ex.reply.body)
    assert body["type"].endswith("/blocked") and "192.0.2.1" not in ex.reply.body.decode()
    decision = ex.decisions[-1]
    assert (decision.stage, decision.outcome, decision.rule) == ("ip_blocks", "deny", block.id)
    # another address passes; an untrusted peer cannot pose as someone else
    other = exchange("198.51.100.7", [(b"x-forwarded-for", b"203.0.113.9")])
    stage.on_request_head(other)
    assert other.reply is None and other.decisions == []


def test_ip_stage_reads_the_client_behind_trusted_proxies() -> None:
    block = make_block("ip", "203.0.113.9", until=time.time() + 60)
    stage = IPBlockStage(BlockList([block]), TrustedProxies(["10.0.0.0/8"]))
    behind = exchange("10.1.2.3", [(b"x-forwarded-for", b"203.0.113.9")])
    stage.on_request_head(behind)
    assert behind.reply is not None and behind.reply.status == 403
    spoofed = exchange("198.51.100.7", [(b"x-forwarded-for", b"10.9.9.9, 203.0.113.9")])
    stage.on_request_head(spoofed)
    assert spoofed.reply is None


def test_principal_stage_blocks_token_by_fingerprint_and_throttles_a_subject() -> None:
    token_block = make_block("token", fingerprint("jti-stolen"), until=time.time() + 60)
    throttle = make_block("subject", "alice", until=time.time() + 60, mode="throttle", rate=2)
    stage = PrincipalBlockStage(BlockList([token_block, throttle]))

    def call(subject: str, jti: str) -> Exchange:
        ex = exchange()
        ex.principal = Principal(method="jwt", subject=subject, client_id="app", token_id=jti)
        stage.on_request_head(ex)
        return ex

    stolen = call("bob", "jti-stolen")
    assert stolen.reply is not None and stolen.reply.status == 403
    assert stolen.decisions[-1].rule == token_block.id
    answers = [call("alice", f"jti-{i}") for i in range(3)]
    assert [a.reply.status if a.reply else 200 for a in answers] == [200, 200, 429]
    assert [d.outcome for a in answers for d in a.decisions] == ["allow", "allow", "deny"]
    refused = answers[2].reply
    assert refused is not None
    retry = dict(refused.headers)[b"retry-after"]
    assert 1 <= int(retry) <= 30
    assert orjson.loads(refused.body)["violated-policies"] == [throttle.id]
    anonymous = exchange()
    stage.on_request_head(anonymous)
    assert anonymous.reply is None


def test_memory_store_keeps_a_synced_mirror() -> None:
    async def go() -> None:
        store = MemoryBlockStore()
        mirror = BlockList()
        first = await store.add(make_block("ip", "192.0.2.1", until=time.time() + 60))
        task = asyncio.create_task(store.sync(mirror))
        await asyncio.sleep(0)
        assert mirror.get("ip", "192.0.2.1", time.time()) == first
        second = await store.add(make_block("client", "scraper", until=time.time() + 60))
        assert mirror.get("client", "scraper", time.time()) == second
        assert await store.remove("ip:192.0.2.1") == first
        assert mirror.get("ip", "192.0.2.1", time.time()) is None
        assert await store.remove(second.id) == second and len(mirror) == 0
        assert await store.remove("bl-missing") is None
        task.cancel()

    asyncio.run(go())


# -- the Redis store ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_keys() -> Iterator[tuple[str, str]]:
    """The test Redis and a key prefix of this test's own, whose keys are deleted afterwards."""
    url = require_redis()
    prefix = f"apishield-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield url, prefix
    finally:

        async def clean() -> None:
            import redis.asyncio as redis

            client = redis.Redis.from_url(url)
            keys = [k async for k in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

        asyncio.run(clean())


@pytest.fixture()
def redis_prefix() -> Iterator[tuple[str, str]]:
    with redis_keys() as found:
        yield found


async def until(check: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """``tests.support.eventually`` for coroutines: a hang guard, not a timing assertion."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not the case after {within:.0f} s")
        await asyncio.sleep(0.01)


def test_redis_store_reaches_other_instances_and_survives_restarts(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix

    async def go() -> None:
        a = RedisBlockStore(url, prefix, resync_interval=0.3)
        b = RedisBlockStore(url, prefix, resync_interval=60)
        mirror = BlockList()
        sync = asyncio.create_task(b.sync(mirror))
        try:
            # whether B has subscribed yet or not, the block reaches it: B subscribes, then loads
            block = await a.add(make_block("subject", "mallory", until=time.time() + 60, reason="test"))
            await until(lambda: mirror.get("subject", "mallory", time.time()) is not None, "pushed to B")
            assert mirror.get("subject", "mallory", time.time()) == block
            throttle = await a.add(
                make_block("ip", "192.0.2.1", until=time.time() + 60, mode="throttle", rate=7, per=60)
            )
            await until(lambda: mirror.get("ip", "192.0.2.1", time.time()) is not None, "throttle pushed")
            assert mirror.get("ip", "192.0.2.1", time.time()) == throttle
            assert await a.remove(block.id) == block
            await until(lambda: mirror.get("subject", "mallory", time.time()) is None, "removal pushed")
            # a change that was never announced (a lost message) is found by the periodic reload
            c_mirror = BlockList()
            c = RedisBlockStore(url, prefix, resync_interval=0.2)
            c_sync = asyncio.create_task(c.sync(c_mirror))
            await until(lambda: len(c_mirror) == 1, "c loaded")
            silent = make_block("client", "quiet", until=time.time() + 60)
            await a.client.hset(prefix + "all", silent.target, orjson.dumps(silent.as_dict()))
            await until(lambda: c_mirror.get("client", "quiet", time.time()) is not None, "reloaded")
            c_sync.cancel()
            await c.close()
        finally:
            sync.cancel()
            await a.close()
            await b.close()
        # a new process (a restart) finds the blocks in Redis; expired ones are dropped
        restarted = RedisBlockStore(url, prefix)
        await restarted.add(make_block("api_key", "k-old", until=time.time() - 1))
        try:
            found = await restarted.list()
            assert {b.target for b in found} == {"ip:192.0.2.1", "client:quiet"}
            assert await restarted.client.hexists(prefix + "all", "api_key:k-old") == 0
        finally:
            await restarted.close()

    asyncio.run(go())


# -- apishield blocks --------------------------------------------------------------------------------------


@click.group()
def cli() -> None:
    """The group as the command line registers it."""


cli.add_command(blocks_group)


def policy_file(tmp_path: Path, store: str, prefix: str = "apishield:blocks:") -> str:
    path = tmp_path / "apishield.yaml"
    detection = {"blocks": {"store": store, "key_prefix": prefix}}
    path.write_text(
        yaml.safe_dump(
            {"openapi": str(DATA / "shop31.yaml"), "upstream": "http://127.0.0.1:9", "detection": detection}
        )
    )
    return str(path)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_cli_adds_lists_and_removes_blocks(tmp_path: Path, redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    policy = policy_file(tmp_path, url, prefix)
    added = run(
        "blocks", "add", "-c", policy, "--ip", "::ffff:192.0.2.44", "--for", "2h", "--reason", "probing"
    )
    assert added.exit_code == 0, added.output
    block_id = added.stdout.strip()
    assert block_id.startswith("bl-")
    throttled = run("blocks", "add", "-c", policy, "--jti", "jti-9", "--throttle", "10/min", "--for", "30m")
    assert throttled.exit_code == 0, throttled.output

    listed = run("blocks", "list", "-c", policy, "--json")
    rows = {r["kind"]: r for r in orjson.loads(listed.stdout)}
    assert rows["ip"]["value"] == "192.0.2.44" and rows["ip"]["reason"] == "probing"
    assert 7100 < rows["ip"]["until"] - time.time() <= 7200
    assert (rows["token"]["value"], rows["token"]["mode"]) == (fingerprint("jti-9"), "throttle")
    assert (rows["token"]["rate"], rows["token"]["per"]) == (10, 60.0)
    text = run("blocks", "list", "-c", policy).stdout
    assert block_id in text and "throttle 10/60s" in text

    assert run("blocks", "remove", "-c", policy, block_id).exit_code == 0
    assert run("blocks", "remove", "-c", policy, f"token:{fingerprint('jti-9')}").exit_code == 0
    assert orjson.loads(run("blocks", "list", "-c", policy, "--json").stdout) == []
    missing = run("blocks", "remove", "-c", policy, block_id)
    assert missing.exit_code == 1 and "no active block" in missing.output

    both = run("blocks", "add", "-c", policy, "--ip", "192.0.2.1", "--subject", "x")
    assert both.exit_code == 2 and "exactly one" in both.output
    bad = run("blocks", "add", "-c", policy, "--ip", "nonsense")
    assert bad.exit_code == 2 and "not an IP address" in bad.output


def test_cli_refuses_a_memory_store(tmp_path: Path) -> None:
    result = run("blocks", "list", "-c", policy_file(tmp_path, "memory"))
    assert result.exit_code == 2 and "redis://" in result.output
