from __future__ import annotations

import pytest

from mlops.images import ImageNotFoundError, image_uri, supported_regions, supported_versions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("framework", "version", "region", "expected"),
    [
        ("xgboost", "3.0-5", "ap-northeast-2",
         "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-xgboost:3.0-5"),
        ("xgboost", "1.7-1", "us-east-1",
         "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
        ("xgboost", "3.0-5", "us-west-2",
         "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:3.0-5"),
        ("sklearn", "1.4-2", "eu-west-1",
         "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"),
        ("sklearn", "1.2-1", "ap-northeast-1",
         "354813040037.dkr.ecr.ap-northeast-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"),
    ],
)  # fmt: skip
def test_image_uri_uses_the_published_registry_of_the_region(
    framework: str, version: str, region: str, expected: str
) -> None:
    assert image_uri(framework, version, region) == expected


def test_training_processing_and_inference_share_the_framework_image() -> None:
    uris = {
        image_uri("xgboost", "3.0-5", "ap-northeast-2", purpose=purpose)
        for purpose in ("training", "processing", "inference")
    }
    assert uris == {"366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-xgboost:3.0-5"}


def test_the_sample_bundles_frameworks_are_supported_in_the_required_regions() -> None:
    assert "3.0-5" in supported_versions("xgboost")
    assert "1.4-2" in supported_versions("sklearn")
    required = {"ap-northeast-2", "us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1"}
    assert required <= set(supported_regions())


@pytest.mark.parametrize(
    ("args", "kwargs", "fragments"),
    [
        (("lightgbm", "4.0", "us-east-1"), {},
         ["unknown framework 'lightgbm'", "sklearn, xgboost"]),
        (("xgboost", "0.72", "us-east-1"), {}, ["'0.72' is not supported", "3.0-5"]),
        (("xgboost", "3.0-5", "mars-north-1"), {}, ["region 'mars-north-1'", "ap-northeast-2"]),
        (("xgboost", "3.0-5", "us-east-1"), {"purpose": "serving"}, ["unknown purpose 'serving'"]),
    ],
)  # fmt: skip
def test_unsupported_requests_list_what_is_supported(
    args: tuple[str, str, str], kwargs: dict[str, str], fragments: list[str]
) -> None:
    with pytest.raises(ImageNotFoundError) as caught:
        image_uri(*args, **kwargs)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)
