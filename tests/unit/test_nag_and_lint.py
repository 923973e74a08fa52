"""Security and template-validity gates over every stack of every environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_s3 as s3

from stacks.platform import apply_nag
from tests.conftest import SynthesizedEnvironment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
ENVIRONMENTS = ("local", "dev", "prod")

# cfn-lint findings accepted, each with the reason. Anything else fails the test.
ACCEPTED_CFN_LINT = {
    # CDK adds an explicit DependsOn from a function or state machine to its execution role
    # next to the GetAtt of the role's ARN; redundant, harmless, and not ours to change.
    ("W3005", "dependency already enforced by a 'GetAtt'"),
    # aws-codedeploy's LambdaDeploymentGroup adds DependsOn on its custom deployment config
    # next to the Ref of the config's name (the serving alias's canary/linear rollout).
    ("W3005", "dependency already enforced by a 'Ref' at 'Resources/LambdaRolloutGroup"),
    # Availability zones are chosen per environment in the typed config (deliberate
    # placement; synthesis needs no EC2 lookup), so templates name them.
    ("W3010", "Avoid hardcoding availability zones"),
}


def _findings(outdir: Path, stack: Any, level: str) -> list[str]:
    """Annotations of one stack, read from the cloud assembly's manifest.json.

    `aws_cdk.assertions.Annotations.find_*` cannot return findings under jsii 1.119 (the
    MetadataEntry type is registered under another name), so the manifest is read directly.
    """
    manifest = json.loads((outdir / "manifest.json").read_text())
    metadata = manifest["artifacts"][stack.artifact_id].get("metadata", {})
    return [
        f"{path}: {entry['data']}"
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == f"aws:cdk:{level}"
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_unsuppressed_nag_errors_or_warnings(synthesized: Synth, env: str) -> None:
    synth = synthesized(env)
    for stack in synth.stacks:
        assert _findings(synth.outdir, stack, "error") == [], stack.stack_name
        assert _findings(synth.outdir, stack, "warning") == [], stack.stack_name


def test_nag_is_active_and_catches_an_insecure_bucket(tmp_path: Path) -> None:
    """Proves the zero-findings test above can fail: the rule pack does run."""
    import aws_cdk as cdk

    app = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path))
    stack = Stack(app, "Insecure")
    s3.Bucket(stack, "Open")
    apply_nag(app)
    app.synth()
    errors = "\n".join(_findings(tmp_path, stack, "error"))
    assert "AwsSolutions-S1" in errors  # no server access logs
    assert "AwsSolutions-S10" in errors  # TLS not enforced


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_templates_pass_cfn_lint(synthesized: Synth, env: str) -> None:
    from cfnlint.api import ManualArgs, lint

    outdir = synthesized(env).outdir
    templates = sorted(Path(outdir).glob("*.template.json"))
    assert len(templates) == len(synthesized(env).stacks)
    problems = []
    for template in templates:
        for match in lint(template.read_text(), config=ManualArgs(regions=["ap-northeast-2"])):
            if not any(
                match.rule.id == rule and marker in str(match.message)
                for rule, marker in ACCEPTED_CFN_LINT
            ):
                problems.append(f"{template.name}: {match.rule.id} {match.message}")
    assert problems == []
