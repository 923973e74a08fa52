"""Small helpers shared by test modules."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import cast

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops.runs import MODEL_INDEX


def create_runs_table(name: str = "runs") -> None:
    """The runs table as stacks/training.py declares it (PK run_id, GSI by model)."""
    boto3.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "run_id", "AttributeType": "S"},
            {"AttributeName": "model_name", "AttributeType": "S"},
            {"AttributeName": "received_at", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": MODEL_INDEX,
                "KeySchema": [
                    {"AttributeName": "model_name", "KeyType": "HASH"},
                    {"AttributeName": "received_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


SAMPLE_EVALUATION = (
    Path(__file__).resolve().parents[1] / "pipelines/samples/credit_risk/evaluation.py"
)


def load_sample_evaluation() -> ModuleType:
    """The sample bundle's evaluation script, imported from its file (it is not a package):
    its `proportions`, `psi` and `baselines_and_drift` are what a baseline means."""
    spec = importlib.util.spec_from_file_location("credit_risk_evaluation", SAMPLE_EVALUATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeContext:
    """The LambdaContext fields powertools' `inject_lambda_context` reads."""

    function_name: str = "function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:ap-northeast-2:123456789012:function:function"
    aws_request_id: str = "req-1"


def lambda_context(name: str = "function") -> LambdaContext:
    return cast(LambdaContext, FakeContext(function_name=name))
