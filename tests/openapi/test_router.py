"""Tests for :mod:`apishield.openapi.router` (path template matching)."""

from __future__ import annotations

import pytest

from apishield.openapi.router import Route, RouteConflict, Router


def router(*templates: str) -> Router[str]:
    r: Router[str] = Router()
    for template in templates:
        r.add(template, template)
    return r


def match(r: Router[str], path: str) -> tuple[str, dict[str, str]] | None:
    hit = r.match(path.split("/")[1:])
    if hit is None:
        return None
    route, params = hit
    return route.target, params


def test_route_carries_template_target_and_parameter_names() -> None:
    r: Router[int] = Router()
    r.add("/customers/{customerId}/orders/{orderId}", 7)
    hit = r.match(["customers", "c1", "orders", "o2"])
    assert hit is not None
    route, params = hit
    assert route == Route("/customers/{customerId}/orders/{orderId}", 7, ("customerId", "orderId"))
    assert params == {"customerId": "c1", "orderId": "o2"}


def test_concrete_path_beats_templated_path() -> None:
    for order in (("/customers/search", "/customers/{id}"), ("/customers/{id}", "/customers/search")):
        r = router(*order)
        assert match(r, "/customers/search") == ("/customers/search", {})
        assert match(r, "/customers/42") == ("/customers/{id}", {"id": "42"})


def test_literal_preferred_at_each_depth_with_backtracking() -> None:
    r = router("/a/{x}/{y}", "/a/b/{y}", "/a/{x}/c")
    assert match(r, "/a/b/c") == ("/a/b/{y}", {"y": "c"})
    assert match(r, "/a/b/d") == ("/a/b/{y}", {"y": "d"})
    assert match(r, "/a/z/c") == ("/a/{x}/c", {"x": "z"})
    assert match(r, "/a/z/d") == ("/a/{x}/{y}", {"x": "z", "y": "d"})


def test_backtracks_out_of_a_literal_branch_that_dead_ends() -> None:
    r = router("/a/b/x", "/a/{p}/y")
    assert match(r, "/a/b/x") == ("/a/b/x", {})
    assert match(r, "/a/b/y") == ("/a/{p}/y", {"p": "b"})
    assert match(r, "/a/b/z") is None


def test_backtracks_between_templated_branches_with_different_names() -> None:
    r = router("/a/{x}/c", "/a/{z}/{y}")
    assert match(r, "/a/q/c") == ("/a/{x}/c", {"x": "q"})
    assert match(r, "/a/q/r") == ("/a/{z}/{y}", {"z": "q", "y": "r"})


def test_parameters_from_a_failed_branch_do_not_leak() -> None:
    r = router("/a/{x}/c/d", "/a/{x2}/{y}")
    assert match(r, "/a/1/c") == ("/a/{x2}/{y}", {"x2": "1", "y": "c"})


def test_partial_template_segments() -> None:
    r = router("/files/{name}.{ext}", "/files/{id}", "/reports/report-{year}")
    assert match(r, "/files/readme.txt") == ("/files/{name}.{ext}", {"name": "readme", "ext": "txt"})
    assert match(r, "/files/README") == ("/files/{id}", {"id": "README"})
    assert match(r, "/reports/report-2024") == ("/reports/report-{year}", {"year": "2024"})
    assert match(r, "/reports/report-") is None
    assert match(r, "/reports/summary-2024") is None


def test_partial_template_needs_non_empty_parts() -> None:
    r = router("/files/{name}.{ext}")
    assert match(r, "/files/.txt") is None
    assert match(r, "/files/readme.") is None
    assert match(r, "/files/readme") is None


def test_partial_template_literal_text_is_not_a_regex() -> None:
    r = router("/v/{a}+{b}", "/w/{a}.*")
    assert match(r, "/v/1+2") == ("/v/{a}+{b}", {"a": "1", "b": "2"})
    assert match(r, "/v/12") is None
    assert match(r, "/w/x.*") == ("/w/{a}.*", {"a": "x"})
    assert match(r, "/w/x.y") is None


def test_partial_template_is_tried_before_a_whole_segment_parameter() -> None:
    r = router("/files/{id}", "/files/{name}.{ext}")
    assert match(r, "/files/a.b") == ("/files/{name}.{ext}", {"name": "a", "ext": "b"})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/customers/{id}", "/customers/{customerId}"),
        ("/customers/{id}", "/customers/{id}"),
        ("/a/{x}/b/{y}", "/a/{p}/b/{q}"),
        ("/files/{name}.{ext}", "/files/{base}.{suffix}"),
        ("/items", "/items"),
    ],
)
def test_identical_templates_are_refused(first: str, second: str) -> None:
    r = router(first)
    with pytest.raises(RouteConflict) as info:
        r.add(second, second)
    assert "identical templates" in str(info.value)
    assert repr(first) in str(info.value)
    assert repr(second) in str(info.value)


def test_different_shapes_are_not_conflicts() -> None:
    r = router("/a/{x}", "/a/{x}/b", "/a/b", "/{x}/a", "/a/{x}.json")
    assert sorted(r.templates()) == sorted(["/a/{x}", "/a/{x}/b", "/a/b", "/{x}/a", "/a/{x}.json"])


def test_template_must_start_with_a_slash() -> None:
    with pytest.raises(RouteConflict, match="must start with '/'"):
        router("customers")


@pytest.mark.parametrize("template", ["/a/{}", "/a/{", "/a/x{"])
def test_malformed_template_is_a_route_conflict(template: str) -> None:
    with pytest.raises(RouteConflict):
        router(template)


def test_empty_segment_never_matches_a_parameter() -> None:
    r = router("/customers/{id}", "/customers/{id}/orders", "/files/{name}.{ext}")
    assert match(r, "/customers/") is None
    assert match(r, "/customers//orders") is None
    assert match(r, "/files/") is None


def test_trailing_slash_does_not_match() -> None:
    r = router("/customers", "/customers/{id}")
    assert match(r, "/customers") == ("/customers", {})
    assert match(r, "/customers/") is None
    assert match(r, "/customers/7/") is None


def test_explicit_trailing_slash_template_matches_only_with_the_slash() -> None:
    r = router("/docs/")
    assert match(r, "/docs/") == ("/docs/", {})
    assert match(r, "/docs") is None


def test_root_path() -> None:
    r = router("/")
    assert match(r, "/") == ("/", {})
    assert match(r, "/x") is None


def test_matching_is_case_sensitive() -> None:
    r = router("/customers/search", "/Customers/{id}")
    assert match(r, "/customers/search") == ("/customers/search", {})
    assert match(r, "/Customers/search") == ("/Customers/{id}", {"id": "search"})
    assert match(r, "/CUSTOMERS/search") is None
    assert match(r, "/customers/SEARCH") is None


def test_no_match_for_longer_or_shorter_paths() -> None:
    r = router("/a/{x}")
    assert match(r, "/a") is None
    assert match(r, "/a/1/2") is None
    assert match(r, "/b/1") is None


def test_parameter_values_are_the_decoded_segments_unchanged() -> None:
    r = router("/files/{name}")
    assert match(r, "/files/a b;c?d") == ("/files/{name}", {"name": "a b;c?d"})
    assert Router().match([]) is None


def test_templates_lists_what_was_added_in_order() -> None:
    r = router("/b", "/a/{x}", "/c")
    assert r.templates() == ["/b", "/a/{x}", "/c"]
