"""The serving app's parts that need no Redis: value decoding against Feast's own conversion,
plans and specs as configuration, prediction-log batching, settings, and the registry champion
against moto's SageMaker and S3."""

from __future__ import annotations

import json
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from feast.protos.feast.types.Value_pb2 import Null, Value
from feast.type_map import feast_value_type_to_python_type
from moto import mock_aws
from pydantic import ValidationError

from features.redis_plan import RedisPlan, ViewPlan, decode_value
from pipelines.sample_model import pack_model
from serving.champion import RegistryChampion
from serving.model import ModelLoadError
from serving.predictlog import FIREHOSE_MAX_BYTES, FIREHOSE_MAX_RECORDS, _chunks
from serving.settings import ServingSettings
from serving.spec import ServingSpec, SpecError

pytestmark = pytest.mark.unit

I32, I64 = 2**31, 2**63
VALUES: list[Value] = [
    *(Value(int32_val=v) for v in (-I32, -1, 0, 1, I32 - 1)),
    *(Value(int64_val=v) for v in (-I64, -I32 - 1, -1, 0, I32, I64 - 1)),
    *(Value(double_val=v) for v in (0.0, -0.0, 1.5, -2.25e300, 5e-324, math.inf, -math.inf)),
    Value(double_val=math.nan),
    *(Value(float_val=v) for v in (0.0, -0.0, 0.1, 3.4e38, -1e-45, math.inf, math.nan)),
    Value(bool_val=True),
    Value(bool_val=False),
    *(Value(string_val=v) for v in ("", "a", "한국어", "a\x00b", "x" * 300)),
    *(Value(bytes_val=v) for v in (b"", b"\x00\xff", bytes(range(256)))),
    Value(),
]


def same(left: Any, right: Any) -> bool:
    """Equal, and for floats also equal in NaN-ness and the sign of zero."""
    if isinstance(left, float) and isinstance(right, float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return left == right and math.copysign(1, left) == math.copysign(1, right)
    return type(left) is type(right) and left == right


@pytest.mark.parametrize(
    "value", VALUES, ids=lambda v: str(v).strip().replace("\n", " ") or "empty"
)
def test_decode_value_equals_feast(value: Value) -> None:
    expected = feast_value_type_to_python_type(value)
    assert same(decode_value(value.SerializeToString()), expected)


def test_null_val_is_none() -> None:
    """Feast's helper returns the enum's 0 for `null_val`; a missing value must stay None."""
    raw = Value(null_val=Null.NULL).SerializeToString()
    assert feast_value_type_to_python_type(Value(null_val=Null.NULL)) == 0
    assert decode_value(raw) is None


def test_decode_value_refuses_kinds_plans_never_carry() -> None:
    listed = Value()
    listed.int64_list_val.val.extend([1, 2])
    with pytest.raises(ValueError, match="field 14 is not a scalar"):
        decode_value(listed.SerializeToString())
    with pytest.raises((ValueError, IndexError)):
        decode_value(Value(int64_val=-1).SerializeToString()[:-3])


PLAN = RedisPlan(
    join_key="customer_id",
    key_prefix=b"\x02\x00\x00\x00",
    key_suffix=b"proj",
    views=(
        ViewPlan("profile", 604_800.0, b"_ts:profile", (("age", b"\x01\x02"), ("income", b"\xff"))),
        ViewPlan("txn", None, b"_ts:txn", (("txn_count_7d", b"\x00"),)),
    ),
)


def test_plan_round_trips_through_json() -> None:
    assert RedisPlan.from_dict(json.loads(json.dumps(PLAN.to_dict()))) == PLAN
    assert PLAN.outputs == ["age", "income", "txn_count_7d"]
    assert PLAN.fields == [b"_ts:profile", b"\x01\x02", b"\xff", b"_ts:txn", b"\x00"]
    assert PLAN.keys([1]) == [b"\x02\x00\x00\x00" + (1).to_bytes(8, "little") + b"proj"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("join_key"), "join_key"),
        (lambda d: d.update(key_prefix="zz"), "non-hexadecimal"),
        (lambda d: d.update(views=[]), "no features"),
        (lambda d: d.update(views=None), "NoneType"),
        (lambda d: d["views"][0].pop("ttl_seconds"), "ttl_seconds"),
        (lambda d: d["views"][0].update(ttl_seconds="a week"), "could not convert"),
        (lambda d: d["views"][0].update(features=[["age"]]), "not enough values"),
        (lambda d: [v.update(features=[]) for v in d["views"]], "no features"),
    ],
)
def test_malformed_plans_are_refused(change: Any, message: str) -> None:
    data = json.loads(json.dumps(PLAN.to_dict()))
    change(data)
    with pytest.raises(ValueError, match="malformed feature plan") as raised:
        RedisPlan.from_dict(data)
    assert message in str(raised.value)


