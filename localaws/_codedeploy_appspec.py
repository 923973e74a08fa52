"""The Lambda AppSpec of a CodeDeploy revision, checked against the emulated function.

A Lambda AppSpec (JSON or YAML) names one `AWS::Lambda::Function` resource with `Name`, `Alias`,
`CurrentVersion` and `TargetVersion`. Problems become `DeploymentError`s carrying the
ErrorInformation code the deployment fails with (see `localaws.codedeploy`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

_KEYS = ("Name", "Alias", "CurrentVersion", "TargetVersion")


class DeploymentError(Exception):
    """The deployment fails; `code` is a CodeDeploy ErrorInformation code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class LambdaTarget:
    """The one Lambda resource of a Lambda AppSpec."""

    function: str
    alias: str
    current: str
    target: str


def appspec_text(revision: Mapping[str, Any]) -> str:
    kind = revision.get("revisionType")
    if kind in ("AppSpecContent", "String"):
        section = revision.get("appSpecContent" if kind == "AppSpecContent" else "string")
        return str((section or {}).get("content") or "")
    raise DeploymentError(
        "INVALID_REVISION",
        f"revisionType {kind} is not emulated for Lambda deployments by the local engine: "
        "use AppSpecContent or String",
    )


def parse_appspec(revision: Mapping[str, Any]) -> LambdaTarget:
    """The Lambda resource of the revision's AppSpec, or `DeploymentError`."""
    try:
        spec = yaml.safe_load(appspec_text(revision))  # a JSON AppSpec is YAML too
    except yaml.YAMLError as error:
        message = f"The AppSpec is not valid JSON or YAML: {error}"
        raise DeploymentError("INVALID_REVISION", message) from None
    resources = spec.get("Resources") if isinstance(spec, dict) else None
    entry = resources[0] if isinstance(resources, list) and len(resources) == 1 else None
    if not isinstance(entry, dict) or len(entry) != 1:
        message = "The AppSpec needs Resources: a list with exactly one Lambda function"
        raise DeploymentError("INVALID_REVISION", message)
    ((name, resource),) = entry.items()
    if not isinstance(resource, dict) or resource.get("Type") != "AWS::Lambda::Function":
        message = f"The AppSpec resource {name} is not of Type AWS::Lambda::Function"
        raise DeploymentError("INVALID_REVISION", message)
    props = resource.get("Properties") or {}
    missing = [key for key in _KEYS if props.get(key) in (None, "")]
    if missing:
        message = f"The AppSpec resource {name} lacks Properties: {', '.join(missing)}"
        raise DeploymentError("INVALID_REVISION", message)
    if spec.get("Hooks"):
        message = "AppSpec Hooks are not emulated by the local engine"
        raise DeploymentError("HOOK_EXECUTION_FAILURE", message)
    return LambdaTarget(*(str(props[key]) for key in _KEYS))


def check_lambda(backend: Any, target: LambdaTarget) -> None:
    """`DeploymentError` unless the function, its versions and the alias are as the AppSpec says.

    `backend` is moto's Lambda backend of the deployment's account and region.
    """
    from moto.awslambda.exceptions import UnknownAliasException, UnknownFunctionException

    function = target.function
    try:
        backend.get_function(function, None)
    except UnknownFunctionException:
        message = f"The Lambda function {function} does not exist."
        raise DeploymentError("INVALID_LAMBDA_FUNCTION", message) from None
    for version in (target.current, target.target):
        try:
            backend.get_function(function, version)
        except UnknownFunctionException:
            message = f"Version {version} of the Lambda function {function} does not exist."
            raise DeploymentError("INVALID_LAMBDA_CONFIGURATION", message) from None
    try:
        alias = backend.get_alias(target.alias, function)
    except UnknownAliasException:
        message = f"The alias {target.alias} of the Lambda function {function} does not exist."
        raise DeploymentError("INVALID_LAMBDA_CONFIGURATION", message) from None
    if str(alias.function_version) != target.current:
        message = (
            f"The alias {target.alias} points to version {alias.function_version}, "
            f"not to the AppSpec's CurrentVersion {target.current}."
        )
        raise DeploymentError("INVALID_LAMBDA_CONFIGURATION", message)


def rollback_revision(target: LambdaTarget) -> dict[str, Any]:
    """A revision whose AppSpec moves the alias from the target version back to the current."""
    props = {"Name": target.function, "Alias": target.alias,
             "CurrentVersion": target.target, "TargetVersion": target.current}  # fmt: skip
    resource = {"Type": "AWS::Lambda::Function", "Properties": props}
    spec = {"version": 0.0, "Resources": [{target.function: resource}]}
    return {"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(spec)}}
