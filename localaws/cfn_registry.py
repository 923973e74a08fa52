"""Make deployed stacks visible through the emulator's CloudFormation API.

The deployer creates resources itself (see `cfn_stack`), so moto's CloudFormation backend
would otherwise know nothing about them. After a deployment, the stack is registered in that
backend so `describe_stacks` (outputs), `list_exports`, `get_template` and
`describe_stack_resources` answer as on AWS, and a later deployment can find it.

This touches moto internals (`Stack.output_map`, `Stack.resource_map._resource_json_map` /
`_parsed_resources`, `CloudFormationBackend.exports`, `Export`); `check_contract()` fails
loudly, naming what changed, if a moto upgrade moves them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from localaws.cfn_stack import StackDeployment
from localaws.patching import MotoContractError


@dataclass(frozen=True)
class _StackResource:
    """What moto's stack-resource responses read from a resource (by getattr)."""

    logical_resource_id: str
    physical_resource_id: str
    cf_resource_type: str


def _backend(account_id: str, region: str) -> Any:
    from moto.backends import get_backend

    return get_backend("cloudformation")[account_id][region]


def check_contract() -> None:
    """Raise `MotoContractError` if the internals used here changed shape."""
    from moto.cloudformation import models, parsing

    missing = [
        f"{owner.__name__}.{name}"
        for owner, name in (
            (models.CloudFormationBackend, "create_stack"),
            (models.Stack, "_create_output_map"),
            (models.Stack, "_add_stack_event"),
            (parsing, "OutputMap"),
            (parsing, "Export"),
            (parsing.ResourceMap, "_delete_resource"),
        )
        if not hasattr(owner, name)
    ]
    probe = parsing.ResourceMap("id", "n", {}, {}, "us-east-1", "1", {"Resources": {}}, {})
    for attribute in ("_resource_json_map", "_parsed_resources", "resolved_parameters"):
        if not hasattr(probe, attribute):
            missing.append(f"ResourceMap.{attribute}")
    if missing:
        raise MotoContractError(
            f"moto's CloudFormation internals changed; missing: {missing}. "
            "localaws.cfn_registry must be adapted to the new moto."
        )


def create_placeholder(name: str, *, account_id: str, region: str) -> str:
    """Register an empty stack (status CREATE_IN_PROGRESS) and return its stack id."""
    stack = _backend(account_id, region).create_stack(
        name=name, template=json.dumps({"Resources": {}}), parameters={}
    )
    stack.status = "CREATE_IN_PROGRESS"
    return str(stack.stack_id)


def complete(
    deployment: StackDeployment,
    *,
    template: dict[str, Any],
    parameters: dict[str, Any],
    account_id: str,
    region: str,
) -> None:
    """Attach the real template, resources, outputs and exports to the registered stack."""
    from moto.cloudformation.parsing import Export, OutputMap

    backend = _backend(account_id, region)
    stack = backend.get_stack(deployment.stack_id)
    stack.template = json.dumps(template)
    stack.template_dict = template
    stack.description = template.get("Description")
    stack.resource_map.resolved_parameters = {k: _text(v) for k, v in parameters.items()}
    stack.resource_map._resource_json_map = {
        logical_id: template["Resources"][logical_id] for logical_id in deployment.resources
    }
    stack.resource_map._parsed_resources.update({
        r.logical_id: _StackResource(r.logical_id, r.physical_id, r.resource_type)
        for r in deployment.resources.values()
    })  # fmt: skip
    export_names = {value: name for name, value in deployment.exports.items()}
    outputs = {
        key: {"Value": _text(value), "Description": template["Outputs"][key].get("Description")}
        | ({"Export": {"Name": export_names[value]}} if value in export_names else {})
        for key, value in deployment.outputs.items()
    }
    stack.output_map = OutputMap(stack.resource_map, {"Outputs": outputs}, stack.stack_id)
    for name, value in deployment.exports.items():
        backend.exports[name] = Export(stack.stack_id, name, _text(value))
    stack.deployment = deployment
    stack.status = "CREATE_COMPLETE"


def mark_failed(stack_id: str, reason: str, *, account_id: str, region: str) -> None:
    stack = _backend(account_id, region).get_stack(stack_id)
    stack.status = "CREATE_FAILED"
    stack._add_stack_event("CREATE_FAILED", resource_status_reason=reason)


def existing(name: str, *, account_id: str, region: str) -> tuple[str, StackDeployment | None]:
    """(status, deployment) of a live stack called `name`; ("", None) when there is none."""
    for stack in _backend(account_id, region).stacks.values():
        if stack.name == name:
            return str(stack.status), getattr(stack, "deployment", None)
    return "", None


def exports(*, account_id: str, region: str) -> dict[str, Any]:
    """Every export registered in the emulator (from this or earlier deployments)."""
    return {name: e.value for name, e in _backend(account_id, region).exports.items()}


def registered_template(name: str, *, account_id: str, region: str) -> dict[str, Any]:
    for stack in _backend(account_id, region).stacks.values():
        if stack.name == name:
            return dict(stack.template_dict)
    raise KeyError(name)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)
