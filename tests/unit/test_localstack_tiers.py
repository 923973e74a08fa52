"""The LocalStack adaptation tier by tier: ultimate, hobby/base, core."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.localstack.adapt import Options, adapt_assembly
from mlops.localstack.tiers import Tier
from tests.unit import localstack_templates as lt
from tests.unit.localstack_templates import LAMBDA_STAND_IN, Json, Synth

pytestmark = pytest.mark.unit


# -- ultimate ----------------------------------------------------------------------------------


def test_ultimate_creates_every_resource_as_synthesized(synthesized: Synth, tmp_path: Path) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", Tier.ULTIMATE)
    assert report.left_out() == []
    assert not [c for c in report.changes if ".sync" in c.detail]
    assert report.changes == []
    assert report.text().splitlines()[1:] == ["  every resource is created as synthesized"]
    machines = 0
    for stack in report.stacks:
        template = lt.template(tmp_path / "out", stack)
        for machine in lt.of_type(template, "AWS::StepFunctions::StateMachine").values():
            machines += 1
            assert ".sync" in json.dumps(machine["Properties"]["DefinitionString"]), stack
    assert machines == 2  # training and feature materialization


# -- hobby -------------------------------------------------------------------------------------


def test_hobby_replaces_elasticache_with_the_compose_redis(
    synthesized: Synth, tmp_path: Path
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", Tier.HOBBY)
    stack = lt.stack_name(synthesized, "feature-store")
    groups = lt.of_type(
        lt.template(synthesized("local").outdir, stack), "AWS::ElastiCache::ReplicationGroup"
    )
    [group] = groups
    [change] = [c for c in report.changes if c.logical_id == group]
    assert (change.stack, change.action) == (stack, "replaced")
    assert "redis://redis:6379/0" in change.detail
    template = lt.template(tmp_path / "out", stack)
    assert group not in template["Resources"]
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    assert outputs["RedisEndpointAddress"] == "redis"
    assert outputs["RedisEndpointPort"] == "6379"


def test_the_compose_redis_host_and_port_come_from_the_redis_url(
    synthesized: Synth, tmp_path: Path
) -> None:
    url = "redis://:secret@cache.internal:6380/2"
    lt.adapt(synthesized, tmp_path / "out", Tier.HOBBY, redis_url=url)
    template = lt.template(tmp_path / "out", lt.stack_name(synthesized, "feature-store"))
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    assert outputs["RedisEndpointAddress"] == "cache.internal"
    assert outputs["RedisEndpointPort"] == "6380"
    exported = [v for name, v in outputs.items() if "ReplicationGroup" in name]
    assert sorted(exported) == ["6380", "cache.internal"]


def serving_functions(assembly: Path, stack: str) -> dict[str, Json]:
    """Logical id -> environment variables of the functions that read Redis."""
    return {
        lid: r["Properties"]["Environment"]["Variables"]
        for lid, r in lt.of_type(lt.template(assembly, stack), "AWS::Lambda::Function").items()
        if any("_REDIS_" in k for k in r["Properties"].get("Environment", {}).get("Variables", {}))
    }


def test_hobby_points_the_serving_function_at_the_compose_redis(
    synthesized: Synth, tmp_path: Path
) -> None:
    """The serving stack imports the endpoint from the feature-store stack's exports."""
    options = Options(tier=Tier.HOBBY)
    report = adapt_assembly(synthesized("local").outdir, tmp_path / "out", options)
    stack = lt.stack_name(synthesized, "serving")
    functions = serving_functions(tmp_path / "out", stack)
    [(lid, variables)] = [
        (lid, v) for lid, v in functions.items() if any(k.endswith("_REDIS_URL") for k in v)
    ]
    assert variables["MLOPS_SERVING_REDIS_URL"] == options.redis_url
    for suffix in ("HOST", "PORT", "TLS", "SECRET_ARN"):
        assert f"MLOPS_SERVING_REDIS_{suffix}" not in variables
    assert variables["MLOPS_SERVING_REDIS_TIMEOUT_MS"] == "20"  # other settings are kept
    [change] = [c for c in report.changes if (c.stack, c.logical_id) == (stack, lid)]
    assert change.action == "replaced"
    assert change.detail.endswith(f"MLOPS_SERVING_REDIS_URL={options.redis_url}")


