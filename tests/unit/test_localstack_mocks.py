"""LocalStack tiers, and the Step Functions mock configuration of the training workflow."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops.localstack.mocks import CASES, build_mock_config, task_states, write_mock_config
from mlops.localstack.tiers import SERVICES, Tier, minimum_tier, parse_tier, service_of
from tests.conftest import SynthesizedEnvironment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
Json = dict[str, Any]

REGION = "ap-northeast-2"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:000000000000:function:x"
TASKS = {
    "Preprocess", "Train", "Evaluate", "BuildTrainingSet", "Gate", "Register",
    "RecordFailed", "RecordGatedOut", "RecordSucceeded",
}  # fmt: skip
LAMBDA_TASKS = {"Gate", "Register", "RecordFailed", "RecordGatedOut", "RecordSucceeded"}


# -- tiers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "service"),
    [
        ("AWS::ElastiCache::ReplicationGroup", "elasticache"),
        ("AWS::KinesisFirehose::DeliveryStream", "firehose"),
        ("AWS::StepFunctions::StateMachine", "stepfunctions"),
        ("AWS::CDK::Metadata", "cdk"),
        ("Custom::Foo", "custom-resource"),
        ("AWS::CloudFormation::CustomResource", "custom-resource"),
        ("AWS::CloudFormation::Stack", "custom-resource"),
    ],
)
def test_service_of_a_resource_type(resource_type: str, service: str) -> None:
    assert service_of(resource_type) == service


@pytest.mark.parametrize("malformed", ["AWS::S3", "Foo::Bar::Baz", "AWS::Lambda::Function::X", ""])
def test_service_of_a_malformed_type_is_refused(malformed: str) -> None:
    with pytest.raises(ValueError, match="not a CloudFormation resource type"):
        service_of(malformed)


def test_every_synthesized_resource_type_has_a_tier(synthesized: Synth) -> None:
    outdir = synthesized("local").outdir
    types = {
        resource["Type"]
        for path in outdir.glob("*.template.json")
        for resource in json.loads(path.read_text())["Resources"].values()
    }
    assert len(types) > 40
    assert {
        t: minimum_tier(service_of(t)) for t in types if minimum_tier(service_of(t)) is None
    } == {}


@pytest.mark.parametrize(
    ("service", "tier"),
    [
        ("s3", Tier.CORE),
        ("stepfunctions", Tier.CORE),
        ("lambda", Tier.HOBBY),
        ("custom-resource", Tier.HOBBY),
        ("firehose", Tier.HOBBY),
        ("elasticache", Tier.BASE),
        ("sagemaker", Tier.ULTIMATE),
        ("codedeploy", Tier.ULTIMATE),
        ("appsync", None),
    ],
)
def test_minimum_tier(service: str, tier: Tier | None) -> None:
    assert minimum_tier(service) == tier


def test_each_tier_creates_everything_the_smaller_ones_do() -> None:
    tiers = list(Tier)
    assert tiers == [Tier.CORE, Tier.HOBBY, Tier.BASE, Tier.ULTIMATE]
    for smaller, larger in zip(tiers, tiers[1:], strict=False):
        assert SERVICES[smaller] < SERVICES[larger]


@pytest.mark.parametrize(
    ("name", "tier"),
    [
        ("free", Tier.HOBBY),
        ("FREE", Tier.HOBBY),
        (" Ultimate ", Tier.ULTIMATE),
        ("Core", Tier.CORE),
    ],
)
def test_parse_tier(name: str, tier: Tier) -> None:
    assert parse_tier(name) is tier


def test_parse_tier_names_the_choices_for_an_unknown_tier() -> None:
    with pytest.raises(ValueError, match="'pro'") as error:
        parse_tier("pro")
    for tier in Tier:
        assert tier.value in str(error.value)


# -- mocks -------------------------------------------------------------------------------------


@pytest.fixture
def definition(synthesized: Synth) -> Json:
    """The synthesized training workflow, each reference resolved to a function ARN."""
    stack = synthesized("local").stack("training").stack_name
    template = json.loads((synthesized("local").outdir / f"{stack}.template.json").read_text())
    [machine] = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    separator, parts = machine["Properties"]["DefinitionString"]["Fn::Join"]
    text = separator.join(p if isinstance(p, str) else FUNCTION_ARN for p in parts)
    loaded: Json = json.loads(text)
    return loaded


def _response(config: Json, case: str, state: str, machine: str = "training") -> Json:
    key = config["StateMachines"][machine]["TestCases"][case][state]
    answer: Json = config["MockedResponses"][key]["0"]
    return answer


def test_task_states_finds_every_task_of_the_workflow(definition: Json) -> None:
    tasks = task_states(definition)
    assert set(tasks) == TASKS
    assert tasks["Train"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert {name for name, resource in tasks.items() if resource == FUNCTION_ARN} == LAMBDA_TASKS


def test_task_states_looks_inside_parallel_and_map_states() -> None:
    task = {"Type": "Task", "Resource": FUNCTION_ARN, "End": True}
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "A", "States": {"A": task}}],
                "Next": "Each",
            },
            "Each": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "B", "States": {"B": task}},
                "Next": "Old",
            },
            "Old": {
                "Type": "Map",
                "Iterator": {"StartAt": "C", "States": {"C": task}},
                "End": True,
            },
        },
    }
    assert task_states(definition) == {"A": FUNCTION_ARN, "B": FUNCTION_ARN, "C": FUNCTION_ARN}


@pytest.mark.parametrize("sync", [True, False], ids=["synthesized", "request-response"])
def test_every_case_answers_every_task(definition: Json, sync: bool) -> None:
    if not sync:  # as deployed below the ultimate tier
        definition = json.loads(json.dumps(definition).replace(".sync", ""))
    config = build_mock_config("training", definition, region=REGION)
    cases = config["StateMachines"]["training"]["TestCases"]
    assert set(cases) == set(CASES) == {"HappyPath", "GatedOut", "TrainingFails"}
    for case, states in cases.items():
        assert set(states) == TASKS, case
        for key in states.values():
            assert key in config["MockedResponses"]
            [(attempt, answer)] = config["MockedResponses"][key].items()
            assert attempt == "0"
            assert set(answer) in ({"Return"}, {"Throw"}), key
    assert len(config["MockedResponses"]) == len(CASES) * len(TASKS)


def test_the_gate_passes_on_the_happy_path_only(definition: Json) -> None:
    config = build_mock_config("training", definition, region=REGION)
    for case, passed in [("HappyPath", True), ("GatedOut", False), ("TrainingFails", True)]:
        answer = _response(config, case, "Gate")["Return"]
        assert answer["StatusCode"] == 200
        assert answer["Payload"]["passed"] is passed, case
        assert answer["Payload"]["reason"]
    register = _response(config, "HappyPath", "Register")["Return"]["Payload"]
    assert register["model_package_arn"].startswith(f"arn:aws:sagemaker:{REGION}:")
    for state in LAMBDA_TASKS - {"Gate", "Register"}:
        assert _response(config, "HappyPath", state)["Return"]["Payload"]["recorded"] is True


def test_training_fails_throws_from_the_training_job(definition: Json) -> None:
    config = build_mock_config("training", definition, region=REGION)
    throw = _response(config, "TrainingFails", "Train")["Throw"]
    assert throw["Error"] == "States.TaskFailed"
    assert throw["Cause"]
    for state in TASKS - {"Train"}:
        assert "Return" in _response(config, "TrainingFails", state), state


def test_job_mocks_satisfy_the_definitions_result_selectors(definition: Json) -> None:
    """Each SageMaker task's ResultSelector paths resolve in its mocked job description."""
    config = build_mock_config("training", definition, region=REGION)
    train = _response(config, "HappyPath", "Train")["Return"]
    assert train["ModelArtifacts"]["S3ModelArtifacts"].startswith("s3://")
    assert train["TrainingJobStatus"] == "Completed"
    for state in TASKS - LAMBDA_TASKS:
        selector = definition["States"][state]["ResultSelector"]
        for case in ("HappyPath", "GatedOut"):
            value: Any = _response(config, case, state)["Return"]
            for path in selector.values():
                node = value
                for step in path.removeprefix("$.").split("."):
                    node = node[step]
                assert isinstance(node, str) and node, f"{case}/{state}: {path}"


def test_write_mock_config_merges_state_machines(definition: Json, tmp_path: Path) -> None:
    path = tmp_path / "mocks" / "sfn.json"
    first = build_mock_config("training-a", definition, region=REGION)
    second = build_mock_config("training-b", definition, region=REGION)
    assert write_mock_config(path, first) == path
    write_mock_config(path, second)
    written = json.loads(path.read_text())
    assert set(written["StateMachines"]) == {"training-a", "training-b"}
    assert written["MockedResponses"] == first["MockedResponses"] | second["MockedResponses"]
    assert path.read_text().endswith("\n")
    write_mock_config(path, first)  # rewriting one machine keeps the other
    assert json.loads(path.read_text()) == written


def test_a_task_without_a_mock_is_refused() -> None:
    definition = {
        "StartAt": "Notify",
        "States": {
            "Notify": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": True}
        },
    }
    with pytest.raises(ValueError, match="sqs:sendMessage"):
        build_mock_config("training", definition, region=REGION)
