"""The limits that keep the access log small: long values are cut with a note, and an address
without a valid token is held back for the rest of its window once it has used it up."""

from __future__ import annotations

import pytest

from pipelines.service.limits import AnonymousLimit, capped


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("/v1/agencies", 512, "/v1/agencies"),
        ("x" * 10, 10, "x" * 10),
        ("x" * 1_012, 10, "x" * 10 + "... (1,002 more characters)"),
        ("", 0, ""),
    ],
)
def test_long_values_are_cut_saying_how_much_is_left_out(
    text: str, limit: int, expected: str
) -> None:
    assert capped(text, limit) == expected


def test_an_address_waits_for_its_window_to_end_once_it_used_it_up() -> None:
    limit = AnonymousLimit(requests=3, seconds=60)
    for moment in (0.0, 1.0, 2.0):
        assert limit.retry_after("10.0.0.7", now=moment) == 0
        limit.count("10.0.0.7", now=moment)

    assert limit.retry_after("10.0.0.7", now=2.5) == 58
    assert limit.retry_after("10.0.0.7", now=59.9) == 1
    assert limit.retry_after("10.0.0.8", now=2.5) == 0  # another address is not held back
    assert [limit.refused("10.0.0.7") for _ in range(3)] == [1, 2, 3]
    assert limit.retry_after("10.0.0.7", now=60.0) == 0  # a new window
    limit.count("10.0.0.7", now=60.0)
    assert limit.refused("10.0.0.7") == 1


def test_expired_windows_are_forgotten_when_many_addresses_were_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pipelines.service.limits._FORGET_AFTER", 3)
    limit = AnonymousLimit(requests=1, seconds=10)
    for address in ("a", "b", "c"):
        limit.count(address, now=0.0)

    limit.count("d", now=11.0)

    assert sorted(limit._windows) == ["d"]
