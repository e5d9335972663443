"""Wiring: the one place that builds boto3 clients and the adapters on them.

Handlers call `build_services(Settings.from_env())` at module scope (cold start);
tests build the same on moto and may swap the clock, the launcher or the runner.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from pgbackups.adapters.alerts import AlertChannels
from pgbackups.adapters.archives import ArchiveStore
from pgbackups.adapters.audit import AuditLog
from pgbackups.adapters.catalog import Catalog
from pgbackups.adapters.events import BackupEvents
from pgbackups.adapters.pitr import PitrCatalog
from pgbackups.adapters.restores import RestoreCatalog
from pgbackups.adapters.runners import FargateRunner, LambdaCaptureStarter, LambdaRunner
from pgbackups.adapters.secrets import ConnectionSecrets
from pgbackups.adapters.tokens import TokenStore
from pgbackups.adapters.verifications import VerificationCatalog
from pgbackups.api.auth import AuthorizerSettingsError, TokenAuthorizer
from pgbackups.domain.models import utcnow
from pgbackups.postgres.pgtools import PgTools
from pgbackups.services import Services
from pgbackups.settings import Settings
from pgbackups.usecases.tokens import Authenticator

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
        archives=ArchiveStore(s3, settings.bucket_name, settings.backup_lock),
        secrets=ConnectionSecrets(client("secretsmanager"), settings.secret_prefix),
        events=BackupEvents(client("events"), settings.event_bus_name),
        runner=LambdaRunner(lambda_client, settings.backup_function_name),
        tools=PgTools(settings.pgtools_dir),
        fargate=fargate,
        pitr=PitrCatalog(dynamodb, settings.table_name),
        captures=LambdaCaptureStarter(lambda_client, settings.capture_function_name),
        tokens=TokenStore(dynamodb, settings.table_name),
        audit=AuditLog(dynamodb, settings.table_name),
        alerts=_alert_channels(settings, client),
        restores=RestoreCatalog(dynamodb, settings.table_name),
        verifications=VerificationCatalog(dynamodb, settings.table_name),
    )


# The webhook's URL is read when an alert goes out, then kept a few minutes (a
# rotated URL is used within that time).
_WEBHOOK_URL_MAX_AGE_SECONDS = 300


def _alert_channels(settings: Settings, client: Callable[[str], Any]) -> AlertChannels:
    """The deployment's alert channels: the topic and the webhook it has (maybe none)."""
    webhook_url = None
    if settings.alert_webhook_secret_arn:
        provider = SecretsProvider(boto3_client=client("secretsmanager"))
        secret_id = settings.alert_webhook_secret_arn

        def webhook_url() -> str:
            return str(provider.get(secret_id, max_age=_WEBHOOK_URL_MAX_AGE_SECONDS))

    return AlertChannels(
        sns=client("sns") if settings.alert_topic_arn else None,
        topic_arn=settings.alert_topic_arn or None,
        webhook_url=webhook_url,
    )


def build_token_authorizer(
    environ: Mapping[str, str] | None = None, session: boto3.Session | None = None
) -> TokenAuthorizer:
    """The authorizer's token check, reading the token's secret through powertools."""
    secret_id = TokenAuthorizer.secret_id_from_env(environ)
    session = session or boto3.Session()
    client = session.client("secretsmanager", config=_RETRIES)
    return TokenAuthorizer(secret_id, SecretsProvider(boto3_client=client))


def build_authenticator(
    environ: Mapping[str, str] | None = None, session: boto3.Session | None = None
) -> Authenticator:
    """The authorizer's use case: the deploy-time token, the stored tokens, the audit trail."""
    env = os.environ if environ is None else environ
    table_name = env.get("TABLE_NAME")
    if not table_name:
        raise AuthorizerSettingsError("missing environment variable: TABLE_NAME")
    session = session or boto3.Session()
    deploy = build_token_authorizer(environ, session)
    dynamodb = session.client("dynamodb", config=_RETRIES)
    return Authenticator(
        lambda offered: deploy.is_authorized(f"Bearer {offered}"),
        TokenStore(dynamodb, table_name),
        AuditLog(dynamodb, table_name),
        utcnow,
    )
