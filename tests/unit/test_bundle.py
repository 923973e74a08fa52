from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from typer.testing import CliRunner

from mlops.bundle import (
    ArchiveLimits,
    manifest_schema,
    validate_archive,
    validate_directory,
    write_archive,
)
from mlops.bundle.archive import collect_directory
from mlops.bundle.cli import bundle_app
from mlops.bundle.upload import bundle_key, git_commit_of

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "pipelines" / "samples"
SAMPLE = SAMPLES / "credit_risk"


@pytest.fixture
def sample_files() -> dict[str, bytes]:
    return collect_directory(SAMPLE, ArchiveLimits())


def manifest_of(files: dict[str, bytes]) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(files["manifest.yaml"])
    return document


def with_manifest(files: dict[str, bytes], change: Callable[[dict[str, Any]], None]) -> bytes:
    manifest = manifest_of(files)
    change(manifest)
    return write_archive({**files, "manifest.yaml": yaml.safe_dump(manifest).encode()})


def raw_tar(entries: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None) -> bytes:
    """A .tar.gz with hand-made headers, for entries no honest packer would write."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info in entries:
            data = (payloads or {}).get(info.name)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_entry(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


# -- the schema and the samples --------------------------------------------------------------


def test_schema_is_draft_2020_12_and_closed_at_every_level() -> None:
    schema = manifest_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def objects(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for value in node:
                yield from objects(value)

    closed = [n.get("additionalProperties") for n in objects(schema)]
    # Every object is closed except `hyperparameters`, a map whose values must be scalars.
    assert closed.count(False) == len(closed) - 1
    assert {"type": ["string", "number", "boolean"]} in closed


@pytest.mark.parametrize("sample", ["credit_risk", "credit_risk_sklearn"])
def test_sample_bundles_are_valid(sample: str) -> None:
    report = validate_directory(SAMPLES / sample)
    assert report.errors == []
    assert report.manifest is not None
    source = report.manifest["input"]
    if sample == "credit_risk":  # the feature-service form; the other sample keeps a dataset
        assert source["feature_service"] == "credit_risk_v1"
        assert source["label"]["source"] == "credit_labels"
    else:
        assert source == {"dataset": "credit-risk/training_frame/"}
    assert report.manifest["resources"]["training"]["volume_gb"] == 30
    assert report.manifest["evaluation"]["report"] == "evaluation.json"
    assert {"manifest.yaml", "train.py", "preprocessing.py", "evaluation.py"} <= set(report.files)
    assert report.sha256 == hashlib.sha256(report.archive).hexdigest()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["model"].update(framework="lightgbm"),
         "model.framework: 'lightgbm' is not one of ['xgboost', 'sklearn']"),
        (lambda m: m["resources"]["training"].update(instance_count=-1),
         "resources.training.instance_count: -1 is less than the minimum of 1"),
        (lambda m: m["evaluation"].update(threshold="high"),
         "evaluation.threshold: 'high' is not of type 'number'"),
        (lambda m: m["evaluation"].update(direction="up"),
         "evaluation.direction: 'up' is not one of ['max', 'min']"),
        (lambda m: m["resources"]["evaluation"].update(max_runtime_seconds=10),
         "resources.evaluation.max_runtime_seconds: 10 is less than the minimum of 60"),
        (lambda m: m["resources"]["training"].update(instance_type="m5.large"),
         "resources.training.instance_type: 'm5.large' is not a SageMaker instance type"),
        (lambda m: m["model"].update(framework_version=3.0),
         "model.framework_version: 3.0 is not of type 'string' (quote it?)"),
        (lambda m: m["model"].update(framework_version="0.72"),
         "model.framework_version: '0.72' is not a supported xgboost container version"),
        (lambda m: m["model"].update(name="Credit_Risk"),
         "model.name: 'Credit_Risk' must be 2-30 characters"),
        (lambda m: m.update(extra=1), "(manifest): unknown field(s) extra"),
        (lambda m: m["hyperparameters"].update(sagemaker_program="x.py"),
         "hyperparameters: 'sagemaker_program' is not a usable hyperparameter name"),
        (lambda m: m["hyperparameters"].update(layers=[1, 2]),
         "hyperparameters.layers: [1, 2] is not of type 'string', 'number', 'boolean'"),
        (lambda m: m["entry_points"].update(training="../train.py"),
         "entry_points.training: '../train.py' must be a relative path to a .py file"),
        (lambda m: m["metric_definitions"][0].pop("regex"),
         "metric_definitions[0]: 'regex' is a required property"),
        (lambda m: m.update(input={}), "input: must have either `dataset`"),
        (lambda m: m.update(input={"dataset": "x/", "feature_service": "f"}),
         "input: use either `dataset` or `feature_service`"),
        (lambda m: m.update(input={"feature_service": "credit_risk_v1", "entity": "customer_id"}),
         "input: 'label' is a required property"),
        (lambda m: m["model"].update(requirements="missing.txt"),
         "model.requirements: missing.txt is not in the bundle"),
    ],
)  # fmt: skip
def test_manifest_errors_name_the_field_and_the_problem(
    sample_files: dict[str, bytes], change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    report = validate_archive(with_manifest(sample_files, change))
    assert not report.ok
    assert report.manifest is None
    assert any(e.startswith(expected) for e in report.errors), report.errors


def test_all_manifest_errors_are_reported_at_once(sample_files: dict[str, bytes]) -> None:
    def break_three(m: dict[str, Any]) -> None:
        m["resources"]["training"]["instance_count"] = -1
        m["evaluation"]["direction"] = "up"
        m["entry_points"]["evaluation"] = "missing.py"

    report = validate_archive(with_manifest(sample_files, break_three))
    assert len(report.errors) == 3
    assert "entry_points.evaluation: missing.py is not in the bundle" in report.errors


def test_feature_service_input_is_valid_in_the_schema(sample_files: dict[str, bytes]) -> None:
    feature_input = {
        "feature_service": "credit_risk_v1", "entity": "customer_id",
        "label": {"source": "credit_labels", "column": "defaulted_90d",
                  "timestamp_column": "event_timestamp"},
    }  # fmt: skip
    report = validate_archive(with_manifest(sample_files, lambda m: m.update(input=feature_input)))
    assert report.errors == []
    assert report.manifest is not None
    assert report.manifest["input"] == feature_input


@pytest.mark.parametrize(
    ("files_change", "expected"),
    [
        (lambda f: f.pop("manifest.yaml"), "no manifest: the bundle root must contain"),
        (lambda f: f.update({"manifest.yaml": b"model: [\n  name: x\n"}),
         "manifest.yaml: not valid YAML (line"),
        (lambda f: f.update({"manifest.json": b"{}"}), "more than one manifest at the bundle root"),
        (lambda f: f.update({"train.py": b"def train(:\n    pass\n"}),
         "entry_points.training: train.py does not compile: invalid syntax (line 1)"),
        (lambda f: f.pop("evaluation.py"),
         "entry_points.evaluation: evaluation.py is not in the bundle"),
    ],
)  # fmt: skip
def test_bundle_content_errors(
    sample_files: dict[str, bytes], files_change: Callable[[dict[str, bytes]], Any], expected: str
) -> None:
    files_change(sample_files)
    report = validate_archive(write_archive(sample_files))
    assert any(e.startswith(expected) for e in report.errors), report.errors


def test_a_bundle_wrapped_in_a_folder_gets_a_hint(sample_files: dict[str, bytes]) -> None:
    report = validate_archive(
        write_archive({f"credit_risk/{k}": v for k, v in sample_files.items()})
    )
    assert report.errors[0].startswith("manifest not at the bundle root (found credit_risk/")
    assert "tar -C credit_risk -czf bundle.tar.gz ." in report.errors[0]


def test_json_manifest_and_dot_slash_entries_are_accepted(sample_files: dict[str, bytes]) -> None:
    manifest = manifest_of(sample_files)
    files = {k: v for k, v in sample_files.items() if k != "manifest.yaml"}
    files["manifest.json"] = json.dumps(manifest).encode()
    entries = [file_entry(f"./{name}", data) for name, data in sorted(files.items())]
    report = validate_archive(raw_tar(entries, {f"./{k}": v for k, v in files.items()}))
    assert report.errors == []
    assert "train.py" in report.files


def test_expected_model_must_match(sample_files: dict[str, bytes]) -> None:
    report = validate_archive(write_archive(sample_files), expected_model="fraud")
    assert report.errors == [
        "model.name: 'credit-risk' does not match the model 'fraud' the bundle was uploaded "
        "for (bundles/fraud/...)"
    ]


# -- archive safety ----------------------------------------------------------------------------


def symlink(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([file_entry("../evil.py", b"x")], "../evil.py: '..' is not allowed in bundle paths"),
        ([file_entry("a/../../evil.py", b"x")], "a/../../evil.py: '..' is not allowed"),
        ([file_entry("/etc/evil.py", b"x")], "/etc/evil.py: absolute paths are not allowed"),
        ([symlink("train.py", "/etc/passwd")], "train.py: is a symbolic link (to /etc/passwd)"),
        ([symlink("x.py", "train.py", tarfile.LNKTYPE)], "x.py: is a hard link (to train.py)"),
        ([device("null")], "null: is a device file; only regular files and directories"),
        ([file_entry("a.py", b"1"), file_entry("a.py", b"2")], "a.py: appears more than once"),
    ],
)  # fmt: skip
def test_unsafe_archive_entries_are_refused(entries: list[tarfile.TarInfo], expected: str) -> None:
    payloads = {e.name: b"x" * e.size for e in entries if e.isfile()}
    report = validate_archive(raw_tar(entries, payloads))
    assert not report.ok
    assert any(e.startswith(expected) for e in report.errors), report.errors
    assert report.manifest is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"hello, world", "not a gzip-compressed tar archive: upload a .tar.gz"),
        (b"PK\x03\x04rest", "not a gzip-compressed tar archive (this looks like a zip file)"),
        (gzip.compress(b"not a tar at all" * 100), "not a valid tar.gz archive: invalid header"),
        (b"\x1f\x8b\x08\x00garbage", "not a valid tar.gz archive: Compressed file ended"),
    ],
)
def test_non_archives_are_refused(data: bytes, expected: str) -> None:
    errors = validate_archive(data).errors
    assert len(errors) == 1
    assert errors[0].startswith(expected), errors


def test_size_and_count_limits(sample_files: dict[str, bytes]) -> None:
    archive = write_archive(sample_files)
    small = ArchiveLimits(max_bytes=len(archive) - 1)
    assert validate_archive(archive, limits=small).errors[0].startswith("archive too large")
    few = ArchiveLimits(max_files=3)
    assert validate_archive(archive, limits=few).errors == [
        "too many files: more than the limit of 3"
    ]


def test_a_zip_bomb_is_stopped_while_streaming() -> None:
    """100 MB of zeros compress to ~100 kB; reading stops at the 1 MB limit."""
    bomb = raw_tar([file_entry("big.bin", b"\0" * (100 * 1024 * 1024))],
                   {"big.bin": b"\0" * (100 * 1024 * 1024)})  # fmt: skip
    limits = ArchiveLimits(max_bytes=1024 * 1024)
    assert len(bomb) < limits.max_bytes
    report = validate_archive(bomb, limits=limits)
    assert report.errors == ["files too large: more than 1 MB uncompressed (reached at big.bin)"]
    assert report.files == {}


def test_a_forged_pax_header_cannot_exhaust_memory() -> None:
    """A pax header claiming gigabytes is cut off by the decompressed-byte budget."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 6 * 1024**3
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as compressed:
        compressed.write(header.tobuf(format=tarfile.USTAR_FORMAT))
        for _ in range(64):
            compressed.write(b"9 a=b\n" * (1024 * 1024 // 6))
    report = validate_archive(buffer.getvalue(), limits=ArchiveLimits(max_bytes=1024 * 1024))
    assert report.errors == ["archive expands beyond the limit of 1 MB uncompressed"]


# -- packaging -------------------------------------------------------------------------------


def test_packaging_is_deterministic_and_skips_caches(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(SAMPLE, bundle)
    (bundle / "__pycache__").mkdir(exist_ok=True)
    (bundle / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    (bundle / "helpers").mkdir()
    (bundle / "helpers" / "util.py").write_text("X = 1\n")
    first = validate_directory(bundle)
    (bundle / "train.py").touch()  # a new mtime changes nothing
    second = validate_directory(bundle)
    assert first.archive == second.archive
    assert first.sha256 == second.sha256
    with tarfile.open(fileobj=io.BytesIO(first.archive), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "helpers/util.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o644)}


def test_symlinks_in_a_folder_are_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(SAMPLE, bundle)
    (bundle / "link.py").symlink_to(bundle / "train.py")
    report = validate_directory(bundle)
    assert report.errors == ["link.py: symbolic links are not packaged; copy the file instead"]


def test_bundle_key_layout() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 11, 21, 15, 16, 29, tzinfo=UTC)
    assert bundle_key("credit-risk", "1a2b3c4d" + "0" * 56, when) == (
        "bundles/credit-risk/credit-risk-20261121151629-1a2b3c4d.tar.gz"
    )


def test_git_commit_outside_a_work_tree_is_unknown(tmp_path: Path) -> None:
    assert git_commit_of(tmp_path) == "unknown"


# -- the CLI ---------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_validate_ok_prints_a_summary() -> None:
    result = runner.invoke(bundle_app, ["validate", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK  {SAMPLE}")
    assert "credit-risk (xgboost 3.0-5, owner credit-scoring)" in result.output
    assert "preprocessing.py -> train.py -> evaluation.py" in result.output
    assert "auc (higher is better) >= 0.7 to register" in result.output


def test_cli_validate_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(SAMPLE, bundle)
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text())
    manifest["resources"]["training"]["instance_count"] = -1
    manifest["model"]["framework"] = "lightgbm"
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    result = runner.invoke(bundle_app, ["validate", str(bundle)])
    assert result.exit_code == 1
    assert "INVALID" in result.output and "2 problems" in result.output
    assert "resources.training.instance_count: -1 is less than the minimum of 1" in result.output
    assert "model.framework: 'lightgbm' is not one of" in result.output


@pytest.fixture
def code_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MLOPS_CODE_BUCKET", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket="code", CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"}
        )
        s3.put_bucket_versioning(Bucket="code", VersioningConfiguration={"Status": "Enabled"})
        yield s3


def test_cli_upload_puts_the_validated_archive_with_provenance(code_bucket: Any) -> None:
    result = runner.invoke(
        bundle_app,
        ["upload", str(SAMPLE), "--model", "credit-risk", "--bucket", "code",
         "--git-commit", "abc1234"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [obj] = code_bucket.list_object_versions(Bucket="code")["Versions"]
    key = obj["Key"]
    assert key.startswith("bundles/credit-risk/credit-risk-") and key.endswith(".tar.gz")
    body = code_bucket.get_object(Bucket="code", Key=key)
    data = body["Body"].read()
    sha = hashlib.sha256(data).hexdigest()
    assert key.endswith(f"-{sha[:8]}.tar.gz")
    assert body["Metadata"]["git-commit"] == "abc1234"
    assert body["Metadata"]["bundle-sha256"] == sha
    assert body["Metadata"]["uploaded-by"]
    assert f"uploaded s3://code/{key}" in result.output
    assert obj["VersionId"] in result.output
    assert data == validate_directory(SAMPLE).archive


def test_cli_upload_reads_the_bucket_from_the_environment(
    code_bucket: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLOPS_CODE_BUCKET", "code")
    bundle = tmp_path / "bundle"
    shutil.copytree(SAMPLE, bundle)
    result = runner.invoke(bundle_app, ["upload", str(bundle), "--model", "credit-risk"])
    assert result.exit_code == 0, result.output
    [obj] = code_bucket.list_objects_v2(Bucket="code")["Contents"]
    metadata = code_bucket.head_object(Bucket="code", Key=obj["Key"])["Metadata"]
    assert metadata["git-commit"] == "unknown"  # tmp_path is outside any git work tree


def test_cli_upload_refuses_invalid_bundles_and_missing_buckets(code_bucket: Any) -> None:
    mismatch = runner.invoke(
        bundle_app, ["upload", str(SAMPLE), "--model", "fraud", "--bucket", "code"]
    )
    assert mismatch.exit_code == 1
    assert "does not match the model 'fraud'" in mismatch.output
    assert "nothing was uploaded" in mismatch.output
    no_bucket = runner.invoke(bundle_app, ["upload", str(SAMPLE), "--model", "credit-risk"])
    assert no_bucket.exit_code == 2
    assert "MLOPS_CODE_BUCKET" in no_bucket.output
    assert "Contents" not in code_bucket.list_objects_v2(Bucket="code")


def test_upload_bundle_is_the_cli_path_as_a_function(code_bucket: Any) -> None:
    from mlops.bundle.upload import InvalidBundleError, upload_bundle

    result = upload_bundle(SAMPLE, model="credit-risk", bucket="code", progress=False)
    head = code_bucket.head_object(Bucket="code", Key=result.key, VersionId=result.version_id)
    assert head["Metadata"]["bundle-sha256"] == result.sha256
    assert result.uri == f"s3://code/{result.key}"
    with pytest.raises(InvalidBundleError) as caught:
        upload_bundle(SAMPLE, model="fraud", bucket="code", progress=False)
    assert "does not match the model 'fraud'" in caught.value.errors[0]
