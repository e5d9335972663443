"""`backups-config --schedule-at`: an hour of the day and an optional IANA time zone.

Accepted: `3`, `03:00`, `4:00 UTC`, `4h00 Europe/Paris`, `3 Europe/Paris` (and
`4h`, `16:00`). Backups run on the hour, so minutes other than `:00` are
refused. A bare hour is in this machine's time zone.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_SCHEDULE_AT = re.compile(
    r"^(?P<hour>\d+)(?:(?::(?P<colon>\d{2}))|(?:[hH](?P<h>\d{2})?))?(?:\s+(?P<zone>\S+))?$"
)
_HOUR_FIRST = re.compile(r"^\d+(?::\d*|[hH]\d*)?(?:\s|$)")
_TWELVE_HOUR = re.compile(r"^\d+(?::\d+)?\s*[ap]\.?m\.?(?:\s|$)", re.IGNORECASE)
EXAMPLES = '3, "03:00", "4:00 UTC" or "4h00 Europe/Paris"'
LOCALTIME = Path("/etc/localtime")
# What Debian and others link /etc/localtime to for UTC; shown as plain UTC.
_UTC_ALIASES = frozenset(
    {"Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu"}
)


class ScheduleAtError(ValueError):
    """Why a `--schedule-at` value is refused, in words fit for a usage error."""


@dataclass(frozen=True)
class ScheduleAt:
    hour: int
    timezone: str
    # Set when the machine's time zone could not be told and UTC was used instead.
    note: str | None = None


@dataclass(frozen=True)
class MachineTimezone:
    name: str
    note: str | None = None


def parse_schedule_at(
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    localtime: Path = LOCALTIME,
) -> ScheduleAt:
    """The hour and time zone of `text`; ScheduleAtError saying what is wrong."""
    value = text.strip()
    match = _SCHEDULE_AT.match(value)
    if match is None:
        if _TWELVE_HOUR.match(value):
            raise ScheduleAtError(
                f"{text!r} is not an hour: use the 24-hour clock, e.g. {EXAMPLES}"
            )
        if _HOUR_FIRST.match(value) and len(value.split()) > 2:
            raise ScheduleAtError(
                f"{text!r} has more than an hour and a time zone: use e.g. {EXAMPLES}"
            )
        raise ScheduleAtError(f"{text!r} is not an hour: use e.g. {EXAMPLES}")
    hour = int(match["hour"])
    if hour > 23:
        raise ScheduleAtError(f"{text!r}: the hour must be between 0 and 23, not {hour}")
    minutes = match["colon"] or match["h"]
    if minutes is not None and int(minutes) != 0:
        raise ScheduleAtError(
            f"{text!r}: backups run on the hour, so the minutes must be :00, not :{minutes}"
        )
    if match["zone"] is None:
        machine = machine_timezone(environ, localtime)
        return ScheduleAt(hour=hour, timezone=machine.name, note=machine.note)
    return ScheduleAt(hour=hour, timezone=canonical_timezone(match["zone"]))


def _check_timezone(name: str) -> str:
    # The domain's check (imported on use: models loads pydantic, which --help does not need).
    from pgbackups.domain.timezones import check_timezone

    return check_timezone(name)


def canonical_timezone(name: str) -> str:
    """The IANA name as the time zone database spells it (`utc` → `UTC`)."""
    try:
        return _check_timezone(name)
    except ValueError:
        pass
    spelled = _timezones_by_lower_name().get(name.lower())
    if spelled is not None:
        return spelled
    raise ScheduleAtError(
        f"unknown time zone {name!r}: use an IANA name such as UTC, Europe/Paris "
        "or America/New_York"
    )


@cache
def _timezones_by_lower_name() -> dict[str, str]:
    return {zone.lower(): zone for zone in zoneinfo.available_timezones()}


def machine_timezone(
    environ: Mapping[str, str] | None = None, localtime: Path = LOCALTIME
) -> MachineTimezone:
    """This machine's IANA time zone: TZ, else /etc/localtime's link target, else UTC."""
    env = os.environ if environ is None else environ
    tz = env.get("TZ", "").removeprefix(":")
    if tz:
        name = _zone_name(tz)
        if name is not None:
            return MachineTimezone(name)
        return MachineTimezone("UTC", f"TZ={env['TZ']} is not an IANA time zone name: using UTC")
    try:
        target = localtime.resolve(strict=True)
    except OSError:
        target = None
    if target is not None:
        parts = target.parts
        for index in range(len(parts) - 1, 0, -1):
            if parts[index - 1] == "zoneinfo":
                name = _zone_name("/".join(parts[index:]))
                if name is not None:
                    return MachineTimezone(name)
    return MachineTimezone("UTC", "could not tell this machine's time zone: using UTC")


def _zone_name(candidate: str) -> str | None:
    # posix/ and right/ are the same zones with other leap-second rules.
    for prefix in ("posix/", "right/"):
        candidate = candidate.removeprefix(prefix)
    if candidate in _UTC_ALIASES:
        return "UTC"
    try:
        return _check_timezone(candidate)
    except ValueError:
        return None
