"""Small helpers shared by test modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import boto3

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
