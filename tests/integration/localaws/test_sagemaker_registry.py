from __future__ import annotations

from collections.abc import Iterator

import pytest

from localaws import sagemaker_registry
from localaws.emulator import Emulator

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(emulator: Emulator) -> Iterator[tuple[object, str]]:
    sagemaker_registry.install()
    sagemaker_registry.install()  # idempotent
    client = emulator.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName="m")
    arn = client.create_model_package(
        ModelPackageGroupName="m",
        ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"metric.auc": "0.81", "run_id": "r1"},
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    yield client, arn
    sagemaker_registry.uninstall()


def test_contract_with_moto_holds() -> None:
    sagemaker_registry.check_contract()


def test_approval_keeps_metadata_and_merges_new_keys(registry: tuple[object, str]) -> None:
    client, arn = registry
    client.update_model_package(  # type: ignore[attr-defined]
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="looks good"
    )
    client.update_model_package(  # type: ignore[attr-defined]
        ModelPackageArn=arn, CustomerMetadataProperties={"deployed": "yes"},
        CustomerMetadataPropertiesToRemove=["run_id"],
    )  # fmt: skip
    package = client.describe_model_package(ModelPackageName=arn)  # type: ignore[attr-defined]
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == "looks good"
    assert package["CustomerMetadataProperties"] == {"metric.auc": "0.81", "deployed": "yes"}


def test_without_the_extension_moto_erases_metadata(emulator: Emulator) -> None:
    """Documents the moto behaviour the extension exists for; fails once moto fixes it."""
    sagemaker_registry.uninstall()
    client = emulator.client("sagemaker")
    client.create_model_package_group(ModelPackageGroupName="raw")
    arn = client.create_model_package(
        ModelPackageGroupName="raw", ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"metric.auc": "0.81"},
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]  # fmt: skip
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    package = client.describe_model_package(ModelPackageName=arn)
    assert "CustomerMetadataProperties" not in package or not package["CustomerMetadataProperties"]
