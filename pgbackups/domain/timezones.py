"""Time zones as schedules name them: canonical IANA names of places (or UTC), read from
the pinned tzdata package, so that a stored name means the same on every runtime."""

from __future__ import annotations

import functools
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# In the zoneinfo directory but not time zones of the IANA database: the host's own
# setting, placeholders, and the leap-second (`right/`) and `posix/` copies.
NOT_IANA_ZONES = frozenset({"localtime", "Factory", "posixrules", "leapseconds"})
NOT_IANA_PREFIXES = ("posix/", "right/")


UTC_ZONE = "UTC"
# Zones that are UTC under another name (Etc/UCT, Zulu, GMT, Etc/Greenwich…): the same
# schedule, written UTC.
_UTC_TARGETS = frozenset({"Etc/UTC", "Etc/GMT"})


@functools.cache
def iana_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _tzdata_text(name: str) -> str:
    return resources.files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")


@functools.cache
def _canonical_zones() -> tuple[frozenset[str], dict[str, str]]:
    """The canonical names (the locations of the time zone database's zone.tab and
    zone1970.tab, and UTC) and its links (an old or alias name → the zone it names),
    from the pinned `tzdata` package."""
    canonical = {UTC_ZONE}
    for table in ("zone.tab", "zone1970.tab"):
        for line in _tzdata_text(table).splitlines():
            if line and not line.startswith("#"):
                canonical.add(line.split("\t")[2])
    links = {}
    for line in _tzdata_text("tzdata.zi").splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()
            links[alias] = target
    return frozenset(canonical), links


def canonical_timezone(name: str) -> str | None:
    """The canonical name of an IANA time zone name (`US/Pacific` → `America/Los_Angeles`,
    `Etc/UTC` → `UTC`), or None when it has none (`Etc/GMT+5`: a fixed offset, no place)."""
    canonical, links = _canonical_zones()
    seen: set[str] = set()
    while name not in canonical and name in links and name not in seen:
        seen.add(name)
        name = links[name]
    if name in _UTC_TARGETS:
        return UTC_ZONE
    return name if name in canonical else None


def check_timezone(name: str) -> str:
    """The canonical IANA name of time zone `name` (as `Europe/Paris`; an alias the time
    zone database links to one, such as `US/Pacific`, gives that one), or ValueError."""
    if name in NOT_IANA_ZONES or name.startswith(NOT_IANA_PREFIXES) or name not in iana_zones():
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris")
    canonical = canonical_timezone(name)
    if canonical is None:
        raise ValueError(
            f"time zone {name!r} names no place: use the IANA name of a location, such as "
            "America/New_York, or UTC"
        )
    try:
        ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return canonical
