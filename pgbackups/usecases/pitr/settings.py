"""Enable, change and disable continuous backups; forget them when the database goes."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import CaptureRunning, PgBackupsError, ReplicationRefused
from pgbackups.domain.models import to_rfc3339
from pgbackups.domain.pitr import PitrSettings, PitrState, slot_name
from pgbackups.postgres import slots, wal
from pgbackups.services import Services
from pgbackups.usecases.pitr.base_backup import request_base_backup
from pgbackups.usecases.pitr.chains import end_chain, new_chain

logger = Logger(child=True)

# Enabling or disabling holds the capture lease at most this long.
SETTINGS_LEASE = timedelta(minutes=2)
MIN_WAL_LEVELS = ("replica", "logical", "archive", "hot_standby")


def enable_pitr(
    services: Services,
    database: str,
    settings: PitrSettings,
    replication_url: str | None = None,
) -> PitrState:
    """Turn continuous backups on (or change their settings), checking the server.

    Refusals are ReplicationRefused (422) naming the missing setting or privilege.
    The first base backup is asked of the backups' runner at once: it may take longer
    than an API request may, so the state shows it on its way until it is stored.
    """
    services.catalog.get_database(database)  # DatabaseNotFound
    current = services.pitr.get_state(database)
    if not settings.enabled:
        return disable_pitr(services, database, settings)
    url = replication_url or services.secrets.replication_url(database)
    if current is not None and current.enabled and replication_url is None:
        # Only the settings: a capture running meanwhile may move the state to a new chain.
        changed = services.pitr.change_settings(database, settings)
        if changed is not None:
            return changed
        current = services.pitr.get_state(database)  # disabled meanwhile: enable again

    identity = check_server(url, "replication_url" if replication_url else "url")
    with _lease(services, database):
        state = _start_pitr(services, database, settings, url, replication_url, current, identity)
    assert state.chain_id is not None
    request_base_backup(services, database, state.chain_id)
    return state


def _start_pitr(
    services: Services,
    database: str,
    settings: PitrSettings,
    url: str,
    replication_url: str | None,
    current: PitrState | None,
    identity: wal.ServerIdentity,
) -> PitrState:
    slot = _slot_of(database, current)
    try:
        slots.drop_slot(url, slot)
        start = slots.create_slot(url, slot)
    except wal.ReplicationFailed as error:
        raise ReplicationRefused(
            f"cannot create the replication slot {slot}: {error} (the role needs the "
            "REPLICATION attribute and a free slot: raise max_replication_slots)",
            field="replication_url",
        ) from None
    if replication_url is not None:
        services.secrets.put_replication_url(database, replication_url)
    now = services.clock()
    if current is not None and current.chain_id is not None:
        end_chain(services, database, current.chain_id, "continuous backups were enabled again")
    chain = new_chain(database, identity, start, now, url)
    services.pitr.put_chain(chain)
    state = PitrState(
        database=database,
        **settings.model_dump(),
        status="ok",
        chain_id=chain.id,
        enabled_at=now,
        slot=slot,
    )
    services.pitr.put_state(state)
    logger.info("continuous backups enabled", extra={"database": database, "chain": chain.id})
    return state


def _slot_of(database: str, current: PitrState | None) -> str:
    """The database's own slot: named once, when continuous backups are first enabled
    (a database enabled before names were unique keeps its slot while it is on)."""
    if current is not None and (current.slot is not None or current.enabled):
        return current.replication_slot
    return slot_name(database, secrets.token_hex(4))


def check_server(url: str, field_name: str) -> wal.ServerIdentity:
    """The server's identity over a replication connection, or ReplicationRefused saying why."""
    try:
        connection = wal.connect_replication(url)
    except wal.ReplicationFailed as error:
        level = slots.wal_level(url)
        if level is not None and level not in MIN_WAL_LEVELS:
            raise ReplicationRefused(
                _wal_level_refusal(field_name, level), field=field_name
            ) from None
        raise ReplicationRefused(
            f"{field_name}: the server refuses a replication connection ({error}). The role "
            "needs the REPLICATION attribute and pg_hba.conf a `replication` line for it; "
            "managed services (RDS, Supabase, Neon) do not offer physical replication",
            field=field_name,
        ) from None
    try:
        identity = wal.identify(connection)
    except wal.MalformedWal as error:
        raise ReplicationRefused(
            f"{field_name}: the server describes itself in a way PostgreSQL cannot ({error})",
            field=field_name,
        ) from None
    finally:
        connection.close()
    if identity.wal_level not in MIN_WAL_LEVELS:
        raise ReplicationRefused(
            _wal_level_refusal(field_name, identity.wal_level), field=field_name
        )
    return identity


