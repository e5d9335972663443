"""The local stack's alert paths, from template.yaml as AWS runs them.

- A function's `EventBridgeRule` events: moto's bus routes each matching event to an
  SQS queue (the rule's own pattern), and a thread invokes the function with it,
  asynchronously, as EventBridge does. So a failed backup refreshes its database's
  health at once, here too.
- The alerts topic: an SQS queue subscribed to it, and a thread that prints each
  message in the stack's log, as the email subscription would receive it.

Nothing shipped knows of this: the dispatcher publishes to its topic and reads its
webhook's secret as on AWS (`pgbackups local --alert-webhook URL` makes that secret).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pgbackups.local")

# Long polling: a message is handled within about this, and stopping waits as long.
POLL_SECONDS = 1


class QueueRelay:
    """A thread handing each message of an SQS queue to `handle`, then deleting it."""

    def __init__(
        self, sqs: Any, queue_url: str, handle: Callable[[dict[str, Any]], None], name: str
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handle = handle
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=POLL_SECONDS * 5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                answer = self._sqs.receive_message(
                    QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=POLL_SECONDS
                )
            except Exception:
                if self._stopping.is_set():
                    return  # moto stops after the rules
                log.exception("%s: reading its queue failed", self._thread.name)
                self._stopping.wait(POLL_SECONDS)
                continue
            for message in answer.get("Messages", []):
                try:
                    self._handle(json.loads(message["Body"]))
                except Exception:
                    log.exception("%s: a message could not be handled", self._thread.name)
                self._sqs.delete_message(
                    QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def queue_arn(sqs: Any, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def route_event_rule(
    events: Any,
    sqs: Any,
    *,
    rule_name: str,
    bus_name: str,
    pattern: dict[str, Any],
    invoke: Callable[[dict[str, Any]], None],
) -> QueueRelay:
    """The rule on the bus with its pattern, its events queued for `invoke`."""
    queue_url = sqs.create_queue(QueueName=rule_name)["QueueUrl"]
    events.put_rule(Name=rule_name, EventBusName=bus_name, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule=rule_name,
        EventBusName=bus_name,
        Targets=[{"Id": "function", "Arn": queue_arn(sqs, queue_url)}],
    )
    return QueueRelay(sqs, queue_url, invoke, name=rule_name)


def print_topic(
    sns: Any, sqs: Any, *, topic_arn: str, queue_name: str, show: Callable[[str], None]
) -> QueueRelay:
    """Each message published to the topic, shown as an email subscriber reads it."""
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn(sqs, queue_url))

    def received(notification: dict[str, Any]) -> None:
        subject = notification.get("Subject") or "(no subject)"
        lines = str(notification.get("Message", "")).splitlines()
        show("\n".join([f"alert: {subject}", *(f"    {line}" for line in lines)]))

    return QueueRelay(sqs, queue_url, received, name=queue_name)