def spec_text(**model: Any) -> str:
    entry = {"feature_service": "fs", "entity": "customer_id", "plan": PLAN.to_dict(), **model}
    return json.dumps({"schema_version": 1, "project": "p", "models": {"m": entry}})


def test_a_valid_spec_round_trips() -> None:
    spec = ServingSpec.from_json(spec_text(request_features=["amount"]))
    assert spec.models["m"].inputs == ("age", "income", "txn_count_7d", "amount")
    assert ServingSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "serving spec is not JSON"),
        ("[]", "schema_version 1"),
        ('{"schema_version": 2, "models": {"m": {}}}', "schema_version 1"),
        ('{"schema_version": 1, "models": {}}', "'models' must be a non-empty object"),
        ('{"schema_version": 1, "models": {"m": 3}}', "models.m must be an object"),
        (spec_text(entity="account_id"), "entity 'account_id' is not the feature service's join"),
        (spec_text(request_features=["age", "amount"]), "request features ['age'] are also stored"),
        (spec_text(plan={"views": []}), "models.m: malformed feature plan"),
        (spec_text(feature_service=None) .replace('"feature_service": null, ', ""),
         "models.m: 'feature_service'"),
    ],
)  # fmt: skip
def test_bad_specs_say_where(text: str, message: str) -> None:
    with pytest.raises(SpecError, match="serving spec") as raised:
        ServingSpec.from_json(text)
    assert message in str(raised.value)


def test_chunks_respect_firehose_limits() -> None:
    small = [b"x\n"] * (2 * FIREHOSE_MAX_RECORDS + 1)
    assert [len(c) for c in _chunks(small)] == [500, 500, 1]
    mib = [b"y" * (1024 * 1024)] * 9
    assert [len(c) for c in _chunks(mib)] == [4, 4, 1]
    assert all(sum(map(len, c)) <= FIREHOSE_MAX_BYTES for c in _chunks(mib))
    assert _chunks([]) == []


def test_an_oversize_first_record_yields_no_empty_batch() -> None:
    """PutRecordBatch refuses an empty Records list; the oversize record should go alone."""
    chunks = _chunks([b"z" * (FIREHOSE_MAX_BYTES + 1), b"ok\n"])
    assert all(len(chunk) > 0 for chunk in chunks), [len(c) for c in chunks]


BASE: dict[str, Any] = {"spec": "{}", "redis_url": "redis://localhost:6379/0"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spec": None}, "set exactly one of MLOPS_SERVING_SPEC and MLOPS_SERVING_SPEC_FILE"),
        ({"spec_file": "s.json"}, "set exactly one of MLOPS_SERVING_SPEC and"),
        ({"redis_url": None}, "set exactly one of MLOPS_SERVING_REDIS_URL and"),
        ({"redis_host": "h"}, "set exactly one of MLOPS_SERVING_REDIS_URL and"),
        ({"model_source": "directory"}, "MLOPS_SERVING_MODEL_SOURCE=directory needs"),
        ({"prediction_log_stream": "s", "prediction_log_file": "f"}, "set at most one of"),
        ({"redis_timeout_ms": 0}, "greater than or equal to 1"),
        ({"max_batch_size": 10_001}, "less than or equal to 10000"),
        ({"model_source": "s3"}, "Input should be 'champion', 'registry' or 'directory'"),
        ({"model_source": "champion"}, "MLOPS_SERVING_MODEL_SOURCE=champion needs MLOPS_SERVING_"),
        ({"champion_prefix": "mlops/dev/champions/"}, "_CHAMPION_PREFIX 'mlops/dev/champions/' "),
        ({"champion_prefix": "/mlops/dev/champions"}, "must start and end with '/'"),
        (
            {
                "pinned_models": {
                    "credit-risk": "arn:aws:sagemaker:ap-northeast-2:123456789012:"
                    "model-package-group/credit-risk"
                }
            },
            "are not model package ARNs",
        ),
        ({"pinned_models": {"credit-risk": "3"}}, "{'credit-risk': '3'} are not model package"),
    ],
)
def test_settings_name_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ServingSettings(**{**BASE, **changes})
    assert message in str(raised.value)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SERVING_SPEC_FILE", "/etc/spec.json")
    monkeypatch.setenv("MLOPS_SERVING_REDIS_HOST", "cache.internal")
    monkeypatch.setenv("MLOPS_SERVING_REDIS_TIMEOUT_MS", "35")
    settings = ServingSettings()
    assert (settings.spec_file, settings.redis_host, settings.redis_timeout_ms) == (
        "/etc/spec.json", "cache.internal", 35,
    )  # fmt: skip
    assert (settings.redis_tls, settings.model_source, settings.max_batch_size) == (
        True, "registry", 100,
    )  # fmt: skip
    assert (settings.champion_prefix, settings.pinned_models) == (None, {})


