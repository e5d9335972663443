"""Where alerts go: an SNS topic (email subscriptions) and a chat webhook.

The webhook's URL is a secret (whoever has a Slack incoming webhook URL can post to the
channel): it is read from Secrets Manager when the first alert goes out, and never
logged or put in an error message. Its payload is Slack's (`text`), which Mattermost,
Teams workflows and any JSON endpoint accept too, with the alert's fields beside it.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pgbackups.domain.health import AlertMessage

WEBHOOK_TIMEOUT_SECONDS = 10
SUBJECT_LIMIT = 100  # SNS refuses longer email subjects


class AlertNotDelivered(Exception):
    """A channel refused or did not answer; the message says which, never the URL."""


def webhook_payload(message: AlertMessage) -> dict[str, Any]:
    return {
        "text": message.text,
        "pgbackups": {
            "database": message.database,
            "alert": message.kind,
            "status": message.status,
            "subject": message.subject,
        },
    }


LOOPBACK_NAMES = frozenset({"localhost"})


def check_webhook_url(url: str) -> str:
    """An https URL, or plain http to this machine alone (a receiver on a loopback
    address: nothing crosses a network in clear). Anything else, such as file://, is
    refused: urllib would open it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    raise ValueError(
        "the alert webhook must be an https:// URL (a Slack-compatible incoming webhook)"
    )


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AlertChannels:
    """Sends each alert to every channel the deployment has; none is fine."""

    def __init__(
        self,
        *,
        sns: Any = None,
        topic_arn: str | None = None,
        webhook_url: Callable[[], str] | None = None,
    ) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._webhook_url = webhook_url

    def send(self, message: AlertMessage) -> None:
        failures: list[str] = []
        if self._sns is not None and self._topic_arn:
            try:
                self._sns.publish(
                    TopicArn=self._topic_arn,
                    Subject=_subject(message.subject),
                    Message=message.text,
                )
            except Exception as error:  # the other channel still gets it
                failures.append(f"the alert topic refused it ({type(error).__name__})")
        if self._webhook_url is not None:
            try:
                self._send_webhook(message)
            except AlertNotDelivered as error:
                failures.append(str(error))
        if failures:
            raise AlertNotDelivered("; ".join(failures))

    def _send_webhook(self, message: AlertMessage) -> None:
        assert self._webhook_url is not None
        try:
            url = check_webhook_url(self._webhook_url())
        except ValueError as error:
            raise AlertNotDelivered(str(error)) from None
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            url,
            data=json.dumps(webhook_payload(message)).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "pgbackups"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as answer:  # noqa: S310
                answer.read(1024)
        except urllib.error.HTTPError as error:
            raise AlertNotDelivered(f"the alert webhook answered HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            kind = type(reason).__name__ if not isinstance(reason, str) else "URLError"
            raise AlertNotDelivered(f"the alert webhook could not be reached ({kind})") from None


def _subject(subject: str) -> str:
    """SNS takes ASCII subjects of up to 100 characters, no line breaks."""
    flat = subject.encode("ascii", "replace").decode().replace("\n", " ")
    return flat if len(flat) <= SUBJECT_LIMIT else flat[: SUBJECT_LIMIT - 3] + "..."
