"""What the materialization job's code and wheelhouse assets contain and how they are built.

The wheelhouse tests run the real `pip download` offline, against small wheels written here
(`PIP_NO_INDEX` + `PIP_FIND_LINKS`), so they need no network.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import stacks.constructs.materialization_assets as assets
from stacks.constructs.materialization import (
    UNPACK_AND_LAUNCH,
    image_repository_arn,
    job_name_prefix,
    processing_image,
)
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit
HOST = f"{sys.version_info.major}.{sys.version_info.minor}"
# A target Python whose markers differ from the interpreter running pip.
TARGET = "3.10" if HOST != "3.10" else "3.12"


def test_code_asset_holds_the_launcher_the_features_package_and_requirements(
    tmp_path: Path,
) -> None:
    assets.stage_code(tmp_path)
    staged = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    features = {
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "features").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert staged == features | {
        "_mlops_launch.py", "requirements.txt", "pipelines/__init__.py",
        "pipelines/sample_data.py",
    }  # fmt: skip
    assert "features/materialize_entry.py" in staged
    assert not any(name.endswith((".pyc", ".txt")) for name in staged - {"requirements.txt"})
    launcher = (REPO_ROOT / "pipelines/container/launch.py").read_bytes()
    assert (tmp_path / "_mlops_launch.py").read_bytes() == launcher
    lines = (tmp_path / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == list(assets.JOB_REQUIREMENTS)


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_requirements_pin_the_locked_versions_for_each_python(python: str) -> None:
    """Each line that applies to `python` pins what uv.lock resolves for that Python."""
    locked = dict(pin.split("==") for pin in assets.lock_constraints(python))
    environment = assets.marker_environment(python)
    applying = assets.for_target(assets.JOB_REQUIREMENTS, environment)
    assert {Requirement(line).name.lower() for line in applying} == {
        Requirement(line).name.lower() for line in assets.JOB_REQUIREMENTS
    }
    for line in applying:
        requirement = Requirement(line)
        (pin,) = requirement.specifier
        assert pin.operator == "==", line
        assert locked[requirement.name.lower()] == pin.version, (python, line)


def test_lock_constraints_take_the_version_resolved_for_the_python(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(
        "version = 1\n"
        '[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { editable = "." }\n'
        '[[package]]\nname = "numpy"\nversion = "2.4.6"\nsource = { registry = "r" }\n'
        "resolution-markers = [\"python_full_version < '3.12'\"]\n"
        '[[package]]\nname = "numpy"\nversion = "2.5.5"\nsource = { registry = "r" }\n'
        "resolution-markers = [\"python_full_version >= '3.13'\", "
        "\"python_full_version == '3.12.*'\"]\n"
        '[[package]]\nname = "redis"\nversion = "7.4.1"\nsource = { registry = "r" }\n'
    )
    assert assets.lock_constraints("3.11", lock) == ["numpy==2.4.6", "redis==7.4.1"]
    assert assets.lock_constraints("3.12", lock) == ["numpy==2.5.5", "redis==7.4.1"]


def test_code_hash_follows_the_staged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ("features/__init__.py", "features/materialize_entry.py", "pipelines/__init__.py",
                "pipelines/sample_data.py", "pipelines/container/launch.py"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"# {rel}\n")
    monkeypatch.setattr(assets, "REPO_ROOT", tmp_path)
    before = assets.code_hash()
    assert assets.code_hash() == before
    (tmp_path / "features" / "notes.md").write_text("not staged")
    (tmp_path / "features" / "__pycache__").mkdir()
    (tmp_path / "features" / "__pycache__" / "x.py").write_text("cache")
    assert assets.code_hash() == before
    (tmp_path / "features" / "materialize_entry.py").write_text("# changed\n")
    assert assets.code_hash() != before
    assert assets.code_hash(("feast==0.67.0",)) != assets.code_hash()


def test_code_asset_requires_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel in ("features/__init__.py", "pipelines/__init__.py", "pipelines/sample_data.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    monkeypatch.setattr(assets, "REPO_ROOT", tmp_path)
    with pytest.raises(assets.AssetStagingError, match="features/materialize_entry.py"):
        assets.code_files()


def test_pip_download_command_asks_for_binary_wheels_of_the_image(tmp_path: Path) -> None:
    command = assets.pip_download_command(["feast==0.67.0", "redis==7.4.1"], tmp_path, "3.12")
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--implementation") + 1] == "cp"
    assert command[command.index("--dest") + 1] == str(tmp_path)
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms[0] == "manylinux_2_28_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(platforms)
    assert command[-2:] == ["feast==0.67.0", "redis==7.4.1"]
    assert "--no-deps" not in command and "--constraint" not in command
    pinned = assets.pip_download_command(
        ["x"], tmp_path, "3.12", constraints=tmp_path / "c.txt", no_deps=True
    )
    assert pinned[pinned.index("--constraint") + 1] == str(tmp_path / "c.txt")
    assert "--no-deps" in pinned


def _wheel(directory: Path, name: str, version: str, *requires: str) -> None:
    """A minimal pure-Python wheel whose metadata declares `requires`."""
    info = f"{name}-{version}.dist-info"
    metadata = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", "\n".join(metadata) + "\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n")  # fmt: skip
        wheel.writestr(f"{info}/RECORD", "")


def test_missing_requirements_evaluates_markers_and_extras_for_the_target(tmp_path: Path) -> None:
    _wheel(tmp_path, "alpha", "1.0", f'beta>=2; python_version < "{TARGET}.1"',
           f'gamma; python_version > "{TARGET}"', 'delta; extra == "fast"',
           'epsilon; extra == "slow"')  # fmt: skip
    _wheel(tmp_path, "beta", "1.0")
    environment = assets.marker_environment(TARGET)
    assert assets.missing_requirements(tmp_path, ["alpha[fast]"], environment) == [
        "beta>=2", "delta",
    ]  # fmt: skip
    _wheel(tmp_path, "beta", "2.0", "zeta")
    _wheel(tmp_path, "delta", "1.0")
    _wheel(tmp_path, "zeta", "1.0")
    assert assets.missing_requirements(tmp_path, ["alpha[fast]"], environment) == []
    assert assets.missing_requirements(tmp_path, ["alpha==2"], environment) == ["alpha==2"]


@pytest.fixture
def offline_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A find-links directory pip must use instead of any index or configuration."""
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def test_wheelhouse_is_topped_up_with_what_the_hosts_markers_skipped(
    tmp_path: Path, offline_index: Path
) -> None:
    # pip evaluates markers against the interpreter running it: for the host, `beta` is not
    # needed; for the target it is, and so is `beta`'s own dependency.
    _wheel(offline_index, "alpha", "1.0", f'beta; python_version != "{HOST}"')
    _wheel(offline_index, "beta", "1.0", "gamma")
    _wheel(offline_index, "gamma", "1.0")
    _wheel(offline_index, "gamma", "2.0")  # newer, but the constraints pin 1.0
    _wheel(offline_index, "unrelated", "1.0")
    plain = tmp_path / "plain"
    assets._pip(assets.pip_download_command(["alpha==1.0"], plain, TARGET), "alpha")
    assert sorted(p.name.split("-")[0] for p in plain.glob("*.whl")) == ["alpha"]
    wheelhouse = tmp_path / "wheelhouse"
    assets.build_wheelhouse(wheelhouse, ["alpha==1.0"], TARGET, constraints=["gamma==1.0"])
    assert sorted(p.name for p in wheelhouse.glob("*.whl")) == [
        "alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl", "gamma-1.0-py3-none-any.whl",
    ]  # fmt: skip
    count, size = assets.wheelhouse_size(wheelhouse)
    assert count == 3 and size == sum(p.stat().st_size for p in wheelhouse.glob("*.whl"))


