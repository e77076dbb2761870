"""Fire times and misfire policies: pure functions (taskq.schedule_time), no Redis."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

import taskq
from taskq.schedule_time import FireRule, check_cron, check_timezone, due_fires

NY = ZoneInfo("America/New_York")


def ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def local(when_ms: int, zone: ZoneInfo = NY) -> str:
    return datetime.fromtimestamp(when_ms / 1000, UTC).astimezone(zone).strftime("%m-%d %H:%M %z")


def test_a_daily_0230_fires_once_a_day_across_spring_forward() -> None:
    # 2026-03-08: New York jumps from 02:00 to 03:00, so 02:30 does not exist that night.
    rule = FireRule(cron="30 2 * * *", timezone="America/New_York")
    fires = rule.fire_times(ms(datetime(2026, 3, 6, 12, tzinfo=NY)), ms(datetime(2026, 3, 10, 12, tzinfo=NY)))
    assert [local(f) for f in fires] == [
        "03-07 02:30 -0500",
        "03-08 03:00 -0400",  # as cron does: the skipped time runs once, right after the jump
        "03-09 02:30 -0400",
        "03-10 02:30 -0400",
    ]


def test_a_daily_0230_fires_once_a_day_across_fall_back() -> None:
    # 2026-11-01: clocks go back from 02:00 to 01:00; 02:30 happens once, 01:30 twice.
    rule = FireRule(cron="30 2 * * *", timezone="America/New_York")
    fires = rule.fire_times(ms(datetime(2026, 10, 30, 12, tzinfo=NY)), ms(datetime(2026, 11, 2, 12, tzinfo=NY)))
    assert [local(f) for f in fires] == ["10-31 02:30 -0400", "11-01 02:30 -0500", "11-02 02:30 -0500"]
    assert fires[1] - fires[0] == 25 * 3600 * 1000  # the day with the extra hour
    repeated = FireRule(cron="30 1 * * *", timezone="America/New_York")
    fires = repeated.fire_times(ms(datetime(2026, 10, 31, 12, tzinfo=NY)), ms(datetime(2026, 11, 1, 12, tzinfo=NY)))
    assert [local(f) for f in fires] == ["11-01 01:30 -0400"]  # once, not twice


def test_utc_schedules_ignore_dst_and_next_fire_matches_fire_times() -> None:
    rule = FireRule(cron="30 2 * * *")
    start = ms(datetime(2026, 3, 6, tzinfo=UTC))
    fires = rule.fire_times(start, start + 5 * 86_400_000)
    assert [b - a for a, b in itertools.pairwise(fires)] == [86_400_000] * 4
    assert rule.next_fire(start) == fires[0]
    assert rule.next_fire(fires[0]) == fires[1]


def test_every_s_fires_on_multiples_of_the_interval() -> None:
    rule = FireRule(every_s=1)
    assert rule.fire_times(10_500, 13_000) == [11_000, 12_000, 13_000]
    assert rule.fire_times(10_000, 10_999) == []
    assert rule.next_fire(13_000) == 14_000
    assert rule.fire_times(0, 1_000_000, limit=3) == [998_000, 999_000, 1_000_000]


@pytest.mark.parametrize(
    ("misfire", "expected"),
    [
        ("all", [4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000]),
        ("once", [8_000, 9_000, 10_000]),
        ("skip", [9_000, 10_000]),
    ],
)
def test_misfire_policies(misfire: str, expected: list[int]) -> None:
    # Last fire handled at 3 s, now 10 s, grace 1.5 s: 9 s and 10 s are on time, 4..8 s missed.
    rule = FireRule(every_s=1)
    fires, last = due_fires(rule, 3_000, 10_000, misfire=misfire, grace_s=1.5, max_missed=100)  # type: ignore[arg-type]
    assert fires == expected
    assert last == 10_000


def test_all_is_bounded_by_max_missed() -> None:
    fires, last = due_fires(FireRule(every_s=1), 0, 100_000, misfire="all", grace_s=0, max_missed=5)
    assert fires == [95_000, 96_000, 97_000, 98_000, 99_000, 100_000]
    assert last == 100_000
    assert due_fires(FireRule(every_s=1), 100_000, 100_500, misfire="all", grace_s=0, max_missed=5) == ([], 100_000)


def test_bad_cron_and_zone_are_typed_errors() -> None:
    with pytest.raises(taskq.InvalidOption, match="cron"):
        check_cron("61 * * * *")
    with pytest.raises(taskq.InvalidOption, match="time zone"):
        check_timezone("Mars/Olympus")
