"""Reading template.yaml, the one source of truth for the table, routes and names.

The local stack and the tests build their resources from the template's own
definitions rather than restating them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """Loads CloudFormation short tags (!Ref, !Sub, !GetAtt, …) as {"Fn::X": value}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _tag)


@cache
def _parsed(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        return dict(yaml.load(stream, Loader=_CloudFormationLoader))  # noqa: S506 (a SafeLoader)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as data, short tags in their long form; a copy the caller may change."""
    return copy.deepcopy(_parsed(path))


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Type") == kind
    }


def table_definition(template: dict[str, Any], table_name: str) -> dict[str, Any]:
    """CreateTable arguments from the template's AWS::DynamoDB::Table."""
    (table,) = resources_of_type(template, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    return {
        "TableName": table_name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with {placeholders}, as API Gateway declares it
    function: str  # logical id of the function
    handler: str  # module.function
    authorized: bool


def http_routes(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi event of every function, with whether the authorizer guards it."""
    routes = []
    functions = resources_of_type(template, "AWS::Serverless::Function")
    for logical_id, function in functions.items():
        props = function["Properties"]
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            event_props = event["Properties"]
            auth = (event_props.get("Auth") or {}).get("Authorizer")
            routes.append(
                Route(
                    method=event_props["Method"].upper(),
                    path=event_props["Path"],
                    function=logical_id,
                    handler=props["Handler"],
                    authorized=auth != "NONE",
                )
            )
    return routes


def authorizer_handler(template: dict[str, Any]) -> str:
    """module.function of the HTTP API's Lambda authorizer."""
    (api,) = resources_of_type(template, "AWS::Serverless::HttpApi").values()
    auth = api["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    logical_id = authorizer["FunctionArn"]["Fn::GetAtt"][0]
    return str(template["Resources"][logical_id]["Properties"]["Handler"])
