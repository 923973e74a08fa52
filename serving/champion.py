"""Where each model's champion comes from, and fetching its artifact.

`RegistryChampion`: the newest *Approved* package of the model's SageMaker model package group
(the same rule the training gate uses to find the model a candidate must beat); its
`ModelDataUrl` is the training job's model.tar.gz, of which only `model.onnx` and
`signature.json` are unpacked. Works against AWS, the local engine and LocalStack (the clients
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from serving.model import ONNX_FILE, SIGNATURE_FILE, ModelLoadError

_ARTIFACT_FILES = (ONNX_FILE, SIGNATURE_FILE)


@dataclass(frozen=True)
class ChampionRef:
    """A model version that should be served; `fetch` puts its files in a directory."""

    model: str
    version: str
    package_arn: str | None
    source: str


class ChampionSource(Protocol):
    def current(self, model: str) -> ChampionRef | None:
        """The version to serve now, or None when the model has no approved version."""

    def fetch(self, ref: ChampionRef) -> Path:
        """A directory holding `ref`'s model.onnx and signature.json."""


class RegistryChampion:
    def __init__(self, sagemaker: Any, s3: Any, cache_dir: Path) -> None:
        self._sagemaker = sagemaker
        self._s3 = s3
        self._cache = cache_dir

    def current(self, model: str) -> ChampionRef | None:
        listed = self._sagemaker.list_model_packages(
            ModelPackageGroupName=model,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"]
        if not listed:
            return None
        arn = str(listed[0]["ModelPackageArn"])
        package = self._sagemaker.describe_model_package(ModelPackageName=arn)
        url = str(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])
        version = str(package.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1])
        return ChampionRef(model, version, arn, url)

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
