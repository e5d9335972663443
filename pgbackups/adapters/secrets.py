"""Connection URLs in Secrets Manager, one secret per database.

They are write-only for the API: stored here, read by the backup function, never
returned, logged, put in DynamoDB or in an environment variable.

The secret's JSON holds both URLs and `version`, a count of its writes. A change
writes its new version with a ClientRequestToken derived from the version it read:
two changes made from the same version ask for the same token, and Secrets Manager
takes one and refuses the other (a version's token cannot name other content), which
then reads again and re-applies its change. No change undoes another.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from pgbackups.domain.errors import Conflict, DatabaseNotFound
from pgbackups.domain.models import ConnectionInfo

# A change refused this many times in a row (others kept changing the URLs) is a 409.
CHANGE_ATTEMPTS = 5
# Tokens of versions written over a version read (uuid5 of the version's id).
_TOKENS = uuid.UUID("6f1c2a4e-8d0b-4c59-9a57-3f0e6c1d2b7a")


def _secret_string(info: ConnectionInfo, version: int) -> str:
    return json.dumps({"url": info.url, "replica_url": info.replica_url, "version": version})


class ConnectionSecrets:
    def __init__(self, secretsmanager: Any, prefix: str) -> None:
        self._sm = secretsmanager
        self._prefix = prefix

    def secret_id(self, database: str) -> str:
        return f"{self._prefix}/databases/{database}"

    def put(self, database: str, info: ConnectionInfo) -> None:
        """Store a newly registered database's URLs, whatever the secret held."""
        self._store(self.secret_id(database), _secret_string(info, 1), database, "connection URLs")

    def get(self, database: str) -> ConnectionInfo:
        return self._read(database)[0]

    def change(
        self, database: str, change: Callable[[ConnectionInfo], ConnectionInfo]
    ) -> ConnectionInfo:
        """Apply `change` to the stored URLs, conditionally on the version read (again
        when another change came first); the URLs stored, with their version.

        DatabaseNotFound when the secret is gone (the database removed); Conflict
        (`conflict`) when other changes came first CHANGE_ATTEMPTS times in a row."""
        for _ in range(CHANGE_ATTEMPTS):
            current, secret_arn, version_id = self._read(database)
            changed = change(current)
            stored = ConnectionInfo(changed.url, changed.replica_url, current.version + 1)
            try:
                self._sm.put_secret_value(
                    # The secret read, not a new one of the same name (removed, registered again).
                    SecretId=secret_arn,
                    SecretString=_secret_string(stored, stored.version),
                    ClientRequestToken=str(uuid.uuid5(_TOKENS, version_id)),
                )
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code == "ResourceExistsException":
                    continue  # another change wrote over this version first
                if code == "ResourceNotFoundException":
                    raise DatabaseNotFound(f"no connection URL stored for {database}") from None
                raise
            return stored
        raise Conflict(f"the connection URLs of {database} kept changing meanwhile: try again")

    def _read(self, database: str) -> tuple[ConnectionInfo, str, str]:
        """The stored URLs, their secret's ARN and the id of their version."""
        try:
            answer = self._sm.get_secret_value(SecretId=self.secret_id(database))
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                raise DatabaseNotFound(f"no connection URL stored for {database}") from None
            raise
        data = json.loads(answer["SecretString"])
        info = ConnectionInfo(data["url"], data.get("replica_url"), data.get("version", 0))
        return info, str(answer["ARN"]), str(answer["VersionId"])

    def replication_secret_id(self, database: str) -> str:
        return f"{self._prefix}/databases/{database}/replication"

    def put_replication_url(self, database: str, url: str) -> None:
        """The URL continuous backups stream WAL with, when it is not the database's own."""
        self._store(self.replication_secret_id(database), url, database, "replication URL")

    def replication_url(self, database: str) -> str:
        """The replication URL, else the database's own URL."""
        try:
            return str(
                self._sm.get_secret_value(SecretId=self.replication_secret_id(database))[
                    "SecretString"
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        return self.get(database).url

    def delete_replication_url(self, database: str) -> None:
        self._delete(self.replication_secret_id(database))

    def delete(self, database: str) -> None:
        self._delete(self.secret_id(database))

    # A stack-run restore's target URL: one short-lived secret per restore, deleted when
    # its run ends (pgbackups.usecases.restores).

    def restore_secret_id(self, restore_id: str) -> str:
        return f"{self._prefix}/restores/{restore_id}"

    def put_restore_target(self, restore_id: str, database: str, url: str) -> None:
        self._sm.create_secret(
            Name=self.restore_secret_id(restore_id),
            SecretString=url,
            Description=f"pgbackups: target URL of restore {restore_id} of database {database}",
            Tags=[{"Key": "pgbackups:restore", "Value": restore_id}],
        )

    def restore_target(self, restore_id: str) -> str | None:
        """The restore's target URL; None once its secret is gone."""
        try:
            answer = self._sm.get_secret_value(SecretId=self.restore_secret_id(restore_id))
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return str(answer["SecretString"])

    def delete_restore_target(self, restore_id: str) -> None:
        self._delete(self.restore_secret_id(restore_id))

    def _store(self, secret_id: str, value: str, database: str, holding: str) -> None:
        """Write `value` as the secret's new version, creating the secret if need be."""
        try:
            self._sm.put_secret_value(SecretId=secret_id, SecretString=value)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self._sm.create_secret(
                Name=secret_id,
                SecretString=value,
                Description=f"pgbackups: {holding} of database {database}",
                Tags=[{"Key": "pgbackups:database", "Value": database}],
            )

    def _delete(self, secret_id: str) -> None:
        try:
            self._sm.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