def test_a_requirement_without_a_wheel_fails_with_its_name(
    tmp_path: Path, offline_index: Path
) -> None:
    _wheel(offline_index, "alpha", "1.0")
    with pytest.raises(assets.AssetStagingError, match=r"alpha==9\.9.*binary wheels only"):
        assets.build_wheelhouse(tmp_path / "out", ["alpha==9.9"], TARGET, constraints=())


def test_provided_mode_downloads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run in the provided mode")

    monkeypatch.setattr("stacks.constructs.materialization_assets.subprocess.run", no_pip)
    assets.stage_wheelhouse(tmp_path, "provided")
    assert [p.name for p in tmp_path.iterdir()] == ["PROVIDED.txt"]


def test_wheelhouse_hash_depends_on_the_mode_and_python() -> None:
    vendored = assets.wheelhouse_hash("vendored")
    assert vendored == assets.wheelhouse_hash("vendored")
    assert vendored != assets.wheelhouse_hash("provided")
    assert vendored != assets.wheelhouse_hash("vendored", "3.13")


def test_entrypoint_fits_sagemakers_limits() -> None:
    compile(UNPACK_AND_LAUNCH, "<entrypoint>", "exec")
    assert len(UNPACK_AND_LAUNCH) <= 256  # ContainerEntrypoint items: at most 256 characters


def test_image_is_the_python_312_scikit_learn_container() -> None:
    image = processing_image("ap-northeast-2")
    assert image == (
        "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-scikit-learn:"
        "1.4-2-py312-cpu-py3"
    )
    assert assets.IMAGE_PYTHON == "3.12"
    assert image_repository_arn(image, "aws") == (
        "arn:aws:ecr:ap-northeast-2:366743142698:repository/sagemaker-scikit-learn"
    )


def test_job_name_prefix_leaves_room_for_a_uuid() -> None:
    assert job_name_prefix("mlops-dev-feature-store") == "mlops-dev-feature-store"
    long = job_name_prefix("a-very-long-project-name-local-feature-store")
    assert len(long) + 1 + 36 <= 63 and not long.endswith("-")
    with pytest.raises(ValueError, match="cannot prefix SageMaker job names"):
        job_name_prefix("bad_name")
