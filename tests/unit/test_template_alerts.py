"""The template's alerts: an SNS topic (email only when AlertEmail is set), the webhook's
URL in a secret only when AlertWebhookUrl is set (never in outputs or the environment),
the dispatcher told where they go and subscribed to the project's health events, and an
alarm that fires when databases fail or the dispatcher stops reporting."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pgbackups.adapters.alerts import check_webhook_url
from pgbackups.usecases.health import HEALTH_EVENTS
from pgbackups_local.template import load_template

pytestmark = pytest.mark.unit

# What the dispatcher may do for alerts, and nothing else may (test_template.py's
# least-privilege test adds it to the dispatcher's actions).
ALERTS: dict[str, list[Any]] = {
    "sns:Publish": [{"Ref": "AlertTopic"}],
    "secretsmanager:GetSecretValue": [
        {
            "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
            ":secret:pgbackups/${Stage}/alert-webhook-??????"
        }
    ],
}


def optional_ref(value: Any) -> Any:
    """`!If [Condition, !Ref X, ""]` → `!Ref X`: a resource the stack creates only when
    its condition holds; any other value unchanged."""
    if isinstance(value, dict) and "Fn::If" in value:
        _, then, otherwise = value["Fn::If"]
        assert otherwise == "", value
        return then
    return value


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_alerts_are_optional_parameters_and_the_webhook_is_never_echoed(
    template: dict[str, Any],
) -> None:
    email, webhook = template["Parameters"]["AlertEmail"], template["Parameters"]["AlertWebhookUrl"]
    assert email["Default"] == webhook["Default"] == ""
    assert webhook["NoEcho"] is True
    pattern = re.compile(webhook["AllowedPattern"])
    for url in ("", "https://hooks.slack.com/services/T0/B0/x"):
        assert pattern.match(url)
    for url in ("http://hooks.example.com/x", "file:///etc/passwd", "https://a b"):
        assert not pattern.match(url)
    # What the template lets through, the dispatcher sends to.
    assert check_webhook_url("https://hooks.slack.com/services/T0/B0/x")
    assert re.match(email["AllowedPattern"], "ops@example.com")
    assert not re.match(email["AllowedPattern"], "not an address")


def test_email_subscription_and_webhook_secret_exist_only_when_asked_for(
    template: dict[str, Any],
) -> None:
    resources, conditions = template["Resources"], template["Conditions"]
    assert conditions["HasAlertEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}
    assert conditions["HasAlertWebhook"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlertWebhookUrl"}, ""]}]
    }
    topic = resources["AlertTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and "Condition" not in topic  # the alarm's too
    subscription = resources["AlertEmailSubscription"]
    assert subscription["Condition"] == "HasAlertEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlertTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlertEmail"},
    }
    secret = resources["AlertWebhookSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Condition"] == "HasAlertWebhook"
    assert secret["Properties"]["SecretString"] == {"Ref": "AlertWebhookUrl"}
    # The name the dispatcher's policy allows (a secret's ARN ends in a random suffix).
    assert secret["Properties"]["Name"] == {"Fn::Sub": "pgbackups/${Stage}/alert-webhook"}


def test_the_webhook_url_appears_nowhere_but_its_secret(template: dict[str, Any]) -> None:
    def references(value: Any, path: str) -> list[str]:
        if isinstance(value, dict):
            if value.get("Ref") == "AlertWebhookUrl":
                return [path]
            if "Fn::Sub" in value and "AlertWebhookUrl" in str(value["Fn::Sub"]):
                return [path]
            return [p for k, v in value.items() for p in references(v, f"{path}.{k}")]
        if isinstance(value, list):
            return [p for i, v in enumerate(value) for p in references(v, f"{path}[{i}]")]
        return []

    assert references(template["Resources"], "Resources") == [
        "Resources.AlertWebhookSecret.Properties.SecretString"
    ]
    assert references(template.get("Outputs", {}), "Outputs") == []
    assert references(template["Globals"], "Globals") == []


def test_only_the_dispatcher_sends_alerts(template: dict[str, Any]) -> None:
    for name, resource in template["Resources"].items():
        text = str(resource.get("Properties", {}).get("Policies", ""))
        text += str(resource.get("Properties", {}).get("Environment", ""))
        if name != "DispatcherFunction":
            assert "AlertTopic" not in text and "alert-webhook" not in text, name
    variables = template["Resources"]["DispatcherFunction"]["Properties"]["Environment"][
        "Variables"
    ]
    assert variables["ALERT_TOPIC_ARN"] == {"Ref": "AlertTopic"}
    assert variables["ALERT_WEBHOOK_SECRET_ARN"] == {
        "Fn::If": ["HasAlertWebhook", {"Ref": "AlertWebhookSecret"}, ""]
    }
    assert variables["DASHBOARD_ADDRESS"] == template["Outputs"]["DashboardUrl"]["Value"]


def test_the_dispatcher_refreshes_health_when_a_run_finishes_or_a_chain_breaks(
    template: dict[str, Any],
) -> None:
    events = template["Resources"]["DispatcherFunction"]["Properties"]["Events"]
    rule = events["HealthEvents"]
    assert rule["Type"] == "EventBridgeRule"
    assert rule["Properties"]["EventBusName"] == {"Ref": "EventBus"}
    assert rule["Properties"]["Pattern"] == {
        "source": ["pgbackups"],
        "detail-type": [
            "Backup Failed",
            "Backup Succeeded",
            "PITR Broken",
            "Restore Failed",
            "Restore Succeeded",
            "Verification Failed",
            "Verification Passed",
        ],
    }
    assert set(rule["Properties"]["Pattern"]["detail-type"]) == HEALTH_EVENTS


def test_the_alarm_fires_on_failing_databases_and_on_a_silent_dispatcher(
    template: dict[str, Any],
) -> None:
    alarm = template["Resources"]["DatabasesFailingAlarm"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    properties = alarm["Properties"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    # As powertools publishes it: the namespace and the `service` dimension.
    assert properties["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert properties["Dimensions"] == [
        {"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}
    ]
    assert properties["MetricName"] == "DatabasesFailing"
    assert properties["TreatMissingData"] == "breaching"
    assert (properties["ComparisonOperator"], properties["Threshold"]) == (
        "GreaterThanThreshold",
        0,
    )
    assert properties["Period"] == 3600  # the dispatcher's rhythm
    assert properties["AlarmActions"] == properties["OKActions"] == [{"Ref": "AlertTopic"}]
