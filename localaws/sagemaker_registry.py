"""Model-registry fidelity: UpdateModelPackage changes only what the request names.

moto 5.2.5 assigns every field of UpdateModelPackage, so approving a version (a request
with only `ModelApprovalStatus`) erases its `CustomerMetadataProperties` and
`ApprovalDescription`, and a request without a status clears the status. AWS keeps what
a request does not mention and merges metadata keys (removal is explicit, through
`CustomerMetadataPropertiesToRemove`). The platform depends on that: the gate reads the
champion's metrics from its metadata after it has been approved.
"""

from __future__ import annotations

import inspect
from typing import Any

_PARAMETERS = (
    "self",
    "model_package_arn",
    "model_approval_status",
    "approval_description",
    "customer_metadata_properties",
    "customer_metadata_properties_to_remove",
    "additional_inference_specifications_to_add",
)
_installed: dict[str, Any] = {}


def check_contract() -> None:
    """Fail loudly if moto's update_model_package no longer has the patched shape."""
    from moto.sagemaker.models import SageMakerModelBackend

    found = tuple(inspect.signature(SageMakerModelBackend.update_model_package).parameters)
    if found != _PARAMETERS:
        raise RuntimeError(
            "moto.sagemaker.models.SageMakerModelBackend.update_model_package changed its "
            f"parameters: expected {_PARAMETERS}, found {found}; update localaws/"
            "sagemaker_registry.py"
        )
    if not hasattr(SageMakerModelBackend, "model_package_name_mapping") and not any(
        "model_package_name_mapping" in line
        for line in inspect.getsource(SageMakerModelBackend.__init__).splitlines()
    ):
        raise RuntimeError("moto SageMakerModelBackend no longer has model_package_name_mapping")


def _keep_unmentioned(original: Any) -> Any:
    signature = inspect.signature(original)

    def update_model_package(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        backend, arn = bound.arguments["self"], bound.arguments["model_package_arn"]
        name = backend.model_package_name_mapping.get(arn, arn)
        package = backend.model_packages.get(name)
        if package is not None:
            given = bound.arguments
            if given.get("model_approval_status") is None:
                given["model_approval_status"] = package.model_approval_status
            if given.get("approval_description") is None:
                given["approval_description"] = package.approval_description
            given["customer_metadata_properties"] = {
                **(package.customer_metadata_properties or {}),
                **(given.get("customer_metadata_properties") or {}),
            } or None
        return original(*bound.args, **bound.kwargs)

    return update_model_package


def install() -> None:
    """Idempotent."""
    if _installed:
        return
    check_contract()
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.update_model_package
    _installed["original"] = original
    SageMakerModelBackend.update_model_package = _keep_unmentioned(original)  # type: ignore[method-assign]


def uninstall() -> None:
    if not _installed:
        return
    from moto.sagemaker.models import SageMakerModelBackend

    SageMakerModelBackend.update_model_package = _installed.pop("original")  # type: ignore[method-assign]
