"""Reading the serving tiers' synthesized templates: shared by the Lambda and EKS stack tests."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template


def imports(value: Any, stack: str, fragment: str, env: str = "dev") -> bool:
    """`value` is an `Fn::ImportValue` of `stack`'s export whose name contains `fragment`."""
    name = value.get("Fn::ImportValue", "") if isinstance(value, dict) else ""
    return name.startswith(f"mlops-{env}-{stack}:") and fragment in name


def applied_manifest(template: Template) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """The objects the cluster resource applies, by kind, each CloudFormation token replaced by
    `${i}` (and returned in order)."""
    (resource,) = template.find_resources("Custom::AWSCDK-EKS-KubernetesResource").values()
    tokens: list[Any] = []
    text = ""
    for part in resource["Properties"]["Manifest"]["Fn::Join"][1]:
        if isinstance(part, str):
            text += part
        else:
            text += f"${{{len(tokens)}}}"
            tokens.append(part)
    return {obj["kind"]: obj for obj in json.loads(text)}, tokens


def assert_app_data_statements(
    by_action: dict[str, Any], models: tuple[str, ...] = ("credit-risk",)
) -> None:
    """What every serving tier's role reads and writes: the served models' champion pointers
    (one ARN each, no wildcard), model archives, the Redis AUTH secret, the data key, the
    prediction-log stream (PutRecordBatch only)."""
    statement = by_action["ssm:GetParameter"]
    resources = statement["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    assert (statement["Action"], statement["Effect"]) == ("ssm:GetParameter", "Allow")
    assert resources == [
        {"Fn::Join": ["", [
            "arn:aws:ssm:ap-northeast-2:", {"Ref": "AWS::AccountId"},
            f":parameter/mlops/dev/champions/{model}",
        ]]}
        for model in sorted(models)
    ]  # fmt: skip
    assert [action for action in by_action if action.startswith("ssm:")] == ["ssm:GetParameter"]
    artifacts = by_action["s3:GetObject"]["Resource"]["Fn::Join"][1]
    assert imports(artifacts[0], "training", "ArtifactsBucket")
    assert artifacts[1] == "/runs/*/model.tar.gz"
    secret = by_action["secretsmanager:GetSecretValue"]["Resource"]
    assert imports(secret, "feature-store", "OnlineAuthToken")
    assert imports(by_action["kms:Decrypt"]["Resource"], "security", "DataKey")
    stream = by_action["firehose:PutRecordBatch"]["Resource"]["Fn::GetAtt"]
    assert stream[0].startswith("PredictionLogStream") and stream[1] == "Arn"
    assert "firehose:PutRecord" not in by_action