def _wal_level_refusal(field_name: str, level: str) -> str:
    return (
        f"{field_name}: the server has wal_level = {level}; continuous backups need "
        "wal_level = replica (or logical), max_wal_senders > 0 and a restart"
    )


def disable_pitr(
    services: Services, database: str, settings: PitrSettings | None = None
) -> PitrState:
    """Drop the slot (the server must not keep WAL for nobody); stored WAL expires."""
    with _lease(services, database):
        return _stop_pitr(services, database, settings)


def _stop_pitr(services: Services, database: str, settings: PitrSettings | None) -> PitrState:
    current = services.pitr.get_state(database)
    if current is None:
        current = PitrState(database=database)
    if current.enabled:
        url = services.secrets.replication_url(database)
        try:
            slots.drop_slot(url, current.replication_slot)
        except wal.ReplicationFailed as error:
            raise ReplicationRefused(
                f"cannot drop the replication slot {current.replication_slot}: {error}"
            ) from None
    if current.enabled and current.chain_id is not None:
        end_chain(services, database, current.chain_id, "continuous backups were disabled")
    update = (settings or PitrSettings()).model_dump() | {"enabled": False, "status": "disabled"}
    state = current.model_copy(update=update)
    services.pitr.put_state(state)
    logger.info("continuous backups disabled", extra={"database": database})
    return state


@contextlib.contextmanager
def _lease(services: Services, database: str) -> Iterator[None]:
    """The capture lease, so that no capture extends a chain being replaced or stopped."""
    owner = uuid.uuid4().hex
    now = services.clock()
    if not services.pitr.acquire_lease(database, owner, now, now + SETTINGS_LEASE):
        raise CaptureRunning(
            f"a WAL capture of {database} is running: try again when it has finished"
        )
    try:
        yield
    finally:
        services.pitr.release_lease(database, owner)


def forget_pitr(services: Services, database: str) -> None:
    """A database is removed: drop its slot (best effort: the server may be gone) and its
    replication URL; what is stored expires with the window."""
    state = services.pitr.get_state(database)
    if state is not None and state.enabled:
        try:
            disable_pitr(services, database)
        except Exception as error:
            reason = str(
                error.message if isinstance(error, PgBackupsError) else type(error).__name__
            )
            logger.exception(
                "could not drop the replication slot of a removed database; drop it by hand",
                extra={"database": database, "slot": state.replication_slot},
            )
            services.pitr.put_state(
                state.model_copy(update={"enabled": False, "status": "disabled"})
            )
            _publish_slot_left(services, database, state.replication_slot, reason)
    services.secrets.delete_replication_url(database)


def _publish_slot_left(services: Services, database: str, slot: str, reason: str) -> None:
    """The server keeps WAL for the slot until someone drops it (or, with
    `max_slot_wal_keep_size`, invalidates it): whoever watches the events must know."""
    try:
        services.events.publish_pitr_slot_left(
            {
                "database": database,
                "slot": slot,
                "reason": reason,
                "action": f"SELECT pg_drop_replication_slot('{slot}');",
                "at": to_rfc3339(services.clock()),
            }
        )
    except Exception:
        logger.exception("could not publish the PITR Slot Left event")
