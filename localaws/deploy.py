"""Deploy what `cdk synth` produced into the emulator -- no second definition of the infrastructure.

`deploy_assembly(cdk_out, emulator=...)` takes the cloud assembly directory, emulates
`cdk bootstrap`, publishes the file assets to the bootstrap bucket, and creates every stack in
manifest dependency order, resolving intrinsics (Ref, GetAtt, Sub, Join, Select, Split, If and
Conditions, GetAZs, ImportValue, pseudo parameters) as CloudFormation does. It returns a
`Deployment` with outputs and physical ids per stack; the stacks are also registered in the
emulator's CloudFormation API (`describe_stacks`, `list_exports`, `describe_stack_resources`).

Contract:
- Every template is scanned first. A resource type neither moto nor an engine handler can create
  (see the coverage table in `localaws.resources`), an unsupported intrinsic or a template
  `Transform` stops the deployment before anything is created, naming types and logical ids.
- Deploying an assembly whose stacks already exist with the identical template is a no-op that
  returns the earlier result; a changed template raises `StackExistsError` (updates are not
  emulated: reset the emulator and deploy again).
- Installs `localaws.s3_secure_transport` (idempotent): without it CDK's `enforce_ssl` bucket
  policy makes moto deny every object request to the deployed buckets.
- A failure while creating resources marks the stack CREATE_FAILED and raises; resources already
  created stay (no rollback), which is what a developer debugging a template wants to inspect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localaws import cfn_registry, resources, s3_secure_transport
from localaws.cfn_assembly import (
    StackArtifact,
    bootstrap,
    check_environment,
    deployment_order,
    publish_assets,
    read_stacks,
)
from localaws.cfn_intrinsics import SUPPORTED_FUNCTIONS, functions_used
from localaws.cfn_stack import DeployedResource, StackDeployer, StackDeployment
from localaws.emulator import ACCOUNT_ID, Emulator
from localaws.resources import DEFAULT_REDIS_URL

__all__ = [
    "DeployedResource",
    "Deployment",
    "StackDeployment",
    "StackExistsError",
    "UnsupportedTemplateError",
    "deploy_assembly",
]

log = logging.getLogger(__name__)


class UnsupportedTemplateError(RuntimeError):
    """Templates use types or functions the emulator cannot create; nothing was deployed."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        lines = [f"  {what}: {', '.join(where)}" for what, where in sorted(problems.items())]
        super().__init__(
            "cannot deploy: unsupported by the local engine (nothing was created):\n"
            + "\n".join(lines)
        )


class StackExistsError(RuntimeError):
    """A stack with this name is already deployed with a different template or failed."""


@dataclass
class Deployment:
    """Per-stack results of one `deploy_assembly` call, in deployment order."""

    stacks: dict[str, StackDeployment] = field(default_factory=dict)
    seconds: float = 0.0

    def __getitem__(self, stack_name: str) -> StackDeployment:
        return self.stacks[stack_name]

    def output(self, stack_name: str, key: str) -> str:
        return str(self.stacks[stack_name].outputs[key])

    def resources_of_type(self, resource_type: str) -> list[DeployedResource]:
        return [r for s in self.stacks.values() for r in s.of_type(resource_type)]


def deploy_assembly(
    assembly_dir: Path,
    *,
    emulator: Emulator,
    redis_url: str = DEFAULT_REDIS_URL,
    stacks: Sequence[str] | None = None,
) -> Deployment:
    """Deploy the stacks of a synthesized cloud assembly (all, or `stacks` + dependencies)."""
    started = time.perf_counter()
    ordered = deployment_order(read_stacks(Path(assembly_dir)), stacks)
    templates = {stack.artifact_id: stack.template() for stack in ordered}
    for stack in ordered:
        check_environment(stack, account_id=ACCOUNT_ID, region=emulator.region)
    scan_templates({stack.stack_name: templates[stack.artifact_id] for stack in ordered})
    cfn_registry.check_contract()
    s3_secure_transport.install()

    deployment = Deployment()
    for qualifier in sorted({stack.qualifier for stack in ordered}):
        bootstrap(emulator, account_id=ACCOUNT_ID, qualifier=qualifier)
    for stack in ordered:
        template = templates[stack.artifact_id]
        deployment.stacks[stack.stack_name] = _deploy_stack(
            stack, template, emulator=emulator, redis_url=redis_url
        )
    deployment.seconds = time.perf_counter() - started
    log.info("deployed %d stacks in %.2f s", len(deployment.stacks), deployment.seconds)
    return deployment


def scan_templates(templates: dict[str, dict[str, object]]) -> None:
    """Raise `UnsupportedTemplateError` listing every unsupported type/function by location."""
    problems: dict[str, list[str]] = {}
    for stack_name, template in templates.items():
        if "Transform" in template:
            problems.setdefault(f"Transform {template['Transform']}", []).append(stack_name)
        body = template.get("Resources")
        for logical_id, resource in (body if isinstance(body, dict) else {}).items():
            where = f"{stack_name}/{logical_id}"
            resource_type = str(resource.get("Type"))
            if not resources.is_supported(resource_type):
                problems.setdefault(resource_type, []).append(where)
            for function in set(functions_used(resource.get("Properties", {}))):
                if function not in SUPPORTED_FUNCTIONS:
                    problems.setdefault(function, []).append(where)
    if problems:
        raise UnsupportedTemplateError(problems)


def _deploy_stack(
    stack: StackArtifact, template: dict[str, object], *, emulator: Emulator, redis_url: str
) -> StackDeployment:
    region = emulator.region
    status, previous = cfn_registry.existing(stack.stack_name, account_id=ACCOUNT_ID, region=region)
    if status:
        return _unchanged(stack, template, status, previous, region=region)
    published = sum(
        publish_assets(manifest, emulator, account_id=ACCOUNT_ID)
        for manifest in stack.asset_manifests
    )
    log.info("stack %s: published %d asset objects", stack.stack_name, published)
    stack_id = cfn_registry.create_placeholder(
        stack.stack_name, account_id=ACCOUNT_ID, region=region
    )
    deployer = StackDeployer(
        name=stack.stack_name,
        stack_id=stack_id,
        template=template,
        parameters=stack.parameters,
        exports=cfn_registry.exports(account_id=ACCOUNT_ID, region=region),
        emulator=emulator,
        account_id=ACCOUNT_ID,
        redis_url=redis_url,
    )
    try:
        result = deployer.deploy()
    except Exception as error:
        cfn_registry.mark_failed(stack_id, str(error), account_id=ACCOUNT_ID, region=region)
        raise
    cfn_registry.complete(
        result,
        template=template,
        parameters=deployer.parameters,
        account_id=ACCOUNT_ID,
        region=region,
    )
    return result


def _unchanged(
    stack: StackArtifact,
    template: dict[str, object],
    status: str,
    previous: StackDeployment | None,
    *,
    region: str,
) -> StackDeployment:
    registered = cfn_registry.registered_template(
        stack.stack_name, account_id=ACCOUNT_ID, region=region
    )
    if status != "CREATE_COMPLETE" or previous is None:
        raise StackExistsError(
            f"stack {stack.stack_name} exists with status {status}; reset the emulator first"
        )
    if registered != template:
        raise StackExistsError(
            f"stack {stack.stack_name} is already deployed with a different template; the "
            "local engine does not emulate stack updates: reset the emulator and deploy again"
        )
    log.info("stack %s: unchanged, already deployed", stack.stack_name)
    return previous
