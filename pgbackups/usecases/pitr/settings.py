"""Enable, change and disable continuous backups; forget them when the database goes."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta

from aws_lambda_powertools import Logger

from pgbackups.domain.errors import (
    AuthenticationFailed,
    CaptureRunning,
    NoFreeReplicationSlot,
    NoFreeWalSender,
    PgBackupsError,
    ReplicationNotPermitted,
    ReplicationRefused,
    ReplicationRefusedByPgHba,
    ServerUnreachable,
    WalLevelTooLow,
)
from pgbackups.domain.models import to_rfc3339
from pgbackups.domain.pitr import PitrSettings, PitrState, slot_name
from pgbackups.postgres import slots, wal
from pgbackups.postgres.urls import registered_connection
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

    PUTting the settings a database already has changes nothing. A new replication URL
    that leads to the same server (system identifier and timeline) keeps the chain and
    the slot: no gap; one that leads to another server starts a new chain there.
    Refusals are ReplicationRefused (422), each kind with its own code and a message
    saying what to do. The first base backup is asked of the backups' runner at once:
    it may take longer than an API request may, so the state shows it on its way until
    it is stored.
    """
    services.catalog.get_database(database)  # DatabaseNotFound
    current = services.pitr.get_state(database)
    if not settings.enabled:
        return disable_pitr(services, database, settings)
    identity: wal.ServerIdentity | None = None
    if current is not None and current.enabled and current.chain_id is not None:
        if replication_url is not None and replication_url != services.secrets.replication_url(
            database
        ):
            identity = check_server(replication_url, "replication_url")
        if identity is None or _same_server(services, database, current.chain_id, identity):
            kept = _change(services, database, settings, replication_url, identity)
            if kept is not None:
                return kept
            current = services.pitr.get_state(database)  # disabled meanwhile: enable again

    url = replication_url or services.secrets.replication_url(database)
    identity = identity or check_server(url, "replication_url" if replication_url else "url")
    with _lease(services, database):
        state = _start_pitr(services, database, settings, url, replication_url, current, identity)
    assert state.chain_id is not None
    request_base_backup(services, database, state.chain_id)
    return state


def _same_server(
    services: Services, database: str, chain_id: str, identity: wal.ServerIdentity
) -> bool:
    """Whether the chain can go on at `identity`: same system identifier and timeline."""
    chain = services.pitr.get_chain(database, chain_id)
    return (identity.system_id, identity.timeline) == (chain.system_id, chain.timeline)


def _change(
    services: Services,
    database: str,
    settings: PitrSettings,
    replication_url: str | None,
    identity: wal.ServerIdentity | None,
) -> PitrState | None:
    """Continuous backups are on and go on with their chain: the settings, and the new
    replication URL (`identity`: checked, the same server) if there is one. None when
    continuous backups went off meanwhile."""
    if replication_url is not None and identity is not None:
        # The same server reached another way (another role, host or password): the slot
        # and the chain go on; the capture reads the slot with the new URL.
        services.secrets.put_replication_url(database, replication_url)
        logger.info("replication URL changed, same server", extra={"database": database})
    # Only the settings: a capture running meanwhile may move the state to a new chain.
    return services.pitr.change_settings(database, settings)


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
        raise _slot_refusal(slot, str(error)) from None
    if current is not None and current.enabled:
        _drop_old_slot(services, database, current.replication_slot)
    if replication_url is not None:
        services.secrets.put_replication_url(database, replication_url)
    now = services.clock()
    if current is not None and current.chain_id is not None:
        reason = (
            "the replication URL now leads to another server"
            if current.enabled
            else "continuous backups were enabled again"
        )
        end_chain(services, database, current.chain_id, reason)
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


def _drop_old_slot(services: Services, database: str, slot: str) -> None:
    """The previous server keeps WAL for the slot until it is dropped: drop it there if
    it answers, else say so (event `PITR Slot Left`)."""
    try:
        slots.drop_slot(services.secrets.replication_url(database), slot)
    except wal.ReplicationFailed as error:
        logger.warning("could not drop the slot on the previous server", extra={"slot": slot})
        _publish_slot_left(services, database, slot, str(error))


def _slot_of(database: str, current: PitrState | None) -> str:
    """The database's own slot: named once, when continuous backups are first enabled
    (a database enabled before names were unique keeps its slot while it is on)."""
    if current is not None and (current.slot is not None or current.enabled):
        return current.replication_slot
    return slot_name(database, secrets.token_hex(4))


