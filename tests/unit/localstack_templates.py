"""Reading adapted cloud assemblies: shared by the LocalStack adaptation tests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.localstack.adapt import Options, Report, adapt_assembly
from mlops.localstack.tiers import SERVICES, Tier, service_of
from tests.conftest import SynthesizedEnvironment

Synth = Callable[[str], SynthesizedEnvironment]
Json = dict[str, Any]

SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
LAMBDA_STAND_IN = re.compile(
    r"arn:\$\{AWS::Partition\}:lambda:\$\{AWS::Region\}:\$\{AWS::AccountId\}"
    r":function:left-out-[a-z0-9-]+"
)


def adapt(synthesized: Synth, target: Path, tier: Tier, **options: Any) -> Report:
    return adapt_assembly(synthesized("local").outdir, target, Options(tier=tier, **options))


def stacks(assembly: Path) -> dict[str, Json]:
    """Stack name -> its artifact in the assembly's manifest."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    return {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


def template(assembly: Path, stack: str) -> Json:
    path = assembly / stacks(assembly)[stack]["properties"]["templateFile"]
    template: Json = json.loads(path.read_text())
    return template


def stack_name(synthesized: Synth, suffix: str) -> str:
    name: str = synthesized("local").stack(suffix).stack_name
    return name


def references(node: Any) -> set[str]:
    """Names a value reaches through Ref, Fn::GetAtt and ``${X}`` in Fn::Sub (not the names
    Fn::Sub's own variable map defines, nor pseudo parameters such as ``AWS::Region``)."""
    found: set[str] = set()
    if isinstance(node, dict):
        if len(node) == 1 and isinstance(node.get("Ref"), str):
            found.add(node["Ref"])
        if len(node) == 1 and "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else target.split(".", 1)[0])
        if len(node) == 1 and "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
            names = {match.split(".", 1)[0] for match in SUB_VARIABLE.findall(text)}
            found |= names - set(variables)
        for child in node.values():
            found |= references(child)
    elif isinstance(node, list):
        for child in node:
            found |= references(child)
    return {name for name in found if not name.startswith("AWS::")}


def missing_targets(template: Json) -> dict[str, set[str]]:
    """Resource or output -> names it references that the template does not define (every
    resource attribute but DependsOn, which has its own test)."""
    defined = set(template["Resources"]) | set(template.get("Parameters", {}))
    missing: dict[str, set[str]] = {}
    for lid, resource in template["Resources"].items():
        walked = {k: v for k, v in resource.items() if k != "DependsOn"}
        if unknown := references(walked) - defined:
            missing[lid] = unknown
    for name, output in template.get("Outputs", {}).items():
        if unknown := references(output) - defined:
            missing[f"Outputs.{name}"] = unknown
    return missing


def removed_by_report(report: Report, tier: Tier) -> set[tuple[str, str]]:
    """Left out, or replaced by something outside the stack (the ElastiCache group)."""
    return {
        (change.stack, change.logical_id)
        for change in report.changes
        if change.action == "left out"
        or (change.action == "replaced" and service_of(change.resource_type) not in SERVICES[tier])
    }


def definition(state_machine: Json) -> tuple[Json, list[Any]]:
    """A DefinitionString (Fn::Join) as ASL, each non-text part as the marker ``@<index>``."""
    separator, parts = state_machine["Properties"]["DefinitionString"]["Fn::Join"]
    tokens = [part for part in parts if not isinstance(part, str)]
    marked = (part if isinstance(part, str) else f"@{tokens.index(part)}" for part in parts)
    definition: Json = json.loads(separator.join(marked))
    return definition, tokens


def of_type(template: Json, resource_type: str) -> dict[str, Json]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}
