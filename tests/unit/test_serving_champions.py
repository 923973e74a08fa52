"""The champion pointer and pinned versions as serving sources, against the emulator's SSM,
SageMaker registry and S3 (moto's server, reached through endpoint URLs as on AWS)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from features.redis_plan import RedisPlan
from localaws.emulator import Emulator, running_emulator
from mlops.deployments import Champion, ChampionPointer, now_iso
from pipelines.sample_model import pack_model
from serving.champion import ChampionRef, PinnedChampion, PointerChampion, RegistryChampion
from serving.manager import ModelManager
from serving.model import ModelLoadError
from serving.runtime import UnservedPinError, champion_source
from serving.settings import ServingSettings
from serving.spec import ModelSpec

pytestmark = pytest.mark.unit

PREFIX = "/mlops/test/champions/"
BUCKET = "artifacts"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        emu.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": emu.region}
        )
        yield emu


@dataclass(frozen=True)
class Registry:
    """One model package group in the emulator, with helpers to register and point."""

    emulator: Emulator
    group: str
    workdir: Path

    def register(self, onnx: bytes, status: str = "Approved") -> tuple[str, str]:
        """A package whose model.tar.gz holds `onnx`: (its ARN, its ModelDataUrl)."""
        key = f"{self.group}/{uuid.uuid4().hex[:8]}"
        files = self.workdir / key
        files.mkdir(parents=True)
        (files / "model.onnx").write_bytes(onnx)
        (files / "signature.json").write_bytes(b"{}")
        archive = pack_model(files, files / "model.tar.gz")
        self.emulator.client("s3").upload_file(str(archive), BUCKET, f"{key}/model.tar.gz")
        url = f"s3://{BUCKET}/{key}/model.tar.gz"
        arn = self.emulator.client("sagemaker").create_model_package(
            ModelPackageGroupName=self.group, ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [{"Image": "xgboost", "ModelDataUrl": url}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]  # fmt: skip
        return str(arn), url

    def point(self, version: int, arn: str, url: str) -> None:
        """Write the pointer as the approval hook does."""
        champion = Champion(self.group, version, arn, url, since=now_iso())
        self.pointer().put(champion)

    def pointer(self) -> ChampionPointer:
        return ChampionPointer(PREFIX, ssm=self.emulator.client("ssm"))

    def set_status(self, arn: str, status: str) -> None:
        self.emulator.client("sagemaker").update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus=status
        )


@pytest.fixture
def registry(emulator: Emulator, tmp_path: Path) -> Registry:
    """A fresh group per test (the emulator lives for the module)."""
    group = f"model-{uuid.uuid4().hex[:8]}"
    emulator.client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
    return Registry(emulator, group, tmp_path)


def pointer_source(registry: Registry, cache: Path) -> PointerChampion:
    return PointerChampion(registry.pointer(), registry.emulator.client("s3"), cache)


def pinned_source(registry: Registry, pins: dict[str, str], cache: Path) -> PinnedChampion:
    emulator = registry.emulator
    return PinnedChampion(
        pins, emulator.client("sagemaker"), emulator.client("s3"), cache,
        fallback=pointer_source(registry, cache),
    )  # fmt: skip


def test_without_a_pointer_a_model_has_no_champion(registry: Registry, tmp_path: Path) -> None:
    registry.register(b"approved but never rolled out")
    assert pointer_source(registry, tmp_path / "cache").current(registry.group) is None


def test_the_pointer_decides_not_the_newest_approval(registry: Registry, tmp_path: Path) -> None:
    first = registry.register(b"first")
    registry.register(b"second")  # approved, newer, but no rollout made it champion
    registry.point(1, *first)
    source = pointer_source(registry, tmp_path / "cache")
    ref = source.current(registry.group)
    assert ref == ChampionRef(registry.group, "1", first[0], first[1])
    directory = source.fetch(ref)
    assert directory == tmp_path / "cache" / registry.group / "1"
    assert (directory / "model.onnx").read_bytes() == b"first"
    registry_ref = RegistryChampion(
        registry.emulator.client("sagemaker"), registry.emulator.client("s3"), tmp_path / "cache"
    ).current(registry.group)
    assert registry_ref is not None and registry_ref.version == "2"


def test_a_moved_pointer_is_the_next_champion(registry: Registry, tmp_path: Path) -> None:
    first, second = registry.register(b"first"), registry.register(b"second")
    registry.point(1, *first)
    source = pointer_source(registry, tmp_path / "cache")
    assert source.current(registry.group) == ChampionRef(registry.group, "1", *first)
    registry.point(2, *second)
    ref = source.current(registry.group)
    assert ref == ChampionRef(registry.group, "2", *second)
    assert (source.fetch(ref) / "model.onnx").read_bytes() == b"second"


def test_an_unreadable_pointer_names_the_parameter(registry: Registry, tmp_path: Path) -> None:
    registry.emulator.client("ssm").put_parameter(
        Name=f"{PREFIX}{registry.group}", Value='{"model": "x"}', Type="String"
    )
    with pytest.raises(ModelLoadError, match=f"champion pointer {PREFIX}{registry.group} is"):
        pointer_source(registry, tmp_path / "cache").current(registry.group)


def test_a_pinned_model_serves_its_package_and_others_follow_the_pointer(
    registry: Registry, emulator: Emulator, tmp_path: Path
) -> None:
    first, second = registry.register(b"first"), registry.register(b"second")
    registry.point(1, *first)
    other = Registry(emulator, f"other-{uuid.uuid4().hex[:8]}", tmp_path)
    emulator.client("sagemaker").create_model_package_group(ModelPackageGroupName=other.group)
    other_arn, other_url = other.register(b"other")
    other.point(1, other_arn, other_url)
    source = pinned_source(registry, {registry.group: second[0]}, tmp_path / "cache")
    ref = source.current(registry.group)
    assert ref == ChampionRef(registry.group, "2", *second)
    assert (source.fetch(ref) / "model.onnx").read_bytes() == b"second"
    unpinned = source.current(other.group)
    assert unpinned == ChampionRef(other.group, "1", other_arn, other_url)
    assert (source.fetch(unpinned) / "model.onnx").read_bytes() == b"other"


@pytest.mark.parametrize("status", ["Rejected", "PendingManualApproval"])
def test_a_pinned_package_that_is_not_approved_is_refused(
    registry: Registry, tmp_path: Path, status: str
) -> None:
    arn, _ = registry.register(b"pinned")
    registry.set_status(arn, status)
    source = pinned_source(registry, {registry.group: arn}, tmp_path / "cache")
    ref = source.current(registry.group)
    assert ref is not None and ref.version == "1"
    with pytest.raises(ModelLoadError, match=f"pinned package {arn} is {status}, not Approved"):
        source.fetch(ref)
    assert not (tmp_path / "cache" / registry.group).exists()
    registry.set_status(arn, "Approved")
    ref = source.current(registry.group)
    assert ref is not None
    assert (source.fetch(ref) / "model.onnx").read_bytes() == b"pinned"


def test_the_manager_reports_a_refused_pin_and_serves_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    arn, _ = registry.register(b"pinned", status="Rejected")
    source = pinned_source(registry, {registry.group: arn}, tmp_path / "cache")
    manager = ModelManager({registry.group: _spec(registry.group)}, source)
    result = manager.refresh()
    assert "is Rejected, not Approved" in result.failed[registry.group]
    assert manager.get(registry.group) is None
    assert "is Rejected" in manager.rejected[registry.group]


def test_a_package_of_another_group_is_refused(
    registry: Registry, emulator: Emulator, tmp_path: Path
) -> None:
    other = Registry(emulator, f"other-{uuid.uuid4().hex[:8]}", tmp_path)
    emulator.client("sagemaker").create_model_package_group(ModelPackageGroupName=other.group)
    foreign, _ = other.register(b"someone else's model")
    source = pinned_source(registry, {registry.group: foreign}, tmp_path / "cache")
    ref = source.current(registry.group)
    assert ref is not None
    with pytest.raises(ModelLoadError, match=f"is not a version of '{registry.group}'"):
        source.fetch(ref)


def _settings(emulator: Emulator, **values: Any) -> ServingSettings:
    return ServingSettings(
        spec="{}", redis_url="redis://localhost:6379/0", region=emulator.region,
        endpoint_url=emulator.endpoint_url, **values,
    )  # fmt: skip


def test_the_settings_build_the_pointer_source_and_wrap_it_with_pins(
    registry: Registry, emulator: Emulator, tmp_path: Path
) -> None:
    first, second = registry.register(b"first"), registry.register(b"second")
    registry.point(1, *first)
    common = {"model_source": "champion", "champion_prefix": PREFIX,
              "model_cache_dir": str(tmp_path / "cache")}  # fmt: skip
    following = champion_source(_settings(emulator, **common), [registry.group])
    assert isinstance(following, PointerChampion)
    assert following.current(registry.group) == ChampionRef(registry.group, "1", *first)
    pins = {registry.group: second[0]}
    pinned = champion_source(_settings(emulator, pinned_models=pins, **common), [registry.group])
    assert isinstance(pinned, PinnedChampion)
    assert pinned.current(registry.group) == ChampionRef(registry.group, "2", *second)


def test_a_pin_for_a_model_the_app_does_not_serve_is_refused(emulator: Emulator) -> None:
    arn = f"arn:aws:sagemaker:{emulator.region}:123456789012:model-package/fraud/3"
    settings = _settings(
        emulator, model_source="champion", champion_prefix=PREFIX, pinned_models={"fraud": arn}
    )
    with pytest.raises(UnservedPinError, match=r"pins \['fraud'\], which this app does not"):
        champion_source(settings, ["credit-risk"])


def _spec(name: str) -> ModelSpec:
    """A spec the manager accepts; nothing here reaches the point of checking features."""
    return ModelSpec(name, "credit_risk_v1", "customer_id", (),
                     RedisPlan("customer_id", b"k", b"s", ()))  # fmt: skip
