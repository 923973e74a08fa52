"""The approval hook's decisions: which events count, and what each change does to serving."""

from __future__ import annotations

from typing import Any

import pytest

from lambdas.approval_hook.domain import (
    Ignored,
    PackageChange,
    RolloutChange,
    ledger_reference,
    parse_ledger_reference,
    parse_package_change,
    parse_rollout_change,
    plan,
)
from mlops.deployments import Action, Champion, VersionRef

pytestmark = pytest.mark.unit
GROUPS = ("credit-risk",)
ARN = "arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/credit-risk/{}"


def ref(version: int, group: str = "credit-risk") -> VersionRef:
    return VersionRef(
        version, f"arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/{group}/{version}"
    )


def event(version: int = 2, status: str = "Approved", **detail: Any) -> dict[str, Any]:
    body = {
        "ModelPackageGroupName": "credit-risk",
        "ModelPackageVersion": version,
        "ModelPackageArn": ARN.format(version),
        "ModelApprovalStatus": status,
        "LastModifiedTime": "2026-11-21T10:00:00Z",
        "LastModifiedBy": {
            "IamIdentity": {"Arn": "arn:aws:sts::123456789012:assumed-role/approver/kim"}
        },
        "ApprovalDescription": "AUC up 0.01",
        "InferenceSpecification": {"Containers": [{"ModelDataUrl": "s3://a/runs/x/model.tar.gz"}]},
    }
    body.update(detail)
    return {"id": "e-1", "source": "aws.sagemaker", "time": "2026-11-21T10:00:01Z",
            "detail-type": "SageMaker Model Package State Change", "detail": body}  # fmt: skip


def champion(version: int) -> Champion:
    r = ref(version)
    return Champion(
        "credit-risk", version, r.package_arn, "s3://a/m.tar.gz", "2026-11-20T00:00:00Z"
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("not an event", "not an event object"),
        (
            {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
            "not a model package",
        ),
        ({**event(), "detail": None}, "no detail object"),
        (event(ModelPackageGroupName="fraud"), "is not version 2 of group 'fraud'"),
        (
            event(
                ModelPackageGroupName="fraud",
                ModelPackageArn=ARN.replace("credit-risk", "fraud").format(2),
            ),
            "foreign group 'fraud'",
        ),
        (event(status="PendingManualApproval"), "asks for no deployment decision"),
        (event(ModelApprovalStatus=None), "lacks ModelApprovalStatus"),
        (event(ModelPackageVersion="2"), "not a positive integer"),
        (event(ModelPackageVersion=True), "not a positive integer"),
        (event(ModelPackageArn="credit-risk/2"), "is not version 2"),
        ({**event(LastModifiedTime="yesterday"), "time": None}, "is a timestamp"),
    ],
)
def test_events_that_ask_for_nothing_are_ignored_with_the_reason(raw: Any, why: str) -> None:
    result = parse_package_change(raw, GROUPS)
    assert isinstance(result, Ignored)
    assert why in result.reason


def test_a_change_carries_approver_description_and_a_stable_ledger_key() -> None:
    change = parse_package_change(event(), GROUPS)
    assert isinstance(change, PackageChange)
    assert change.approver == {
        "IamIdentity": {"Arn": "arn:aws:sts::123456789012:assumed-role/approver/kim"}
    }
    assert (change.version, change.status, change.description) == (2, "Approved", "AUC up 0.01")
    assert change.occurred_at == "2026-11-21T10:00:00.000Z"
    assert change.model_data_url == "s3://a/runs/x/model.tar.gz"
    again = parse_package_change({**event(), "id": "e-2"}, GROUPS)
    assert isinstance(again, PackageChange) and again.entry == change.entry  # a re-delivery
    later = parse_package_change(event(LastModifiedTime="2026-11-21T11:00:00Z"), GROUPS)
    assert isinstance(later, PackageChange) and later.entry != change.entry
    assert later.entry > change.entry  # ledger order is the order the registry changed
    epoch = parse_package_change(event(LastModifiedTime=1_795_000_000_000), GROUPS)
    assert isinstance(epoch, PackageChange) and epoch.occurred_at.startswith("2026-11-18")


