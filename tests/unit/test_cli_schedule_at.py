"""`backups-config --schedule-at`: every accepted form, every refused one and its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgbackups_cli.schedule_at import (
    ScheduleAt,
    ScheduleAtError,
    machine_timezone,
    parse_schedule_at,
)

pytestmark = pytest.mark.unit

PARIS = {"TZ": "Europe/Paris"}


@pytest.mark.parametrize(
    ("text", "hour", "timezone"),
    [
        ("3", 3, "Europe/Paris"),
        ("03:00", 3, "Europe/Paris"),
        ("0", 0, "Europe/Paris"),
        ("23", 23, "Europe/Paris"),
        ("4:00 UTC", 4, "UTC"),
        ("4h00 Europe/Paris", 4, "Europe/Paris"),
        ("4H00 Europe/Paris", 4, "Europe/Paris"),
        ("3 Europe/Paris", 3, "Europe/Paris"),
        ("16:00 America/New_York", 16, "America/New_York"),
        ("4h Asia/Tokyo", 4, "Asia/Tokyo"),
        ("  7:00   UTC  ", 7, "UTC"),
        # IANA names as the database spells them, whatever the case typed.
        ("4:00 utc", 4, "UTC"),
        ("5 europe/paris", 5, "Europe/Paris"),
    ],
)
def test_accepted_forms(text: str, hour: int, timezone: str) -> None:
    assert parse_schedule_at(text, environ=PARIS) == ScheduleAt(hour=hour, timezone=timezone)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4:30", "'4:30': backups run on the hour, so the minutes must be :00, not :30"),
        ("4h15 UTC", "'4h15 UTC': backups run on the hour, so the minutes must be :00, not :15"),
        ("24", "'24': the hour must be between 0 and 23, not 24"),
        ("100:00 UTC", "'100:00 UTC': the hour must be between 0 and 23, not 100"),
        ("noon", "'noon' is not an hour: use e.g. 3"),
        ("", "'' is not an hour: use e.g. 3"),
        ("-1", "'-1' is not an hour: use e.g. 3"),
        ("4:0", "'4:0' is not an hour: use e.g. 3"),
        ("4:00:00", "'4:00:00' is not an hour"),
        ("4pm", "'4pm' is not an hour: use the 24-hour clock"),
        ("4 PM UTC", "'4 PM UTC' is not an hour: use the 24-hour clock"),
        ("4:00 UTC daily", "'4:00 UTC daily' has more than an hour and a time zone"),
        ("4:00 Mars/Olympus", "unknown time zone 'Mars/Olympus': use an IANA name"),
        ("3 Paris", "unknown time zone 'Paris'"),
        ("3 ../../etc/passwd", "unknown time zone '../../etc/passwd'"),
    ],
)
def test_refused_forms_say_why(text: str, message: str) -> None:
    with pytest.raises(ScheduleAtError) as refused:
        parse_schedule_at(text, environ=PARIS)
    assert message in str(refused.value)


def test_a_bare_hour_uses_tz(tmp_path: Path) -> None:
    parsed = parse_schedule_at("3", environ={"TZ": ":America/Sao_Paulo"}, localtime=tmp_path / "x")
    assert parsed == ScheduleAt(hour=3, timezone="America/Sao_Paulo")


def test_a_bare_hour_uses_the_localtime_link(tmp_path: Path) -> None:
    zoneinfo = tmp_path / "usr" / "share" / "zoneinfo" / "Asia"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Tokyo").write_bytes(b"TZif")
    localtime = tmp_path / "localtime"
    localtime.symlink_to(zoneinfo / "Tokyo")
    assert machine_timezone({}, localtime).name == "Asia/Tokyo"
    assert parse_schedule_at("3", environ={}, localtime=localtime) == ScheduleAt(3, "Asia/Tokyo")


def test_a_posix_localtime_link_names_the_zone(tmp_path: Path) -> None:
    zone = tmp_path / "zoneinfo" / "posix" / "Europe"
    zone.mkdir(parents=True)
    (zone / "Berlin").write_bytes(b"TZif")
    localtime = tmp_path / "localtime"
    localtime.symlink_to(zone / "Berlin")
    assert machine_timezone({}, localtime).name == "Europe/Berlin"


def test_no_machine_timezone_falls_back_to_utc_with_a_note(tmp_path: Path) -> None:
    parsed = parse_schedule_at("3", environ={}, localtime=tmp_path / "missing")
    assert (parsed.hour, parsed.timezone) == (3, "UTC")
    assert parsed.note == "could not tell this machine's time zone: using UTC"


def test_a_posix_tz_string_falls_back_to_utc_with_a_note(tmp_path: Path) -> None:
    parsed = parse_schedule_at("3", environ={"TZ": "CET-1CEST"}, localtime=tmp_path / "x")
    assert parsed.timezone == "UTC"
    assert parsed.note == "TZ=CET-1CEST is not an IANA time zone name: using UTC"


def test_an_explicit_zone_needs_no_machine_timezone(tmp_path: Path) -> None:
    parsed = parse_schedule_at("3 UTC", environ={}, localtime=tmp_path / "missing")
    assert parsed == ScheduleAt(3, "UTC")
    assert parsed.note is None


def test_etc_utc_is_shown_as_utc(tmp_path: Path) -> None:
    zone = tmp_path / "zoneinfo" / "Etc"
    zone.mkdir(parents=True)
    (zone / "UTC").write_bytes(b"TZif")
    localtime = tmp_path / "localtime"
    localtime.symlink_to(zone / "UTC")
    assert machine_timezone({}, localtime).name == "UTC"
    assert machine_timezone({"TZ": "Etc/UTC"}, localtime).name == "UTC"