def test_pins_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/credit-risk/3"
    monkeypatch.setenv("MLOPS_SERVING_SPEC", "{}")
    monkeypatch.setenv("MLOPS_SERVING_REDIS_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("MLOPS_SERVING_MODEL_SOURCE", "champion")
    monkeypatch.setenv("MLOPS_SERVING_CHAMPION_PREFIX", "/mlops/dev/champions/")
    monkeypatch.setenv("MLOPS_SERVING_PINNED_MODELS", json.dumps({"credit-risk": arn}))
    settings = ServingSettings()
    assert settings.model_source == "champion"
    assert settings.champion_prefix == "/mlops/dev/champions/"
    assert settings.pinned_models == {"credit-risk": arn}


REGION = "ap-northeast-2"
GROUP = "credit-risk"
BUCKET = "artifacts"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        yield sagemaker, s3


def upload(s3: Any, tmp_path: Path, key: str, files: dict[str, bytes]) -> str:
    model_dir = tmp_path / key
    model_dir.mkdir(parents=True)
    for name, data in files.items():
        (model_dir / name).write_bytes(data)
    archive = pack_model(model_dir, tmp_path / f"{key}.tar.gz")
    s3.upload_file(str(archive), BUCKET, f"{key}/model.tar.gz")
    return f"s3://{BUCKET}/{key}/model.tar.gz"


def register(sagemaker: Any, url: str, status: str) -> str:
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [{"Image": "xgboost", "ModelDataUrl": url}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]
    )


ARTIFACT = {"model.onnx": b"onnx-bytes", "signature.json": b"{}", "model.ubj": b"native"}


def test_the_champion_is_the_newest_approved_package(aws: tuple[Any, Any], tmp_path: Path) -> None:
    sagemaker, s3 = aws
    url_1 = upload(s3, tmp_path, "v1", ARTIFACT)
    url_2 = upload(s3, tmp_path, "v2", {**ARTIFACT, "model.onnx": b"second"})
    register(sagemaker, url_1, "Approved")
    approved = register(sagemaker, url_2, "Approved")
    register(sagemaker, url_1, "PendingManualApproval")
    champion = RegistryChampion(sagemaker, s3, tmp_path / "cache")
    ref = champion.current(GROUP)
    assert ref is not None
    assert (ref.version, ref.package_arn, ref.source) == ("2", approved, url_2)
    directory = champion.fetch(ref)
    assert sorted(p.name for p in directory.iterdir()) == ["model.onnx", "signature.json"]
    assert (directory / "model.onnx").read_bytes() == b"second"
    assert champion.fetch(ref) == directory


def test_no_approved_package_means_no_champion(aws: tuple[Any, Any], tmp_path: Path) -> None:
    sagemaker, s3 = aws
    register(sagemaker, upload(s3, tmp_path, "v1", ARTIFACT), "PendingManualApproval")
    assert RegistryChampion(sagemaker, s3, tmp_path / "cache").current(GROUP) is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"model.ubj": b"native"}, "model.tar.gz has no ['model.onnx', 'signature.json']"),
        ({"model.onnx": b"x"}, "model.tar.gz has no ['signature.json']"),
    ],
)
def test_an_artifact_without_the_serving_files_is_refused(
    aws: tuple[Any, Any], tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    sagemaker, s3 = aws
    register(sagemaker, upload(s3, tmp_path, "v1", files), "Approved")
    champion = RegistryChampion(sagemaker, s3, tmp_path / "cache")
    ref = champion.current(GROUP)
    assert ref is not None
    with pytest.raises(ModelLoadError, match="credit-risk 1") as raised:
        champion.fetch(ref)
    assert message in str(raised.value)
    assert not (tmp_path / "cache" / GROUP / "1").exists()


def test_a_corrupt_archive_is_refused(aws: tuple[Any, Any], tmp_path: Path) -> None:
    sagemaker, s3 = aws
    s3.put_object(Bucket=BUCKET, Key="bad/model.tar.gz", Body=b"not gzip")
    register(sagemaker, f"s3://{BUCKET}/bad/model.tar.gz", "Approved")
    champion = RegistryChampion(sagemaker, s3, tmp_path / "cache")
    ref = champion.current(GROUP)
    assert ref is not None
    with pytest.raises(ModelLoadError, match="model.tar.gz is unreadable"):
        champion.fetch(ref)


def test_members_outside_the_archive_root_are_ignored(tmp_path: Path) -> None:
    """Only root-level regular files are taken: a nested or linked name cannot escape."""
    from serving.champion import _extract_artifact

    archive = tmp_path / "model.tar.gz"
    (tmp_path / "sig").write_bytes(b"{}")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "sig", arcname="../model.onnx")
        tar.add(tmp_path / "sig", arcname="signature.json")
    with pytest.raises(ModelLoadError, match=r"has no \['model.onnx'\]"):
        _extract_artifact(archive, tmp_path / "out", "m 1")