def _change(version: int, status: str = "Approved") -> PackageChange:
    change = parse_package_change(event(version, status), GROUPS)
    assert isinstance(change, PackageChange)
    return change


@pytest.mark.parametrize(
    (
        "version",
        "status",
        "now",
        "serving",
        "shifting",
        "approved",
        "action",
        "target",
        "stop",
        "why",
    ),
    [
        (
            1,
            "Approved",
            "Approved",
            None,
            None,
            [1],
            Action.PROMOTE,
            1,
            False,
            "v1 approved: promote",
        ),
        (2, "Approved", "Approved", 1, None, [1, 2], Action.PROMOTE, 2, False, "over v1"),
        (
            2,
            "Approved",
            "Approved",
            2,
            None,
            [1, 2],
            Action.RECORD,
            None,
            False,
            "already the champion",
        ),
        (1, "Approved", "Approved", 2, None, [1, 2], Action.RECORD, None, False, "older than v2"),
        (2, "Approved", "Rejected", 1, None, [1], Action.RECORD, None, False, "stale"),
        (
            3,
            "Approved",
            "Approved",
            1,
            2,
            [1, 2, 3],
            Action.PROMOTE,
            3,
            True,
            "stops the rollout of v2",
        ),
        (2, "Approved", "Approved", 1, 3, [1, 2, 3], Action.RECORD, None, False, "is rolling out"),
        (2, "Approved", "Approved", 1, 2, [1, 2], Action.RECORD, None, False, "being rolled out"),
        (2, "Rejected", "Rejected", 2, None, [1], Action.ROLLBACK, 1, False, "roll back to v1"),
        (
            3,
            "Rejected",
            "Rejected",
            3,
            None,
            [1, 2],
            Action.ROLLBACK,
            2,
            False,
            "newest other approved",
        ),
        (1, "Rejected", "Rejected", 1, None, [], Action.ROLLBACK, None, False, "keeps serving"),
        (1, "Rejected", "Rejected", 2, None, [2], Action.RECORD, None, False, "not serving"),
        (2, "Rejected", "Rejected", 1, 2, [1], Action.ROLLBACK, 1, True, "stop the shift"),
        (2, "Rejected", "Approved", 2, None, [1, 2], Action.RECORD, None, False, "stale"),
        (2, "Approved", None, 1, None, [1], Action.RECORD, None, False, "is None now"),
    ],
)
def test_the_decision_table(
    version: int, status: str, now: str | None, serving: int | None, shifting: int | None,
    approved: list[int], action: Action, target: int | None, stop: bool, why: str,
) -> None:  # fmt: skip
    decided = plan(
        _change(version, status), now, champion(serving) if serving else None,
        ref(shifting) if shifting else None, [ref(v) for v in approved],
    )  # fmt: skip
    assert decided.action is action
    assert (decided.target.version if decided.target else None) == target
    assert decided.stop_rollout is stop
    assert why in decided.reason


def test_rollout_events_of_the_serving_application_only() -> None:
    def rollout(**detail: Any) -> dict[str, Any]:
        body = {"application": "serving", "deploymentId": "d-1", "state": "SUCCESS", **detail}
        return {"source": "aws.codedeploy", "detail": body}

    assert parse_rollout_change(rollout(), "serving") == RolloutChange("d-1", "SUCCESS", "serving")
    assert parse_rollout_change(rollout(state="STOP"), "serving") == RolloutChange(
        "d-1", "STOP", "serving"
    )
    for bad, why in (
        (rollout(application="other"), "another application"),
        (rollout(state="START"), "not an end state"),
        (rollout(deploymentId=None), "lacks deploymentId"),
        ({"source": "aws.codedeploy"}, "no detail"),
    ):
        result = parse_rollout_change(bad, "serving")
        assert isinstance(result, Ignored) and why in result.reason
    assert isinstance(parse_rollout_change(rollout(), None), Ignored)


def test_a_deployment_description_leads_back_to_its_ledger_entry() -> None:
    text = ledger_reference("credit-risk", "2026-11-21T10:00:00.000Z#abc")
    assert parse_ledger_reference(text) == ("credit-risk", "2026-11-21T10:00:00.000Z#abc")
    assert parse_ledger_reference("deployed by cdk") is None
    assert parse_ledger_reference(None) is None
