"""What `python -m mlops.localstack deploy` created, against the adapted templates it deployed."""

from __future__ import annotations

import json

import pytest

from mlops.localstack.tiers import SERVICES, Tier, service_of
from tests.localstack.conftest import TIER_ORDER, Deployed

pytestmark = pytest.mark.localstack


def _template(deployed: Deployed, stack: str) -> dict[str, object]:
    described = deployed.client("cloudformation").get_template(StackName=stack)
    body = described["TemplateBody"]
    return body if isinstance(body, dict) else json.loads(body)


def test_every_selected_stack_is_deployed(localstack: Deployed) -> None:
    cloudformation = localstack.client("cloudformation")
    assert len(localstack.report.stacks) == 7
    for stack in localstack.report.stacks:
        status = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        assert status in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}, (stack, status)


def test_each_kept_resource_exists_and_no_left_out_one_does(localstack: Deployed) -> None:
    cloudformation = localstack.client("cloudformation")
    left_out = {(c.stack, c.logical_id) for c in localstack.report.left_out()}
    for stack in localstack.report.stacks:
        paginator = cloudformation.get_paginator("list_stack_resources")
        deployed = {
            r["LogicalResourceId"]: r["ResourceStatus"]
            for page in paginator.paginate(StackName=stack)
            for r in page["StackResourceSummaries"]
        }
        template = _template(localstack, stack)
        resources: dict[str, dict[str, str]] = template["Resources"]  # type: ignore[assignment]
        for logical_id, resource in resources.items():
            assert service_of(resource["Type"]) in SERVICES[localstack.target.tier]
            assert deployed.get(logical_id, "").endswith("_COMPLETE"), (stack, logical_id)
        assert not {lid for s, lid in left_out if s == stack} & set(deployed)


def test_the_report_lists_what_the_tier_cannot_create(localstack: Deployed) -> None:
    left_out = {c.resource_type for c in localstack.report.left_out()}
    tier = localstack.target.tier
    if tier is Tier.ULTIMATE:
        assert left_out == set()
        return
    assert {"AWS::SageMaker::ModelPackageGroup", "AWS::Glue::Database"} <= left_out
    if tier is Tier.CORE:
        assert {"AWS::Lambda::Function", "AWS::DynamoDB::Table"} <= left_out
    text = localstack.report.text()
    assert all(change.logical_id in text for change in localstack.report.changes)


def test_below_base_the_online_store_is_the_compose_redis(localstack: Deployed) -> None:
    outputs = localstack.outputs("mlops-local-feature-store")
    if TIER_ORDER.index(localstack.target.tier) >= TIER_ORDER.index(Tier.BASE):
        assert outputs["RedisEndpointAddress"] != "redis"
    else:
        assert (outputs["RedisEndpointAddress"], outputs["RedisEndpointPort"]) == ("redis", "6379")
