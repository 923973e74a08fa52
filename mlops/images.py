"""SageMaker prebuilt framework images: (framework, version, region) → ECR image URI.

The platform runs data scientists' scripts in the SageMaker XGBoost and scikit-learn
containers. These images live in per-region ECR registries owned by AWS; the account ids
below are those published in the SageMaker Python SDK's image configuration
(`sagemaker-core/src/sagemaker/core/image_uri_config/xgboost.json` and `sklearn.json` in
github.com/aws/sagemaker-python-sdk, checked at commit a2481266, 2026-08) and in the AWS docs
page "Docker Registry Paths and Example Code". Both frameworks share one registry per region
for versions 1.0 and later.

One image per version serves training, processing and inference: the SDK maps both its
`training` and `inference` scopes of these frameworks to the same repository and tag, and
framework processors (`SKLearnProcessor`, `XGBoostProcessor`) run the training image.
(The SDK lists scikit-learn 1.4-2 only under `training`; the container is the same
dual-purpose sagemaker-scikit-learn image, so it is used for inference as well.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Purpose = Literal["training", "processing", "inference"]
PURPOSES: tuple[Purpose, ...] = ("training", "processing", "inference")

# Registry accounts of the SageMaker XGBoost (>= 1.0) and scikit-learn images, per region.
_FRAMEWORK_REGISTRIES: dict[str, str] = {
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ca-central-1": "341280168497",
    "eu-central-1": "492215442770",
    "eu-north-1": "662702820516",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}


@dataclass(frozen=True)
class _Framework:
    repository: str
    versions: tuple[str, ...]
    tag_suffix: str  # appended to the version to form the image tag


FRAMEWORKS: dict[str, _Framework] = {
    # Tags are the version itself, e.g. sagemaker-xgboost:3.0-5.
    "xgboost": _Framework("sagemaker-xgboost", ("1.5-1", "1.7-1", "3.0-5", "3.2-0"), ""),
    # Tags carry processor and Python, e.g. sagemaker-scikit-learn:1.4-2-cpu-py3. 1.4-2-py312
    # is the same release on Python 3.12 (the others are 3.10): the SageMaker SDK's
    # image_uri_config/sklearn.json lists it; aws/sagemaker-scikit-learn-container
    # docker/1.4-2-py312 sets PYTHON_VERSION=3.12.
    "sklearn": _Framework(
        "sagemaker-scikit-learn", ("1.0-1", "1.2-1", "1.4-2", "1.4-2-py312"), "-cpu-py3"
    ),
}
# The image the platform's own jobs run on (training sets, materialization): the feature-store
# code and its pins (pyarrow 26, `datetime.UTC`) need Python >= 3.11, which the bundles'
# framework images (3.10) do not have.
PLATFORM_JOB_IMAGE = ("sklearn", "1.4-2-py312")
PLATFORM_JOB_PYTHON = "3.12"


def platform_job_image(region: str) -> str:
    """The ECR URI of the image the platform's feature-store jobs run on in `region`."""
    framework, version = PLATFORM_JOB_IMAGE
    return image_uri(framework, version, region, purpose="processing")


class ImageNotFoundError(ValueError):
    """No prebuilt image for the request; the message lists what is supported."""


def supported_versions(framework: str) -> tuple[str, ...]:
    """The container versions of `framework` this platform can run."""
    return _framework(framework).versions


def supported_regions() -> tuple[str, ...]:
    return tuple(sorted(_FRAMEWORK_REGISTRIES))


def image_uri(framework: str, version: str, region: str, *, purpose: Purpose = "training") -> str:
    """The ECR URI of the prebuilt `framework` container `version` in `region`."""
    spec = _framework(framework)
    if purpose not in PURPOSES:
        raise ImageNotFoundError(f"unknown purpose {purpose!r}; use one of {', '.join(PURPOSES)}")
    if version not in spec.versions:
        raise ImageNotFoundError(
            f"{framework} version {version!r} is not supported; "
            f"supported: {', '.join(spec.versions)}"
        )
    account = _FRAMEWORK_REGISTRIES.get(region)
    if account is None:
        raise ImageNotFoundError(
            f"no SageMaker {framework} images known for region {region!r}; "
            f"supported regions: {', '.join(supported_regions())}"
        )
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{spec.repository}:{version}{spec.tag_suffix}"


def _framework(framework: str) -> _Framework:
    try:
        return FRAMEWORKS[framework]
    except KeyError:
        raise ImageNotFoundError(
            f"unknown framework {framework!r}; supported: {', '.join(sorted(FRAMEWORKS))}"
        ) from None
