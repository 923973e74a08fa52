"""Where each model's champion comes from, and fetching its artifact.

`PointerChampion` (what the stacks configure): the version the model's *champion pointer* names
-- the SSM parameter `<prefix><model>` holding an `mlops.deployments.Champion`, which the
approval hook writes only after a rollout succeeded. No parameter: no champion yet.

`PinnedChampion`: the models in `MLOPS_SERVING_PINNED_MODELS` serve exactly the model package
pinned to them (the approval hook pins the Lambda versions it publishes, so CodeDeploy can shift
traffic between two versions that each serve one model version); every other model comes from
the source it wraps. A pinned package must still be **Approved** when it is loaded: one that was
rejected since (or that belongs to another model's group) is refused with a `ModelLoadError`
naming why, so a rolled-back version never serves again from an old published version.

`RegistryChampion`: the newest *Approved* package of the model's SageMaker model package group
(the same rule the training gate uses to find the model a candidate must beat).

All three download the package's `ModelDataUrl` (the training job's model.tar.gz) through one
`ArtifactCache`, which unpacks only `model.onnx` and `signature.json` into
`<cache>/<model>/<version>/`. They work against AWS, the local engine and LocalStack (the clients
take an endpoint URL).

`DirectoryChampion`: `<root>/<model>/model.onnx` + `signature.json` on disk, versioned by the
hash of both files' content so replacing either is a new version (benchmarks, tests,
bring-your-own-model).
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from serving.model import ONNX_FILE, SIGNATURE_FILE, ModelLoadError

if TYPE_CHECKING:
    from mlops.deployments import ChampionPointer

_ARTIFACT_FILES = (ONNX_FILE, SIGNATURE_FILE)
APPROVED = "Approved"


@dataclass(frozen=True)
class ChampionRef:
    """A model version that should be served; `fetch` puts its files in a directory."""

    model: str
    version: str
    package_arn: str | None
    source: str


class ChampionSource(Protocol):
    def current(self, model: str) -> ChampionRef | None:
        """The version to serve now, or None when the model has no champion yet."""

    def fetch(self, ref: ChampionRef) -> Path:
        """A directory holding `ref`'s model.onnx and signature.json."""


class ArtifactCache:
    """`<cache>/<model>/<version>/` holding a version's two serving files, downloaded once.

    `ref.source` must be the s3:// URL of a model.tar.gz; only root-level regular files named
    model.onnx and signature.json are taken from it. A version already unpacked is not
    downloaded again (versions are immutable)."""

    def __init__(self, s3: Any, cache_dir: Path) -> None:
        self._s3 = s3
        self._cache = cache_dir

    def fetch(self, ref: ChampionRef) -> Path:
        target = self._cache / ref.model / ref.version
        if all((target / name).is_file() for name in _ARTIFACT_FILES):
            return target
        parts = urlsplit(ref.source)
        if parts.scheme != "s3" or not parts.netloc:
            raise ModelLoadError(
                f"{ref.model} {ref.version}: ModelDataUrl {ref.source!r} is not s3"
            )
        self._cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._cache) as scratch:
            archive = Path(scratch) / "model.tar.gz"
            self._s3.download_file(parts.netloc, parts.path.lstrip("/"), str(archive))
            staged = Path(scratch) / "files"
            _extract_artifact(archive, staged, f"{ref.model} {ref.version} ({ref.source})")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
        return target


def package_ref(model: str, arn: str, package: Mapping[str, Any]) -> ChampionRef:
    """The ref of a DescribeModelPackage answer: its version number and ModelDataUrl."""
    url = str(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
    version = str(package.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1])
    return ChampionRef(model, version, arn, url)


