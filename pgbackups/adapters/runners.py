"""Backup runners: where the backup code runs for a `scheduled` record."""

from __future__ import annotations

from typing import Any

from pgbackups.domain.models import BackupRequest


class LambdaRunner:
    """The backup function, invoked asynchronously (InvocationType Event): Lambda retries
    a failed start, and `run_backup` makes a retry of a started backup a no-op."""

    name = "lambda"

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def start(self, request: BackupRequest) -> None:
        self._lambda.invoke(
            FunctionName=self._function,
            InvocationType="Event",
            Payload=request.model_dump_json().encode(),
        )
