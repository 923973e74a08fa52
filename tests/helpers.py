"""Small helpers shared by test modules."""

from __future__ import annotations

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
