"""Rewrite a synthesized cloud assembly so one LocalStack tier can deploy it, and say how.

Every resource of a service the tier lacks is *left out*; what referenced it gets a stand-in
value (a placeholder name or ARN, or for ElastiCache the compose file's Redis), and resources
still pointing at a left-out one are listed as *dangling*. Where a feature is swapped rather
than dropped, it is *replaced*:

* ElastiCache -> the compose file's Redis: functions get ``MLOPS_SERVING_REDIS_URL`` instead of
  the ElastiCache host, port, TLS flag and AUTH secret (the compose Redis has neither);
* SageMaker ``.sync`` tasks -> request-response tasks answered by the Step Functions mock
  configuration (:mod:`mlops.localstack.mocks`): LocalStack refuses ``.sync`` for services it
  does not emulate, mocked or not, before reading the mock;
* the trigger's state machine ARN gets ``#<test case>``, so the executions it starts run
  against the mock configuration.

The source assembly is never modified; the adapted copy deploys with ``cdk deploy --app DIR``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.localstack.tiers import SERVICES, Tier, minimum_tier, service_of

REDIS_ATTRIBUTES = {"PrimaryEndPoint.Address", "PrimaryEndPoint.Port"}
REDIS_VARIABLES = ("_REDIS_HOST", "_REDIS_PORT", "_REDIS_TLS", "_REDIS_SECRET_ARN")
# The resource part of a stand-in ARN, per service (readers such as the Step Functions
# definition parser recognise a Lambda task by its ARN's shape).
_ARN_PATHS = {
    "lambda": "function:{name}",
    "dynamodb": "table/{name}",
    "firehose": "deliverystream/{name}",
}
# Types whose Ref is an ARN rather than a name.
_REF_IS_ARN = {"AWS::Lambda::Alias", "AWS::Lambda::Version", "AWS::SNS::Topic"}
SYNC_TASK = re.compile(r"(arn:aws:states:::sagemaker:[A-Za-z]+)\.sync")


@dataclass(frozen=True)
class Change:
    stack: str
    logical_id: str
    resource_type: str
    action: str  # "left out" | "replaced" | "dangling"
    detail: str

    def line(self) -> str:
        where = f"{self.stack}/{self.logical_id} ({self.resource_type})"
        return f"{self.action:<9} {where}: {self.detail}"


@dataclass
class Options:
    tier: Tier
    redis_url: str = "redis://redis:6379/0"
    mock_case: str | None = "HappyPath"


@dataclass
class Report:
    tier: Tier
    changes: list[Change] = field(default_factory=list)
    stacks: list[str] = field(default_factory=list)

    def left_out(self) -> list[Change]:
        return [c for c in self.changes if c.action == "left out"]

    def text(self) -> str:
        lines = [f"LocalStack tier {self.tier.value}: deploying {', '.join(self.stacks)}"]
        lines += [f"  {change.line()}" for change in self.changes]
        if not self.changes:
            lines.append("  every resource is created as synthesized")
        return "\n".join(lines)


def _map(value: Any, leaf: Callable[[Any], Any | None]) -> Any:
    """Rebuild a JSON value bottom-up; `leaf` may replace any node (None keeps it)."""
    replaced = leaf(value)
    if replaced is not None:
        return replaced
    if isinstance(value, dict):
        return {k: _map(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_map(v, leaf) for v in value]
    return value


def _references(value: Any) -> set[str]:
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"Ref"} and isinstance(node["Ref"], str):
                found.add(node["Ref"])
            elif set(node) == {"Fn::GetAtt"}:
                target = node["Fn::GetAtt"]
                found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
            elif set(node) == {"Fn::Sub"}:
                text = node["Fn::Sub"][0] if isinstance(node["Fn::Sub"], list) else node["Fn::Sub"]
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(value)
    return found


def _resolved(value: str) -> Any:
    """A stand-in as a template value: text with ``${AWS::...}`` goes through ``Fn::Sub``."""
    return {"Fn::Sub": value} if "${" in value else value


class _TemplateAdapter:
    def __init__(self, stack: str, template: dict[str, Any], options: Options) -> None:
        self.stack = stack
        # Other stacks' exports of a left-out Redis endpoint; set before adapt().
        self.redis_exports: frozenset[str] = frozenset()
        self.template = template
        self.options = options
        self.changes: list[Change] = []
        resources: dict[str, Any] = template.get("Resources", {})
        allowed = SERVICES[options.tier]
        self.removed = {
            lid: res for lid, res in resources.items() if service_of(res["Type"]) not in allowed
        }
        self.redis_groups = {
            lid for lid, res in self.removed.items()
            if res["Type"] == "AWS::ElastiCache::ReplicationGroup"
        }  # fmt: skip

    def exported_redis(self) -> set[str]:
        """Names of this template's exports whose value is a left-out Redis group's attribute."""
        return {
            output["Export"]["Name"]
            for output in self.template.get("Outputs", {}).values()
            if isinstance(output.get("Export", {}).get("Name"), str)
            and _references(output.get("Value")) & self.redis_groups
        }

    def _imports_redis(self, res: dict[str, Any]) -> bool:
        found: list[bool] = []

        def visit(node: Any) -> Any | None:
            if isinstance(node, dict) and node.get("Fn::ImportValue") in self.redis_exports:
                found.append(True)
            return None

        _map(res.get("Properties", {}), visit)
        return bool(found)

    def _stand_in(self, target: str, attribute: str | None) -> str:
        """A placeholder of the shape the reader expects: a valid ARN of the left-out resource's
        kind (``${AWS::Region}`` etc. resolve, as the value is used inside ``Fn::Sub``)."""
        if attribute in REDIS_ATTRIBUTES and target in self.redis_groups:
            host_port = self.options.redis_url.split("//", 1)[1].split("/", 1)[0]
            host, _, port = host_port.rpartition("@")[2].partition(":")
            return host if attribute.endswith("Address") else (port or "6379")
        service = service_of(self.removed[target]["Type"])
        name = f"left-out-{target}".lower()
        if attribute is None and self.removed[target]["Type"] in _REF_IS_ARN:
            attribute = "Arn"
        if attribute == "Arn" or (attribute or "").endswith("Arn"):
            path = _ARN_PATHS.get(service, "left-out/{name}").format(name=name)
            return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{path}"
        return name + (f"-{attribute}".lower() if attribute else "")

    def _replace_reference(self, node: Any) -> Any | None:
        if not isinstance(node, dict) or len(node) != 1:
            return None
        if "Ref" in node and node["Ref"] in self.removed:
            return _resolved(self._stand_in(node["Ref"], None))
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            name, attribute = target if isinstance(target, list) else target.split(".", 1)
            if name in self.removed:
                return _resolved(self._stand_in(name, attribute))
        if "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            text, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, None)

            def substitute(match: re.Match[str]) -> str:
                name, _, attribute = match.group(1).partition(".")
                if name in self.removed:
                    return self._stand_in(name, attribute or None)
                return match.group(0)

            new_text = re.sub(r"\$\{([^}!]+)\}", substitute, text)
            if variables is not None:
                return {"Fn::Sub": [new_text, _map(variables, self._replace_reference)]}
            if new_text != text:
                return {"Fn::Sub": new_text}
        return None

    def adapt(self) -> list[Change]:
        resources: dict[str, Any] = self.template.get("Resources", {})
        for lid, res in self.removed.items():
            service = service_of(res["Type"])
            tier = minimum_tier(service)
            where = f"needs the {tier.value} tier" if tier else "no LocalStack tier creates it"
            detail = (
                f"left out ({service} {where}); functions use {self.options.redis_url}"
                if lid in self.redis_groups
                else f"{service} {where}"
            )
            action = "replaced" if lid in self.redis_groups else "left out"
            self.changes.append(Change(self.stack, lid, res["Type"], action, detail))
            del resources[lid]
        for lid, res in resources.items():
            dangling = sorted(_references(res.get("Properties", {})) & set(self.removed))
            if dangling and not set(dangling) <= self.redis_groups:
                self.changes.append(Change(
                    self.stack, lid, res["Type"], "dangling",
                    f"kept; refers to left-out {', '.join(dangling)} through a stand-in value",
                ))  # fmt: skip
            if "DependsOn" in res:
                depends = res["DependsOn"]
                depends = [depends] if isinstance(depends, str) else depends
                res["DependsOn"] = [d for d in depends if d not in self.removed]
                if not res["DependsOn"]:
                    del res["DependsOn"]
            if (dangling and self.redis_groups & set(dangling)) or self._imports_redis(res):
                self._use_compose_redis(lid, res)
            self._drop_update_policies(lid, res)
            for key in ("Properties", "Metadata"):
                if key in res:
                    res[key] = _map(res[key], self._replace_reference)
            self._mock_sync_tasks(lid, res)
        self.template["Outputs"] = _map(self.template.get("Outputs", {}), self._replace_reference)
        return self.changes

    def _drop_update_policies(self, lid: str, res: dict[str, Any]) -> None:
        """An update policy naming a left-out resource (the alias's CodeDeploy canary) cannot
        be kept with a stand-in: CloudFormation would drive a deployment group that is absent."""
        policies: dict[str, Any] = res.get("UpdatePolicy", {})
        for name in [n for n, p in policies.items() if _references(p) & set(self.removed)]:
            gone = ", ".join(sorted(_references(policies.pop(name)) & set(self.removed)))
            self.changes.append(Change(
                self.stack, lid, res["Type"], "replaced",
                f"UpdatePolicy {name} dropped (refers to left-out {gone}): updates apply at once",
            ))  # fmt: skip
        if "UpdatePolicy" in res and not policies:
            del res["UpdatePolicy"]

    def _use_compose_redis(self, lid: str, res: dict[str, Any]) -> None:
        variables = res.get("Properties", {}).get("Environment", {}).get("Variables")
        if not variables:
            return
        names = [n for n in variables if n.endswith(REDIS_VARIABLES)]
        prefixes = {n[: n.index("_REDIS_")] for n in names}
        for name in names:
            del variables[name]
        for prefix in prefixes:
            variables[f"{prefix}_REDIS_URL"] = self.options.redis_url
        if names:
            urls = ", ".join(f"{p}_REDIS_URL" for p in sorted(prefixes))
            self.changes.append(Change(
                self.stack, lid, res["Type"], "replaced",
                f"{', '.join(sorted(names))} -> {urls}={self.options.redis_url}",
            ))  # fmt: skip

    def _mock_sync_tasks(self, lid: str, res: dict[str, Any]) -> None:
        if res["Type"] != "AWS::StepFunctions::StateMachine":
            return
        if "sagemaker" in SERVICES[self.options.tier]:
            return
        found: list[str] = []

        def strip_sync(node: Any) -> Any | None:
            if isinstance(node, str) and SYNC_TASK.search(node):
                found.extend(SYNC_TASK.findall(node))
                return SYNC_TASK.sub(r"\1", node)
            return None

        props = res["Properties"]
        for key in ("DefinitionString", "Definition"):
            if key in props:
                props[key] = _map(props[key], strip_sync)
        if found:
            actions = sorted({f.rsplit(":", 1)[1] for f in found})
            self.changes.append(Change(
                self.stack, lid, res["Type"], "replaced",
                f"{len(found)} SageMaker .sync tasks ({', '.join(actions)}) -> request-response "
                "tasks answered by the Step Functions mock configuration",
            ))  # fmt: skip


def _mock_trigger(stack: str, template: dict[str, Any], case: str) -> list[Change]:
    """Functions with STATE_MACHINE_ARN start their executions on test case `case`."""
    changes = []
    for lid, res in template.get("Resources", {}).items():
        variables = res.get("Properties", {}).get("Environment", {}).get("Variables", {})
        if res["Type"] == "AWS::Lambda::Function" and "STATE_MACHINE_ARN" in variables:
            variables["STATE_MACHINE_ARN"] = {
                "Fn::Join": ["", [variables["STATE_MACHINE_ARN"], f"#{case}"]]
            }
            changes.append(Change(
                stack, lid, res["Type"], "replaced",
                f"starts executions on test case #{case} of the mock configuration",
            ))  # fmt: skip
    return changes


def adapt_assembly(source: Path, target: Path, options: Options) -> Report:
    """Copy the assembly `source` to `target`, adapted for `options.tier`."""
    if not (source / "manifest.json").is_file():
        raise FileNotFoundError(f"{source} is not a cloud assembly (no manifest.json)")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    report = Report(tier=options.tier)
    stacks = {
        name: artifact for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }  # fmt: skip
    texts = {
        name: (target / artifact["properties"]["templateFile"]).read_text()
        for name, artifact in stacks.items()
    }
    adapters = {
        name: _TemplateAdapter(name, json.loads(text), options) for name, text in texts.items()
    }
    # A stack's functions may read the Redis endpoint another stack exports.
    redis_exports = frozenset().union(*(a.exported_redis() for a in adapters.values()))
    for name, artifact in stacks.items():
        report.stacks.append(name)
        path = target / artifact["properties"]["templateFile"]
        path_text = texts[name]
        adapter = adapters[name]
        adapter.redis_exports = redis_exports
        template = adapter.template
        report.changes += adapter.adapt()
        if options.mock_case and "sagemaker" not in SERVICES[options.tier]:
            report.changes += _mock_trigger(name, template, options.mock_case)
        if template == json.loads(path_text):
            continue  # as synthesized: same file, same asset hash
        text = json.dumps(template, indent=1, ensure_ascii=False)
        path.write_text(text)
        _rehash_template(target, artifact, old=_sha256(path_text), new=_sha256(text))
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return report


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rehash_template(assembly: Path, artifact: dict[str, Any], *, old: str, new: str) -> None:
    """Give the rewritten template its own asset hash. The CLI uploads a template under its
    hash and skips the upload when that object exists: under the synthesized template's hash,
    a redeploy after a change to this adaptation would deploy the previous rewrite."""
    props = artifact["properties"]
    url = props.get("stackTemplateAssetObjectUrl")
    if url:
        props["stackTemplateAssetObjectUrl"] = url.replace(old, new)
    for dependency in artifact.get("dependencies", []):
        path = assembly / f"{dependency}.json"
        if dependency.endswith(".assets") and path.is_file():
            path.write_text(path.read_text().replace(old, new))