class RegistryChampion:
    def __init__(self, sagemaker: Any, s3: Any, cache_dir: Path) -> None:
        self._sagemaker = sagemaker
        self._artifacts = ArtifactCache(s3, cache_dir)

    def current(self, model: str) -> ChampionRef | None:
        listed = self._sagemaker.list_model_packages(
            ModelPackageGroupName=model,
            ModelApprovalStatus=APPROVED,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"]
        if not listed:
            return None
        arn = str(listed[0]["ModelPackageArn"])
        return package_ref(model, arn, self._sagemaker.describe_model_package(ModelPackageName=arn))

    def fetch(self, ref: ChampionRef) -> Path:
        return self._artifacts.fetch(ref)


class PointerChampion:
    """The version `<prefix><model>` names (see the module doc); its version is the pointer's
    version number, so the same model version has the same version string in every source."""

    def __init__(self, pointer: ChampionPointer, s3: Any, cache_dir: Path) -> None:
        self._pointer = pointer
        self._artifacts = ArtifactCache(s3, cache_dir)

    def current(self, model: str) -> ChampionRef | None:
        try:
            champion = self._pointer.get(model)
        except (ValueError, TypeError) as exc:  # not JSON, or not a Champion
            raise ModelLoadError(
                f"{model}: champion pointer {self._pointer.name(model)} is unreadable: {exc}"
            ) from exc
        if champion is None:
            return None
        return ChampionRef(
            model, str(champion.version), champion.package_arn, champion.model_data_url
        )

    def fetch(self, ref: ChampionRef) -> Path:
        return self._artifacts.fetch(ref)


class PinnedChampion:
    """`pins` (model -> model package ARN) serve that package; other models ask `fallback`.

    `current` describes the pinned package on every call (one DescribeModelPackage), `fetch`
    refuses it unless it is Approved and in the model's own group (see the module doc)."""

    def __init__(
        self,
        pins: Mapping[str, str],
        sagemaker: Any,
        s3: Any,
        cache_dir: Path,
        *,
        fallback: ChampionSource,
    ) -> None:
        self._pins = dict(pins)
        self._sagemaker = sagemaker
        self._artifacts = ArtifactCache(s3, cache_dir)
        self._fallback = fallback
        self._refusals: dict[str, str] = {}  # package ARN -> why it may not serve

    def current(self, model: str) -> ChampionRef | None:
        arn = self._pins.get(model)
        if arn is None:
            return self._fallback.current(model)
        package = self._sagemaker.describe_model_package(ModelPackageName=arn)
        refusal = _pin_refusal(model, package)
        if refusal is None:
            self._refusals.pop(arn, None)
        else:
            self._refusals[arn] = refusal
        return package_ref(model, arn, package)

    def fetch(self, ref: ChampionRef) -> Path:
        if ref.model not in self._pins:
            return self._fallback.fetch(ref)
        refusal = self._refusals.get(ref.package_arn or "")
        if refusal is not None:
            raise ModelLoadError(f"{ref.model} {ref.version}: {refusal}")
        return self._artifacts.fetch(ref)


def _pin_refusal(model: str, package: Mapping[str, Any]) -> str | None:
    """Why a pinned package may not serve `model`, or None when it may."""
    group = str(package.get("ModelPackageGroupName", ""))
    if group.lower() != model.lower():
        return (
            f"pinned package {package['ModelPackageArn']} is not a version of {model!r} "
            f"(its group: {group or 'none'})"
        )
    status = package.get("ModelApprovalStatus")
    if status != APPROVED:
        return f"pinned package {package['ModelPackageArn']} is {status}, not {APPROVED}"
    return None


def _extract_artifact(archive: Path, directory: Path, where: str) -> None:
    """Only the two serving files, only as regular files at the archive root."""
    directory.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            missing = [name for name in _ARTIFACT_FILES if name not in members]
            if missing:
                raise ModelLoadError(f"{where}: model.tar.gz has no {missing}")
            for name in _ARTIFACT_FILES:
                source = tar.extractfile(members[name])
                if source is None:
                    raise ModelLoadError(f"{where}: cannot read {name} from model.tar.gz")
                with source, (directory / name).open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, OSError) as exc:
        raise ModelLoadError(f"{where}: model.tar.gz is unreadable: {exc}") from exc


class DirectoryChampion:
    def __init__(self, root: Path) -> None:
        self._root = root

    def current(self, model: str) -> ChampionRef | None:
        directory = self._root / model
        onnx = directory / ONNX_FILE
        if not onnx.is_file() or not (directory / SIGNATURE_FILE).is_file():
            return None
        content = onnx.read_bytes() + b"\0" + (directory / SIGNATURE_FILE).read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:12]
        return ChampionRef(model, f"sha256-{digest}", None, str(directory))

    def fetch(self, ref: ChampionRef) -> Path:
        return Path(ref.source)
