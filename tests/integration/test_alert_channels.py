"""Alert delivery against a real HTTP receiver and moto's SNS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from pgbackups.adapters.alerts import AlertChannels, AlertNotDelivered, check_webhook_url
from pgbackups.domain.health import AlertMessage

pytestmark = pytest.mark.integration

MESSAGE = AlertMessage(
    database="shop",
    kind="raised",
    status="failing",
    subject="[pgbackups] shop: backup failed",
    text="pgbackups: the database shop is failing.\n\nSince …",
)


class Receiver:
    """A chat webhook stand-in on 127.0.0.1: keeps what it is sent, answers `status`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.received.append(
                    {
                        "path": self.path,
                        "content_type": self.headers["Content-Type"],
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T000/B000/secret-part"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_an_alert_reaches_the_webhook_as_slack_text_with_its_fields(receiver: Receiver) -> None:
    AlertChannels(webhook_url=lambda: receiver.url).send(MESSAGE)
    [delivery] = receiver.received
    assert delivery["path"] == "/hooks/T000/B000/secret-part"
    assert delivery["content_type"] == "application/json"
    assert delivery["body"] == {
        "text": MESSAGE.text,
        "pgbackups": {
            "database": "shop",
            "alert": "raised",
            "status": "failing",
            "subject": "[pgbackups] shop: backup failed",
        },
    }


def test_a_refusing_or_absent_webhook_is_an_error_that_never_shows_its_url(
    receiver: Receiver,
) -> None:
    receiver.status = 404
    channels = AlertChannels(webhook_url=lambda: receiver.url)
    with pytest.raises(AlertNotDelivered) as refused:
        channels.send(MESSAGE)
    assert str(refused.value) == "the alert webhook answered HTTP 404"
    receiver.server.shutdown()
    receiver.server.server_close()
    with pytest.raises(AlertNotDelivered) as absent:
        channels.send(MESSAGE)
    assert "could not be reached" in str(absent.value)
    assert "secret-part" not in str(absent.value) and "127.0.0.1" not in str(absent.value)


def test_plain_http_is_used_only_for_a_webhook_on_this_machine(receiver: Receiver) -> None:
    for url in (
        "http://hooks.example.com/services/T000",
        "http://10.0.0.8/hook",
        "http://127.0.0.1.example.com/hook",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "https://",
        "gopher://h/",
    ):
        with pytest.raises(AlertNotDelivered, match="must be an https:// URL"):
            AlertChannels(webhook_url=lambda url=url: url).send(MESSAGE)
    for url in (
        "https://hooks.slack.com/services/T000/B000/x",
        "http://127.0.0.1:9/hook",
        "http://127.8.9.10/hook",
        "http://localhost:8080/hook",
        "http://[::1]:8080/hook",
    ):
        assert check_webhook_url(url) == url
    assert receiver.received == []


def test_an_alert_is_published_to_the_topic_with_a_subject_sns_accepts(moto_endpoint: str) -> None:
    sns = boto3.client("sns", endpoint_url=moto_endpoint, region_name="eu-west-3")
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="eu-west-3")
    topic = sns.create_topic(Name="pgbackups-alerts-test")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-test")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    long = MESSAGE.__class__(**{**MESSAGE.__dict__, "subject": "[pgbackups] " + "é" * 120})
    AlertChannels(sns=sns, topic_arn=topic).send(long)
    [received] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notification = json.loads(received["Body"])
    assert notification["Message"] == MESSAGE.text
    assert len(notification["Subject"]) == 100 and notification["Subject"].isascii()
