from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template

from stacks.constructs.python_function import (
    LambdaBundlingError,
    LambdaSource,
    PythonFunction,
    bundle_hash,
)

pytestmark = pytest.mark.unit
PROBE = LambdaSource(
    handler="tests.fixtures.lambda_probe.handler.handler",
    include=("tests/fixtures/lambda_probe",),
    requirements="tests/fixtures/lambda_probe/requirements.txt",
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"include": ("/etc",)}, "must be repo-relative"),
        ({"include": ("../outside",)}, "must be repo-relative"),
        ({"include": ("lambdas/nope",)}, "does not exist"),
        ({"include": ("mlops",)}, "is not inside any included path"),
        ({"requirements": "nope.txt"}, "does not exist"),
    ],
)
def test_source_is_validated(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "handler": PROBE.handler, "include": PROBE.include, "requirements": None, **kwargs,
    }  # fmt: skip
    with pytest.raises(LambdaBundlingError, match=message):
        LambdaSource(**fields)  # type: ignore[arg-type]


def test_hash_depends_only_on_the_inputs() -> None:
    first = bundle_hash(PROBE, "3.14", "vendored")
    assert first == bundle_hash(PROBE, "3.14", "vendored")
    assert first != bundle_hash(PROBE, "3.13", "vendored")
    assert first != bundle_hash(PROBE, "3.14", "provided")


def test_hash_changes_with_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stacks.constructs.python_function as module

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "handler.py").write_text("def handler(e, c): return 1\n")
    monkeypatch.setattr(module, "REPO_ROOT", tmp_path)
    source = LambdaSource(handler="pkg.handler.handler", include=("pkg",))
    before = bundle_hash(source, "3.14", "provided")
    (tmp_path / "pkg" / "handler.py").write_text("def handler(e, c): return 2\n")
    assert bundle_hash(source, "3.14", "provided") != before


def test_function_gets_the_platform_defaults() -> None:
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Test")
    PythonFunction(
        stack, "Probe", source=PROBE, python_version="3.14", dependencies="vendored",
        log_retention_days=30, log_key=kms.Key(stack, "Key"), description="probe",
        environment={"STAGE": "test"},
    )  # fmt: skip
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Handler": "tests.fixtures.lambda_probe.handler.handler",
            "Architectures": ["x86_64"],
            "TracingConfig": {"Mode": "Active"},
            "Environment": {"Variables": {"STAGE": "test"}},
            "LoggingConfig": {"LogGroup": Match.any_value()},
            "Timeout": 30,
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": 30, "KmsKeyId": Match.any_value()}
    )
