"""The local stack resolves the template's alert settings as CloudFormation would: the
webhook's secret only when AlertWebhookUrl is given, the dashboard link to its gateway."""

from __future__ import annotations

import pytest

from pgbackups_local.stack import TemplateValues
from pgbackups_local.template import load_template

pytestmark = pytest.mark.unit


def dispatcher_variable(values: TemplateValues, name: str) -> str:
    template = load_template()
    variables = template["Resources"]["DispatcherFunction"]["Properties"]["Environment"]
    return values.resolve(variables["Variables"][name])


def test_the_webhook_secret_is_referenced_only_when_a_url_is_given() -> None:
    template = load_template()
    without = TemplateValues(template, "eu-west-1")
    assert without.condition("HasAlertWebhook") is False
    assert dispatcher_variable(without, "ALERT_WEBHOOK_SECRET_ARN") == ""

    given = TemplateValues(template, "eu-west-1", {"AlertWebhookUrl": "http://127.0.0.1:9/h"})
    given.set_ref("AlertWebhookSecret", "arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf")
    assert given.condition("HasAlertWebhook") is True
    assert given.condition("HasAlertEmail") is False
    assert dispatcher_variable(given, "ALERT_WEBHOOK_SECRET_ARN").endswith(":secret:x-AbCdEf")


def test_the_dashboard_link_is_the_local_gateway() -> None:
    values = TemplateValues(load_template(), "eu-west-1")
    values.api_url = "http://127.0.0.1:3000"
    assert dispatcher_variable(values, "DASHBOARD_ADDRESS") == "http://127.0.0.1:3000/"