# What libpq and the server say, lower-cased, for each refusal (servers 13 to 18).
_UNREACHABLE = (
    "connection refused",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "could not connect to server",
    "server closed the connection unexpectedly",
)
_AUTHENTICATION = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
)
_PG_HBA = ("pg_hba.conf",)
_NOT_PERMITTED = (
    "must be superuser or replication role",
    "permission denied to start wal sender",
    "permission denied to use replication slots",
    "replication attribute",
)
_NO_WAL_SENDER = ("max_wal_senders",)
_NO_SLOT = ("all replication slots are in use", "max_replication_slots")


def _says(reason: str, phrases: tuple[str, ...]) -> bool:
    said = reason.lower()
    return any(phrase in said for phrase in phrases)


def check_server(url: str, field_name: str) -> wal.ServerIdentity:
    """The server's identity over a replication connection, or ReplicationRefused (one
    kind per cause) saying what to do."""
    try:
        connection = wal.connect_replication(url)
    except wal.ReplicationFailed as error:
        raise _connection_refusal(url, field_name, _libpq_reason(url, str(error))) from None
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
        raise WalLevelTooLow(_wal_level_refusal(field_name, identity.wal_level), field=field_name)
    return identity


def _libpq_reason(url: str, failure: str) -> str:
    """libpq's reason alone, without the (redacted) URL the failure starts with: the
    message names the field, and a person knows which URL they gave."""
    _, found, reason = failure.partition(f"{registered_connection(url).redacted}: ")
    return reason if found else failure


def _connection_refusal(url: str, field_name: str, reason: str) -> ReplicationRefused:
    """Why the replication connection was refused, told apart (the reason has no secret:
    `wal.connect` scrubs it)."""
    if _says(reason, _UNREACHABLE):
        return ServerUnreachable(
            f"{field_name}: the server cannot be reached ({reason}). Check the host and "
            "port, that the server is running and that it accepts connections from here",
            field=field_name,
        )
    if _says(reason, _AUTHENTICATION):
        return AuthenticationFailed(
            f"{field_name}: the server refused the user name or password ({reason}). "
            "Check them (the role must exist and be allowed to log in)",
            field=field_name,
        )
    if _says(reason, _PG_HBA):
        return ReplicationRefusedByPgHba(
            f"{field_name}: pg_hba.conf lets no replication connection of this role in "
            f"from here ({reason}). Add a line such as `host replication <role> "
            "<address>/32 scram-sha-256` to pg_hba.conf and reload the server",
            field=field_name,
        )
    if _says(reason, _NOT_PERMITTED):
        return ReplicationNotPermitted(
            f"{field_name}: the role may not replicate ({reason}). Give it the "
            "REPLICATION attribute (`ALTER ROLE <role> REPLICATION`) or use a role that "
            "has it. Managed services (RDS, Supabase, Neon) do not offer physical "
            "replication",
            field=field_name,
        )
    level = slots.wal_level(url)
    if level is not None and level not in MIN_WAL_LEVELS:
        return WalLevelTooLow(_wal_level_refusal(field_name, level), field=field_name)
    if _says(reason, _NO_WAL_SENDER):
        return NoFreeWalSender(
            f"{field_name}: the server has no free WAL sender ({reason}). Raise "
            "max_wal_senders (it needs a restart), or stop a replication client",
            field=field_name,
        )
    return ReplicationRefused(
        f"{field_name}: the server refuses a replication connection ({reason}). The role "
        "needs the REPLICATION attribute and pg_hba.conf a `replication` line for it",
        field=field_name,
    )


def _slot_refusal(slot: str, reason: str) -> ReplicationRefused:
    if _says(reason, _NO_SLOT):
        return NoFreeReplicationSlot(
            f"cannot create the replication slot {slot}: the server has no free slot "
            f"({reason}). Raise max_replication_slots (it needs a restart), or drop a slot "
            "nobody uses (`SELECT pg_drop_replication_slot(name)`)",
            field="replication_url",
        )
    if _says(reason, _NOT_PERMITTED) or "permission denied" in reason.lower():
        return ReplicationNotPermitted(
            f"cannot create the replication slot {slot}: the role may not ({reason}). Give "
            "it the REPLICATION attribute (`ALTER ROLE <role> REPLICATION`)",
            field="replication_url",
        )
    return ReplicationRefused(
        f"cannot create the replication slot {slot}: {reason}", field="replication_url"
    )


def _wal_level_refusal(field_name: str, level: str) -> str:
    return (
        f"{field_name}: the server has wal_level = {level}; continuous backups need "
        "wal_level = replica (or logical) and max_wal_senders > 0: set both in "
        "postgresql.conf and restart the server"
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
    update = (settings or PitrSettings()).model_dump() | {
        "enabled": False,
        "status": "disabled",
        "broken_reason": None,  # a break while off is no break: the history keeps it
        "broken_since": None,
    }
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
