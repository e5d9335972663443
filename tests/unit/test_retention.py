"""Retention planning (docs/architecture.md, "Retention"): what is kept, why, and what is deleted."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from pgbackups.domain.models import (
    BackupMethod,
    BackupRecord,
    BackupStatus,
    RetentionPolicy,
    backup_name,
)
from pgbackups.domain.retention import ERROR_RECORD_DAYS, RetentionPlan, plan_retention

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
SUNDAY = 6  # date.weekday()

_sequence = itertools.count()


def backup_id(created_at: datetime, sequence: int) -> str:
    """A ULID of `created_at`; `sequence` makes it unique and reproducible."""
    milliseconds = int(created_at.timestamp() * 1000)
    return str(ULID.from_bytes(milliseconds.to_bytes(6, "big") + sequence.to_bytes(10, "big")))


def make_backup(
    created_at: datetime,
    *,
    method: BackupMethod = "periodic",
    status: BackupStatus = "done",
    finished_at: datetime | None = None,
) -> BackupRecord:
    if finished_at is None and status in ("done", "error"):
        finished_at = created_at + timedelta(minutes=10)
    return BackupRecord(
        id=backup_id(created_at, next(_sequence)),
        database="db",
        name=backup_name("db", created_at),
        method=method,
        status=status,
        created_at=created_at,
        finished_at=finished_at,
    )


def local(day: date, hour: int, minute: int = 0, tz: ZoneInfo = PARIS, fold: int = 0) -> datetime:
    """A wall-clock time in `tz`, as the UTC instant a record stores."""
    return datetime.combine(day, time(hour, minute, fold=fold), tzinfo=tz).astimezone(UTC)


def deleted_ids(plan: RetentionPlan) -> set[str]:
    return {b.id for b in plan.delete}


# --- properties over random histories ------------------------------------------------

HISTORY_START = datetime(2024, 1, 1, tzinfo=UTC)
MINUTES_PER_DAY = 24 * 60
HISTORY_DAYS = 500
TIME_ZONES = [
    "UTC",
    "Europe/Paris",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Kiritimati",  # UTC+14
    "Pacific/Pago_Pago",  # UTC-11
]

policies = st.builds(
    RetentionPolicy,
    daily=st.integers(1, 35),
    weekly=st.integers(0, 52),
    monthly=st.integers(0, 120),
    manual=st.one_of(st.integers(1, 5), st.integers(1, 500)),
)
# Some minutes anywhere in the history, some crowded into its last days so that
# several backups share a day and `now` falls among them.
minutes = st.one_of(
    st.integers(0, HISTORY_DAYS * MINUTES_PER_DAY),
    st.integers((HISTORY_DAYS - 10) * MINUTES_PER_DAY, HISTORY_DAYS * MINUTES_PER_DAY),
)
entries = st.lists(
    st.tuples(
        minutes,
        st.sampled_from(["periodic", "manual"]),
        st.sampled_from(["scheduled", "running", "done", "done", "done", "error"]),
        st.booleans(),  # finished_at known (error records may lack it)
    ),
    max_size=60,
)


def build_history(drawn: list[tuple[int, str, str, bool]]) -> list[BackupRecord]:
    history = []
    for sequence, (minute, method, status, finished) in enumerate(drawn):
        created_at = HISTORY_START + timedelta(minutes=minute)
        finished_at = created_at + timedelta(minutes=7) if finished or status == "done" else None
        if status in ("scheduled", "running"):
            finished_at = None
        history.append(
            BackupRecord(
                id=backup_id(created_at, sequence),
                database="db",
                name=backup_name("db", created_at),
                method=method,  # type: ignore[arg-type]
                status=status,  # type: ignore[arg-type]
                created_at=created_at,
                finished_at=finished_at,
            )
        )
    return history


@settings(max_examples=300, deadline=None)
@given(
    policy=policies,
    drawn=entries,
    now_minute=minutes.map(lambda m: m + 5 * MINUTES_PER_DAY),
    tz_name=st.sampled_from(TIME_ZONES),
    data=st.data(),
)
def test_plans_keep_what_the_policy_promises(
    policy: RetentionPolicy,
    drawn: list[tuple[int, str, str, bool]],
    now_minute: int,
    tz_name: str,
    data: st.DataObject,
) -> None:
    tz = ZoneInfo(tz_name)
    now = HISTORY_START + timedelta(minutes=now_minute)
    history = build_history(drawn)
    plan = plan_retention(policy, history, now, tz)
    deleted = [b.id for b in plan.delete]

    assert len(deleted) == len(set(deleted))
    assert not any(b.status in ("scheduled", "running") for b in plan.delete)
    assert [b.created_at for b in plan.delete] == sorted(b.created_at for b in plan.delete)

    done = {b.id: b for b in history if b.status == "done"}
    assert set(plan.keep).isdisjoint(deleted)
    assert set(plan.keep) | (set(deleted) & set(done)) == set(done)
    assert set(plan.keep) <= set(done)
    if done:
        newest = max(done.values(), key=lambda b: (b.created_at, b.id))
        assert newest.id in plan.keep

    # Backups from the future (another writer's clock) are kept on top of the policy.
    future = Counter(b.method for b in done.values() if b.created_at > now)
    reasons = Counter(plan.keep.values())
    assert reasons["daily"] <= policy.daily + 1 + future["periodic"]
    assert reasons["weekly"] <= policy.weekly
    assert reasons["monthly"] <= policy.monthly
    assert reasons["manual"] <= policy.manual + future["manual"]
    assert reasons["daily"] + reasons["manual"] <= policy.daily + policy.manual + 1 + future.total()
    for backup_id_, kept_as in plan.keep.items():
        backup = done[backup_id_]
        assert (kept_as == "manual") == (backup.method == "manual")
        day = backup.created_at.astimezone(tz).date()
        if kept_as in ("weekly", "monthly"):
            assert day.weekday() == SUNDAY
        if kept_as == "monthly":
            assert day.day <= 7

    for backup in history:
        if backup.status == "error":
            age = now - (backup.finished_at or backup.created_at)
            if age > timedelta(days=ERROR_RECORD_DAYS):
                assert backup.id in deleted
            elif age < timedelta(days=ERROR_RECORD_DAYS):
                assert backup.id not in deleted

    shuffled = data.draw(st.permutations(history))
    assert plan_retention(policy, shuffled, now, tz) == plan


# --- 400 days of a real schedule ------------------------------------------------------

SIMULATION_START = date(2025, 1, 1)
SIMULATION_DAYS = 400


def fate_of_day(number: int) -> str:
    """Day `number` (1-based) of the simulation: every 17th has no backup, every 13th fails."""
    if number % 17 == 0:
        return "missing"
    return "error" if number % 13 == 0 else "done"


def expected_keep(made: dict[date, BackupRecord], today: date, policy: RetentionPolicy) -> dict:
    """What the retention rules (docs/architecture.md) keep, written the plain way: ages in calendar days."""
    first_sundays = [
        day
        for day in (today - timedelta(days=n) for n in range(31 * (policy.monthly + 1)))
        if day.weekday() == SUNDAY and day.day <= 7
    ][: policy.monthly]
    expected = {}
    for day, backup in made.items():
        age = (today - day).days
        if age < policy.daily:
            expected[backup.id] = "daily"
        elif day.weekday() == SUNDAY and age < 7 * policy.weekly:
            expected[backup.id] = "weekly"
        elif day in first_sundays:
            expected[backup.id] = "monthly"
    return expected


def test_simulation_premises_cover_the_edge_cases() -> None:
    days = {SIMULATION_START + timedelta(days=n - 1): fate_of_day(n) for n in range(1, 401)}
    assert any(f == "error" and d.weekday() == SUNDAY for d, f in days.items())
    assert any(f == "missing" and d.weekday() == SUNDAY and d.day <= 7 for d, f in days.items())
    assert days[date(2025, 3, 30)] == "done"  # spring forward
    assert days[date(2025, 10, 26)] == "error"  # fall back, and a Sunday


@pytest.mark.parametrize(
    "policy", [RetentionPolicy(), RetentionPolicy(monthly=12)], ids=["starter", "monthly=12"]
)
def test_a_daily_schedule_keeps_exactly_the_policy_for_400_days(policy: RetentionPolicy) -> None:
    history: list[BackupRecord] = []
    made: dict[date, BackupRecord] = {}  # every done backup ever made, by local day
    failed_at: dict[str, datetime] = {}  # every error record ever made
    for number in range(1, SIMULATION_DAYS + 1):
        today = SIMULATION_START + timedelta(days=number - 1)
        created_at = local(today, 1)
        now = created_at + timedelta(hours=1)
        fate = fate_of_day(number)
        if fate != "missing":
            backup = make_backup(created_at, status="done" if fate == "done" else "error")
            history.append(backup)
            if fate == "done":
                made[today] = backup
            else:
                failed_at[backup.id] = created_at + timedelta(minutes=10)

        plan = plan_retention(policy, history, now, PARIS)
        history = [b for b in history if b.id not in deleted_ids(plan)]

        expected = expected_keep(made, today, policy)
        assert plan.keep == expected, today
        assert {b.id for b in history if b.status == "done"} == set(expected), today
        # Error records older than 30 days are gone, younger ones are all still there.
        young_errors = {i for i, at in failed_at.items() if now - at < timedelta(days=30)}
        assert {b.id for b in history if b.status == "error"} == young_errors, today

    # The run ends holding a full policy, so the windows were really exercised.
    reasons = Counter(plan.keep.values())
    assert reasons["daily"] >= 6
    assert reasons["weekly"] >= 2
    assert reasons["monthly"] >= (9 if policy.monthly == 12 else 0)


# --- manual backups ------------------------------------------------------------------


def test_an_eleventh_manual_backup_deletes_only_the_oldest_manual_one() -> None:
    now = datetime(2025, 6, 10, 12, tzinfo=UTC)
    # Periodic backups older than every manual one: deleting "the oldest" must
    # still pick a manual one.
    periodic = [make_backup(now - timedelta(days=n, hours=11)) for n in range(5)]
    manual = [make_backup(now - timedelta(hours=10 - n), method="manual") for n in range(10)]
    policy = RetentionPolicy()

    before = plan_retention(policy, periodic + manual, now, PARIS)
    assert before.delete == ()
    assert Counter(before.keep.values())["manual"] == 10

    eleventh = make_backup(now + timedelta(minutes=1), method="manual")
    after = plan_retention(
        policy, [*periodic, *manual, eleventh], now + timedelta(minutes=20), PARIS
    )
    assert after.delete == (manual[0],)
    assert all(after.keep[b.id] == "daily" for b in periodic)
    assert {i for i, why in after.keep.items() if why == "manual"} == {
        b.id for b in [*manual[1:], eleventh]
    }


def test_manual_backups_do_not_count_against_periodic_days() -> None:
    today = date(2025, 6, 10)
    periodic = make_backup(local(today, 1))
    manual = make_backup(local(today, 9), method="manual")
    plan = plan_retention(
        RetentionPolicy(daily=1, weekly=0), [periodic, manual], local(today, 10), PARIS
    )
    assert plan.keep == {periodic.id: "daily", manual.id: "manual"}
    assert plan.delete == ()


# --- days are local days -------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz_name", "hour", "minute", "utc_weekday"),
    [
        ("Asia/Tokyo", 0, 30, 5),  # Sunday 00:30 in Tokyo is Saturday in UTC
        ("America/Los_Angeles", 23, 30, 0),  # Sunday 23:30 in Los Angeles is Monday in UTC
    ],
)
def test_a_sunday_backup_counts_for_the_local_sunday(
    tz_name: str, hour: int, minute: int, utc_weekday: int
) -> None:
    tz = ZoneInfo(tz_name)
    sunday = date(2025, 6, 15)
    saturday = make_backup(local(sunday - timedelta(days=1), 12, tz=tz))
    sunday_backup = make_backup(local(sunday, hour, minute, tz=tz))
    monday = make_backup(local(sunday + timedelta(days=1), 12, tz=tz))
    wednesday = make_backup(local(sunday + timedelta(days=3), 11, tz=tz))
    assert sunday_backup.created_at.weekday() == utc_weekday

    plan = plan_retention(
        RetentionPolicy(daily=1, weekly=1),
        [saturday, sunday_backup, monday, wednesday],
        local(sunday + timedelta(days=3), 12, tz=tz),
        tz,
    )
    assert plan.keep == {wednesday.id: "daily", sunday_backup.id: "weekly"}
    assert plan.delete == (saturday, monday)


def test_today_is_the_local_date_of_now() -> None:
    # 08:00 on Sunday in Tokyo is still Saturday in UTC: today is Sunday.
    tokyo = ZoneInfo("Asia/Tokyo")
    sunday = date(2025, 6, 15)
    now = local(sunday, 8, tz=tokyo)
    assert now.weekday() == 5
    last_sunday, friday, saturday, this_sunday = (
        make_backup(local(sunday - timedelta(days=n), 7, tz=tokyo)) for n in (7, 2, 1, 0)
    )
    history = [last_sunday, friday, saturday, this_sunday]

    plan = plan_retention(RetentionPolicy(daily=2, weekly=1), history, now, tokyo)
    assert plan.keep == {saturday.id: "daily", this_sunday.id: "daily"}
    assert plan.delete == (last_sunday, friday)


@pytest.mark.parametrize(
    ("change_day", "times_that_day"),
    [
        (date(2025, 3, 30), [(0, 30, 0), (3, 30, 0), (23, 30, 0)]),  # 23 hours long
        (date(2025, 10, 26), [(0, 30, 0), (2, 30, 0), (2, 30, 1), (23, 30, 0)]),  # 25 hours
    ],
    ids=["spring-forward", "fall-back"],
)
def test_a_dst_change_day_is_one_local_day(
    change_day: date, times_that_day: list[tuple[int, int, int]]
) -> None:
    day_before = make_backup(local(change_day - timedelta(days=1), 23, 30))
    that_day = [make_backup(local(change_day, h, m, fold=fold)) for h, m, fold in times_that_day]
    day_after = make_backup(local(change_day + timedelta(days=1), 0, 30))
    now = local(change_day + timedelta(days=1), 12)

    plan = plan_retention(
        RetentionPolicy(daily=3, weekly=0), [day_before, *that_day, day_after], now, PARIS
    )
    assert plan.keep == {b.id: "daily" for b in (day_before, that_day[-1], day_after)}
    assert plan.delete == tuple(that_day[:-1])

    plan = plan_retention(
        RetentionPolicy(daily=2, weekly=0), [day_before, *that_day, day_after], now, PARIS
    )
    assert plan.keep == {b.id: "daily" for b in (that_day[-1], day_after)}
    assert plan.delete == (day_before, *that_day[:-1])


def test_a_month_whose_first_sunday_is_ahead_does_not_count() -> None:
    # 2025-07-03: July's first Sunday (the 6th) has not come yet, so the one
    # monthly slot holds June's (the 1st), not May's.
    may, june = make_backup(local(date(2025, 5, 4), 1)), make_backup(local(date(2025, 6, 1), 1))
    today = make_backup(local(date(2025, 7, 3), 1))
    plan = plan_retention(
        RetentionPolicy(daily=1, weekly=0, monthly=1),
        [may, june, today],
        local(date(2025, 7, 3), 2),
        PARIS,
    )
    assert plan.keep == {today.id: "daily", june.id: "monthly"}
    assert plan.delete == (may,)


# --- safety and other records --------------------------------------------------------


def test_the_newest_done_backup_is_never_deleted() -> None:
    now = datetime(2025, 6, 10, 12, tzinfo=UTC)
    old = [make_backup(now - timedelta(days=n)) for n in (102, 101, 100)]
    failed_since = make_backup(now - timedelta(days=1), status="error")
    plan = plan_retention(RetentionPolicy(daily=1, weekly=0), [*old, failed_since], now, PARIS)
    assert plan.keep == {old[-1].id: "daily"}
    assert plan.delete == tuple(old[:-1])


def test_scheduled_and_running_backups_are_left_alone() -> None:
    now = datetime(2025, 6, 10, 12, tzinfo=UTC)
    stuck = make_backup(now - timedelta(days=200), status="running")
    waiting = make_backup(now - timedelta(days=150), status="scheduled", method="manual")
    done = make_backup(now - timedelta(hours=2))
    plan = plan_retention(RetentionPolicy(), [stuck, waiting, done], now, PARIS)
    assert plan.keep == {done.id: "daily"}
    assert plan.delete == ()


def test_error_records_expire_after_30_days_from_when_they_failed() -> None:
    now = datetime(2025, 6, 10, 12, tzinfo=UTC)
    recent = make_backup(now - timedelta(days=29), status="error")
    old = make_backup(now - timedelta(days=31), status="error")
    slow = make_backup(  # created long ago, failed recently: its age counts from the failure
        now - timedelta(days=31), status="error", finished_at=now - timedelta(days=29)
    )
    unfinished = BackupRecord(
        id=backup_id(now - timedelta(days=31), 99),
        database="db",
        name=backup_name("db", now - timedelta(days=31)),
        method="periodic",
        status="error",
        created_at=now - timedelta(days=31),
    )
    plan = plan_retention(RetentionPolicy(), [recent, old, slow, unfinished], now, PARIS)
    assert plan.keep == {}
    assert deleted_ids(plan) == {old.id, unfinished.id}


def test_backups_from_the_future_are_kept_and_count_as_today() -> None:
    now = local(date(2025, 6, 10), 23, 50)
    made_today = make_backup(now - timedelta(hours=1))
    ahead = [make_backup(now + timedelta(minutes=m)) for m in (15, 20)]  # tomorrow, locally
    plan = plan_retention(RetentionPolicy(daily=1, weekly=0), [made_today, *ahead], now, PARIS)
    # The newest of "today" is now a future one, so the past one is no longer today's.
    assert plan.keep == {b.id: "daily" for b in ahead}
    assert plan.delete == (made_today,)
