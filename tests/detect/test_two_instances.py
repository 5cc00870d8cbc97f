"""Detection across two gateway instances, with the real detectors, through Redis.

A caller walks object ids through two gateways alternately, so neither
instance alone sees enough refusals to judge. Both append their events to
the shared Redis stream; the one detection runner reads them all, the
enumeration detector signals, the response blocks the caller, and both
instances refuse its next request while another caller is still served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apishield.detect.alerts import AlertQuery
from tests.detect.test_blocks import redis_keys
from tests.detect.test_service import instance
from tests.support import Canned, RecordingUpstream, ServerThread, eventually, write_policy
from tests.tokens import JWKSServer, claims, ec_key, jwt_auth, sign

ITEMS = """
openapi: 3.1.0
info: {title: Items, version: "1.0"}
security: [{oauth2: [things:read]}]
paths:
  /items/{itemId}:
    get:
      operationId: getItem
      parameters:
        - {name: itemId, in: path, required: true, schema: {type: integer, minimum: 1}}
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
        "404": {description: missing, content: {application/json: {schema: {type: object}}}}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: "http://127.0.0.1/token", scopes: {things:read: read}}}
"""


@pytest.fixture()
def redis_prefix() -> Iterator[tuple[str, str]]:
    with redis_keys() as found:
        yield found


def test_a_walk_split_across_two_instances_is_detected_and_blocked_on_both(
    tmp_path: Path, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    recording = RecordingUpstream()
    recording.default = Canned(status=404, body=b'{"error": "no such item"}')
    recording.answer("GET", "/items/1", body={"id": 1, "name": "mine"})
    up = ServerThread(recording).start()
    key = ec_key("k1")
    jwks = ServerThread(JWKSServer(key)).start()
    auth = jwt_auth(jwks.port)
    detection = {
        "alerts": {"path": "alerts.db"},
        "blocks": {"store": url, "key_prefix": prefix + "blocks:", "resync_interval": "30s"},
        "stream": {"url": url, "name": prefix + "events", "lease": "2s"},
        "detectors": {
            # test-sized: six refused objects; a walk of ten in a row is more than either gateway sees
            "enumeration": {"min_denied_objects": 6, "walk_length": 50, "response": "block"},
        },
    }
    document = tmp_path / "items.yaml"
    document.write_text(ITEMS)
    policies = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        policies.append(write_policy(tmp_path / name, document, up.port, auth=auth, detection=detection))
    mallory = {"Authorization": "Bearer " + sign(key, claims(sub="mallory", scope="things:read"))}
    alice = {"Authorization": "Bearer " + sign(key, claims(sub="alice", scope="things:read"))}
    try:
        with instance(policies[0], "gw-a") as a, instance(policies[1], "gw-b") as b:
            assert a.call("GET", "/items/1", mallory).status == 200
            # ten refused ids, alternately through each instance: five each, under the bar of six
            for item in range(2, 12):
                gateway = a if item % 2 else b
                assert gateway.call("GET", f"/items/{item}", mallory).status == 404
            eventually(
                lambda: (
                    b.call("GET", "/items/1", mallory).status == 403
                    and a.call("GET", "/items/1", mallory).status == 403
                ),
                "mallory blocked on both instances",
                within=20,
            )
            assert a.call("GET", "/items/1", alice).status == 200
            assert b.call("GET", "/items/1", alice).status == 200
            found = [
                alert
                for s in (a, b)
                for alert in s.run(s.service.alerts.query(AlertQuery(detector="enumeration")))
            ]
            assert found and {alert.key for alert in found} == {"sub:mallory"}
            assert max(alert.evidence.get("denied_objects", 0) for alert in found) >= 6
    finally:
        up.stop()
        jwks.stop()
