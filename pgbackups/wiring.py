"""Wiring: the one place that builds boto3 clients and the adapters on them.

Handlers call `build_services(Settings.from_env())` at module scope (cold start);
tests build the same on moto and may swap the clock, the launcher or the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from pgbackups.adapters.archives import ArchiveStore
from pgbackups.adapters.catalog import Catalog
from pgbackups.adapters.events import BackupEvents
from pgbackups.adapters.pitr import PitrCatalog
from pgbackups.adapters.restores import RestoreCatalog
from pgbackups.adapters.runners import FargateRunner, LambdaCaptureStarter, LambdaRunner
from pgbackups.adapters.secrets import ConnectionSecrets
from pgbackups.api.auth import TokenAuthorizer
from pgbackups.postgres.pgtools import PgTools
from pgbackups.services import Services
from pgbackups.settings import Settings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})


def build_services(settings: Settings, session: boto3.Session | None = None) -> Services:
    """The collaborators on AWS: the one place that builds boto3 clients."""
    session = session or boto3.Session()

    def client(name: str, config: Config = _RETRIES) -> Any:
        return session.client(name, config=config)

    # Bodies are not signed with their SHA-256 (a second pass over every archive): each
    # part carries its CRC32, which S3 checks, and TLS protects the rest, as botocore
    # itself does by default for uploads over https.
    s3 = client(
        "s3",
        _RETRIES.merge(Config(signature_version="s3v4", s3={"payload_signing_enabled": False})),
    )
    dynamodb = client("dynamodb")
    lambda_client = client("lambda")
    fargate = None
    if settings.fargate_available:
        fargate = FargateRunner(
            client("ecs"),
            lambda_client,
            cluster=settings.task_cluster,
            task_definition=settings.task_definition,
            container=settings.task_container,
            subnets=settings.task_subnets,
            security_groups=settings.task_security_groups,
            public_ip=settings.task_public_ip,
            function_name=settings.backup_function_name,
        )
    return Services(
        settings=settings,
        catalog=Catalog(dynamodb, settings.table_name),
        archives=ArchiveStore(s3, settings.bucket_name),
        secrets=ConnectionSecrets(client("secretsmanager"), settings.secret_prefix),
        events=BackupEvents(client("events"), settings.event_bus_name),
        runner=LambdaRunner(lambda_client, settings.backup_function_name),
        tools=PgTools(settings.pgtools_dir),
        fargate=fargate,
        pitr=PitrCatalog(dynamodb, settings.table_name),
        captures=LambdaCaptureStarter(lambda_client, settings.capture_function_name),
        restores=RestoreCatalog(dynamodb, settings.table_name),
    )


def build_token_authorizer(
    environ: Mapping[str, str] | None = None, session: boto3.Session | None = None
) -> TokenAuthorizer:
    """The authorizer's token check, reading the token's secret through powertools."""
    secret_id = TokenAuthorizer.secret_id_from_env(environ)
    session = session or boto3.Session()
    client = session.client("secretsmanager", config=_RETRIES)
    return TokenAuthorizer(secret_id, SecretsProvider(boto3_client=client))
