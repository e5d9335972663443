"""Connection URLs in Secrets Manager, one secret per database.

They are write-only for the API: stored here, read by the backup function, never
returned, logged, put in DynamoDB or in an environment variable.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from pgbackups.domain.errors import DatabaseNotFound
from pgbackups.domain.models import ConnectionInfo


class ConnectionSecrets:
    def __init__(self, secretsmanager: Any, prefix: str) -> None:
        self._sm = secretsmanager
        self._prefix = prefix

    def secret_id(self, database: str) -> str:
        return f"{self._prefix}/databases/{database}"

    def put(self, database: str, info: ConnectionInfo) -> None:
        value = json.dumps({"url": info.url, "replica_url": info.replica_url})
        secret_id = self.secret_id(database)
        try:
            self._sm.put_secret_value(SecretId=secret_id, SecretString=value)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self._sm.create_secret(
                Name=secret_id,
                SecretString=value,
                Description=f"pgbackups: connection URLs of database {database}",
                Tags=[{"Key": "pgbackups:database", "Value": database}],
            )

    def get(self, database: str) -> ConnectionInfo:
        try:
            value = self._sm.get_secret_value(SecretId=self.secret_id(database))["SecretString"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                raise DatabaseNotFound(f"no connection URL stored for {database}") from None
            raise
        data = json.loads(value)
        return ConnectionInfo(url=data["url"], replica_url=data.get("replica_url"))

    def replication_secret_id(self, database: str) -> str:
        return f"{self._prefix}/databases/{database}/replication"

    def put_replication_url(self, database: str, url: str) -> None:
        """The URL continuous backups stream WAL with, when it is not the database's own."""
        secret_id = self.replication_secret_id(database)
        try:
            self._sm.put_secret_value(SecretId=secret_id, SecretString=url)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self._sm.create_secret(
                Name=secret_id,
                SecretString=url,
                Description=f"pgbackups: replication URL of database {database}",
                Tags=[{"Key": "pgbackups:database", "Value": database}],
            )

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
        try:
            self._sm.delete_secret(
                SecretId=self.replication_secret_id(database), ForceDeleteWithoutRecovery=True
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise

    def delete(self, database: str) -> None:
        try:
            self._sm.delete_secret(
                SecretId=self.secret_id(database), ForceDeleteWithoutRecovery=True
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
