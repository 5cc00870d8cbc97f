"""The indexed columns, read from real API Activity events and crafted Authentication events."""

from __future__ import annotations

from tests.audit.support import api_event, auth_event

from apishield.audit.columns import COLUMNS, columns


def named(event: dict) -> dict:
    return dict(zip(COLUMNS, columns(event), strict=True))


def test_an_allowed_api_activity_event() -> None:
    event = api_event(
        7,
        instance="gw-a",
        subject="user-3",
        client="web-portal",
        ip="198.51.100.2",
        outcome="ok",
        operation=4,
    )
    row = named(event)
    assert row["uid"] == event["metadata"]["uid"]
    assert row["time_ms"] == event["time"]
    assert row["class_uid"] == 6003
    assert row["instance"] == "gw-a"
    assert row["subject"] == "user-3"
    assert row["client_id"] == "web-portal"
    assert row["token"] == event["actor"]["session"]["uid"]
    assert row["token"] != "token-id-7"  # a fingerprint, never the token id
    assert row["src_ip"] == "198.51.100.2"
    assert row["operation"] == "getOrder"
    assert row["route"] == "/orders/{orderId}"
    assert row["method"] == "GET"
    assert row["action"] == "allowed"
    assert row["status"] == 200
    assert row["status_detail"] is None
    assert row["object_ids"] == (event["resources"][0]["uid"],)
    assert row["latency_ms"] == event["http_response"]["latency"]
    assert row["bytes_out"] == len(b'{"id": 1}')
    assert row["severity_id"] == 1


def test_a_denied_event_has_its_problem_type() -> None:
    row = named(api_event(1, outcome="scope"))
    assert (row["action"], row["status"], row["status_detail"]) == ("denied", 403, "insufficient-scope")


def test_an_event_without_a_path_parameter_has_no_object_ids() -> None:
    assert named(api_event(3, operation=3))["object_ids"] == ()


def test_authentication_events_name_the_user_and_the_outcome() -> None:
    ok, failed = named(auth_event(2)), named(auth_event(2, success=False))
    assert ok["class_uid"] == 3002
    assert ok["subject"] == "user-2"
    assert (ok["action"], failed["action"]) == ("success", "failure")
    assert ok["status"] is None and ok["operation"] is None
    event = auth_event(2)
    event["user"] = {"uid": "u-2", "name": "user-2"}
    assert named(event)["subject"] == "u-2"


def test_malformed_events_still_give_a_row_of_the_right_types() -> None:
    event = {
        "metadata": "not an object",
        "time": 1 << 70,
        "class_uid": "6003",
        "actor": {"user": {"uid": ["a list"]}, "app_uid": 12},
        "http_response": {"code": True, "latency": "fast", "length": -1},
        "resources": [{"uid": "a\x00b"}, "x", {"uid": None}],
        "src_endpoint": {"ip": "10.0.0.1\x00"},
    }
    row = named(event)
    assert row["uid"] is None
    assert row["time_ms"] == 0  # not an int64: unusable
    assert row["class_uid"] == 6003
    assert row["subject"] is None
    assert row["client_id"] == "12"
    assert row["status"] is None and row["latency_ms"] is None and row["bytes_out"] == -1
    assert row["object_ids"] == ("a\ufffdb",)  # no NUL reaches a text column
    assert row["src_ip"] == "10.0.0.1\ufffd"
    assert named({})["time_ms"] == 0
    assert named({"time": 10**17})["time_ms"] == 253_402_300_799_999


def test_the_fast_path_gives_the_careful_paths_row() -> None:
    """Events of the gateway's layout take a fast path; it must agree with the careful one."""
    from apishield.audit.columns import _columns

    base = api_event(1)
    variants = [base]
    anonymous = api_event(2)
    anonymous["actor"] = {"app_name": "anonymous"}
    anonymous.pop("resources", None)
    variants.append(anonymous)
    keyed = api_event(3)
    keyed["unmapped"]["credential"] = {"method": "api_key", "key_id": "k1"}
    variants.append(keyed)
    odd = api_event(4)
    odd["actor"]["user"] = {"uid": "nul\x00inside"}  # text columns never carry NUL
    variants.append(odd)
    strange = api_event(5)
    strange["http_response"]["code"] = "200"  # coerced by the careful path
    variants.append(strange)
    variants += [api_event(i) for i in range(6, 60)]
    for event in variants:
        assert columns(event) == _columns(event)