def test_base_keeps_elasticache_for_the_serving_function(
    synthesized: Synth, tmp_path: Path
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", Tier.BASE)
    assert not [c for c in report.changes if "ElastiCache" in c.resource_type]
    stack = lt.stack_name(synthesized, "serving")
    adapted = serving_functions(tmp_path / "out", stack)
    assert adapted == serving_functions(synthesized("local").outdir, stack)
    [variables] = adapted.values()
    assert "MLOPS_SERVING_REDIS_HOST" in variables
    assert "MLOPS_SERVING_REDIS_URL" not in variables


def test_hobby_leaves_out_what_needs_a_higher_tier(synthesized: Synth, tmp_path: Path) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", Tier.HOBBY)
    left_out = {c.resource_type for c in report.left_out()}
    assert {
        "AWS::SageMaker::ModelPackageGroup",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::Athena::WorkGroup",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::CodeDeploy::DeploymentConfig",
    } <= left_out
    assert not left_out & {
        "AWS::Lambda::Function",
        "AWS::DynamoDB::Table",
        "AWS::KinesisFirehose::DeliveryStream",
        "AWS::StepFunctions::StateMachine",
    }


def test_hobby_turns_sagemaker_sync_tasks_into_request_response(
    synthesized: Synth, tmp_path: Path
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", Tier.HOBBY)
    stack = lt.stack_name(synthesized, "training")
    [(lid, machine)] = lt.of_type(
        lt.template(tmp_path / "out", stack), "AWS::StepFunctions::StateMachine"
    ).items()
    text = json.dumps(machine["Properties"]["DefinitionString"])
    assert "arn:aws:states:::sagemaker:createTrainingJob" in text
    assert "arn:aws:states:::sagemaker:createProcessingJob" in text
    assert ".sync" not in text
    definition, _ = lt.definition(machine)
    assert (
        definition["States"]["Train"]["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob"
    )
    [change] = [c for c in report.changes if c.logical_id == lid]
    assert change.action == "replaced"
    assert "4 SageMaker .sync tasks" in change.detail
    for name in report.stacks:
        for other in lt.of_type(
            lt.template(tmp_path / "out", name), "AWS::StepFunctions::StateMachine"
        ).values():
            assert ".sync" not in json.dumps(other["Properties"]), name


@pytest.mark.parametrize("case", ["HappyPath", "GatedOut"])
def test_hobby_trigger_starts_executions_on_a_mock_test_case(
    synthesized: Synth, tmp_path: Path, case: str
) -> None:
    stack = lt.stack_name(synthesized, "training")
    before = lt.template(synthesized("local").outdir, stack)
    lt.adapt(synthesized, tmp_path / "out", Tier.HOBBY, mock_case=case)
    after = lt.template(tmp_path / "out", stack)
    [(lid, trigger)] = [
        (lid, r)
        for lid, r in lt.of_type(after, "AWS::Lambda::Function").items()
        if "STATE_MACHINE_ARN" in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    original = before["Resources"][lid]["Properties"]["Environment"]["Variables"]
    arn = trigger["Properties"]["Environment"]["Variables"]["STATE_MACHINE_ARN"]
    assert arn == {"Fn::Join": ["", [original["STATE_MACHINE_ARN"], f"#{case}"]]}
    [machine] = lt.of_type(after, "AWS::StepFunctions::StateMachine")
    assert original["STATE_MACHINE_ARN"] == {"Ref": machine}


def test_without_a_mock_case_the_trigger_is_unchanged(synthesized: Synth, tmp_path: Path) -> None:
    stack = lt.stack_name(synthesized, "training")
    report = lt.adapt(synthesized, tmp_path / "out", Tier.HOBBY, mock_case=None)
    assert not [c for c in report.changes if "test case" in c.detail]
    functions = lt.of_type(lt.template(tmp_path / "out", stack), "AWS::Lambda::Function")
    originals = lt.of_type(lt.template(synthesized("local").outdir, stack), "AWS::Lambda::Function")
    assert functions == originals


# -- core --------------------------------------------------------------------------------------


def test_core_leaves_out_functions_and_tables(synthesized: Synth, tmp_path: Path) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", Tier.CORE)
    left_out = {(c.stack, c.logical_id) for c in report.left_out()}
    source = synthesized("local").outdir
    expected = {
        (stack, lid)
        for stack in report.stacks
        for kind in ("AWS::Lambda::Function", "AWS::DynamoDB::Table")
        for lid in lt.of_type(lt.template(source, stack), kind)
    }
    assert len(expected) >= 10
    assert expected <= left_out


def test_core_points_lambda_tasks_at_stand_in_arns(synthesized: Synth, tmp_path: Path) -> None:
    stack = lt.stack_name(synthesized, "training")
    source = lt.template(synthesized("local").outdir, stack)
    lt.adapt(synthesized, tmp_path / "out", Tier.CORE)
    [(lid, machine)] = lt.of_type(
        lt.template(tmp_path / "out", stack), "AWS::StepFunctions::StateMachine"
    ).items()
    before, before_tokens = lt.definition(source["Resources"][lid])
    after, after_tokens = lt.definition(machine)
    lambda_tasks = {"Gate", "Register", "RecordFailed", "RecordGatedOut", "RecordSucceeded"}
    for state in lambda_tasks:
        original = before_tokens[int(before["States"][state]["Resource"][1:])]
        function = original["Fn::GetAtt"][0]
        assert source["Resources"][function]["Type"] == "AWS::Lambda::Function"
        stand_in = after_tokens[int(after["States"][state]["Resource"][1:])]
        assert set(stand_in) == {"Fn::Sub"}, state
        assert LAMBDA_STAND_IN.fullmatch(stand_in["Fn::Sub"]), stand_in
        assert stand_in["Fn::Sub"].endswith(f":function:left-out-{function.lower()}")


def test_core_reports_kept_resources_that_refer_to_left_out_ones(
    synthesized: Synth, tmp_path: Path
) -> None:
    report = lt.adapt(synthesized, tmp_path / "out", Tier.CORE)
    source = synthesized("local").outdir
    dangling = {(c.stack, c.logical_id): c for c in report.changes if c.action == "dangling"}
    removed = lt.removed_by_report(report, Tier.CORE)
    # The ElastiCache group is replaced by the compose Redis, so its readers are not dangling.
    swapped = {(c.stack, c.logical_id) for c in report.changes if c.action == "replaced"}
    expected = set()
    for stack in report.stacks:
        gone = {lid for name, lid in removed - swapped if name == stack}
        after = lt.template(tmp_path / "out", stack)["Resources"]
        for lid, resource in lt.template(source, stack)["Resources"].items():
            if lid in after and lt.references(resource.get("Properties", {})) & gone:
                expected.add((stack, lid))
    assert set(dangling) == expected
    training = lt.stack_name(synthesized, "training")
    [machine] = lt.of_type(lt.template(source, training), "AWS::StepFunctions::StateMachine")
    [gate] = [
        lid
        for lid in lt.of_type(lt.template(source, training), "AWS::Lambda::Function")
        if lid.startswith("Gate")
    ]
    change = dangling[(training, machine)]
    assert gate in change.detail and "stand-in" in change.detail
