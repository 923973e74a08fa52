"""Create one stack's resources in dependency order, resolving intrinsics as CloudFormation.

The template is walked here rather than handed to moto's CreateStack: moto's parser silently
skips types it does not know and drops properties whose references it cannot resolve, which
would turn a broken deployment into a quietly incomplete one. Creation of each resource is
delegated to `localaws.resources` (engine handler or moto's model for the type).
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from localaws import resources
from localaws.cfn_intrinsics import IntrinsicError, evaluate_condition, references, resolve
from localaws.emulator import Emulator

log = logging.getLogger(__name__)


class TemplateError(RuntimeError):
    """The template cannot be deployed as CloudFormation would deploy it."""


@dataclass(frozen=True)
class DeployedResource:
    """One created resource: `physical_id` is its `Ref` value; `properties` are resolved."""

    logical_id: str
    resource_type: str
    physical_id: str
    properties: Mapping[str, Any]
    recorded: bool = False


@dataclass
class StackDeployment:
    """The result of deploying one stack: outputs, exports and resources by logical id."""

    name: str
    stack_id: str
    outputs: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, DeployedResource] = field(default_factory=dict)

    def physical_id(self, logical_id: str) -> str:
        return self.resources[logical_id].physical_id

    def of_type(self, resource_type: str) -> list[DeployedResource]:
        return [r for r in self.resources.values() if r.resource_type == resource_type]


def resource_order(template: Mapping[str, Any]) -> list[str]:
    """Logical ids so that every resource comes after what it references or DependsOn.

    Ties keep template order, so deployments are reproducible. A cycle is a template error.
    """
    declared = template.get("Resources", {})
    edges: dict[str, set[str]] = {}
    for logical_id, body in declared.items():
        depends = body.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else list(depends)
        found = references(body.get("Properties", {})) | set(depends)
        edges[logical_id] = {name for name in found if name in declared and name != logical_id}
    ordered: list[str] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(logical_id: str) -> None:
        if logical_id in done:
            return
        if logical_id in visiting:
            cycle = visiting[visiting.index(logical_id) :] + [logical_id]
            raise TemplateError(f"circular dependency: {' -> '.join(cycle)}")
        visiting.append(logical_id)
        for dependency in sorted(edges[logical_id], key=list(declared).index):
            visit(dependency)
        visiting.pop()
        done.add(logical_id)
        ordered.append(logical_id)

    for logical_id in declared:
        visit(logical_id)
    return ordered


def generated_name(stack_name: str, logical_id: str, resource_type: str) -> str:
    """The name CloudFormation invents for an unnamed resource: stack-logical-SUFFIX, capped."""
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=12))  # noqa: S311
    limit = 63 if resource_type == "AWS::S3::Bucket" else 64
    prefix = f"{stack_name}-{logical_id}"[: limit - len(suffix) - 1].rstrip("-")
    name = f"{prefix}-{suffix}"
    return name.lower() if resource_type == "AWS::S3::Bucket" else name


class StackDeployer:
    """Deploys one template; implements the resolver's `Scope` for it."""

    def __init__(
        self,
        *,
        name: str,
        stack_id: str,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        exports: Mapping[str, Any],
        emulator: Emulator,
        account_id: str,
        redis_url: str,
    ) -> None:
        self.name, self.stack_id, self.template = name, stack_id, template
        self.emulator, self.account_id, self.redis_url = emulator, account_id, redis_url
        self.region = emulator.region
        self._exports = exports
        self._conditions: dict[str, bool] = {}
        self._created: dict[str, resources.Created] = {}
        self._skipped: set[str] = set()
        self._azs: dict[str, list[str]] = {}
        self._parameters = self._load_parameters(parameters)

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameter values as resolved (SSM-typed parameters read from the emulator)."""
        return dict(self._parameters)

    # -- Scope -------------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.name,
            "AWS::StackId": self.stack_id,
            "AWS::NotificationARNs": [],
        }
        if name in pseudo:
            return pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        return self._resource(name).physical_id

    def get_att(self, logical_id: str, attribute: str) -> Any:
        created = self._resource(logical_id)
        try:
            return created.get_att(attribute)
        except Exception as error:
            resource_type = self.template["Resources"][logical_id]["Type"]
            raise IntrinsicError(
                f"Fn::GetAtt {logical_id}.{attribute}: {resource_type} has no attribute "
                f"{attribute!r} in the emulator ({type(error).__name__})"
            ) from error

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            body = self.template.get("Conditions", {}).get(name)
            if body is None:
                raise IntrinsicError(f"unknown condition {name!r}")
            self._conditions[name] = evaluate_condition(body, self)
        return self._conditions[name]

    def import_value(self, export_name: str) -> Any:
        if export_name not in self._exports:
            raise IntrinsicError(f"Fn::ImportValue: no stack exports {export_name!r}")
        return self._exports[export_name]

    def azs(self, region: str) -> list[str]:
        if region not in self._azs:
            ec2 = boto3.client(
                "ec2",
                region_name=region,
                endpoint_url=self.emulator.endpoint_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - emulator credentials
            )
            zones = ec2.describe_availability_zones()["AvailabilityZones"]
            self._azs[region] = sorted(zone["ZoneName"] for zone in zones)
        return self._azs[region]

    def mapping(self, name: str) -> dict[str, Any]:
        return dict(self.template.get("Mappings", {})[name])

    def _resource(self, logical_id: str) -> resources.Created:
        if logical_id in self._created:
            return self._created[logical_id]
        if logical_id in self._skipped:
            raise IntrinsicError(f"{logical_id} is not created (its condition is false)")
        raise IntrinsicError(f"unresolved reference {logical_id!r} in stack {self.name}")

    # -- deployment --------------------------------------------------------------------------
    def _load_parameters(self, given: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        ssm = None
        for name, spec in self.template.get("Parameters", {}).items():
            value = given.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"{self.name}: parameter {name} has no value and no default")
            kind = str(spec.get("Type", "String"))
            if kind.startswith("AWS::SSM::Parameter::Value"):
                ssm = ssm or self.emulator.client("ssm")
                try:
                    value = ssm.get_parameter(Name=value)["Parameter"]["Value"]
                except ssm.exceptions.ParameterNotFound as error:
                    raise TemplateError(
                        f"{self.name}: parameter {name} reads SSM {value!r}, which does not exist"
                    ) from error
            if kind.startswith("List") or kind == "CommaDelimitedList" or "<List<" in kind:
                value = str(value).split(",")
            values[name] = value
        return values

    def check_rules(self) -> None:
        """Evaluate `Rules` assertions (e.g. CDK's CheckBootstrapVersion) before creating."""
        for rule_name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not evaluate_condition(rule["RuleCondition"], self):
                continue
            for assertion in rule.get("Assertions", []):
                if not evaluate_condition(assertion["Assert"], self):
                    description = assertion.get("AssertDescription", "assertion failed")
                    raise TemplateError(f"{self.name}: rule {rule_name}: {description}")

    def deploy(self) -> StackDeployment:
        self.check_rules()
        result = StackDeployment(name=self.name, stack_id=self.stack_id)
        order = resource_order(self.template)
        log.info("stack %s: creating %d resources", self.name, len(order))
        for logical_id in order:
            body = self.template["Resources"][logical_id]
            if "Condition" in body and not self.condition(body["Condition"]):
                self._skipped.add(logical_id)
                continue
            result.resources[logical_id] = self._create(logical_id, body)
        self._resolve_outputs(result)
        log.info(
            "stack %s: %d resources created, %d skipped by conditions, %d outputs",
            self.name, len(result.resources), len(self._skipped), len(result.outputs),
        )  # fmt: skip
        return result

    def _create(self, logical_id: str, body: Mapping[str, Any]) -> DeployedResource:
        resource_type = str(body["Type"])
        try:
            properties = resolve(body.get("Properties", {}), self) or {}
        except IntrinsicError as error:
            raise TemplateError(f"{self.name}/{logical_id} ({resource_type}): {error}") from error
        context = resources.ResourceContext(
            stack_name=self.name,
            stack_id=self.stack_id,
            logical_id=logical_id,
            resource_type=resource_type,
            properties=properties,
            physical_name=generated_name(self.name, logical_id, resource_type),
            account_id=self.account_id,
            region=self.region,
            emulator=self.emulator,
            redis_url=self.redis_url,
        )
        created = resources.create(context)
        self._created[logical_id] = created
        log.debug("%s/%s (%s) -> %s", self.name, logical_id, resource_type, created.physical_id)
        return DeployedResource(
            logical_id=logical_id,
            resource_type=resource_type,
            physical_id=created.physical_id,
            properties=properties,
            recorded=created.recorded,
        )

    def _resolve_outputs(self, result: StackDeployment) -> None:
        for key, output in self.template.get("Outputs", {}).items():
            if "Condition" in output and not self.condition(output["Condition"]):
                continue
            try:
                value = resolve(output["Value"], self)
                export = output.get("Export")
                export_name = resolve(export["Name"], self) if export else None
            except IntrinsicError as error:
                raise TemplateError(f"{self.name}: output {key}: {error}") from error
            result.outputs[key] = value
            if export_name is not None:
                result.exports[str(export_name)] = value
