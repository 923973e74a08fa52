from __future__ import annotations

import pytest

from localaws import emulator as emulator_module
from localaws.emulator import Emulator, EmulatorVersionError, check_moto_version

pytestmark = pytest.mark.integration


def test_clients_reach_the_emulator_through_the_environment(emulator: Emulator) -> None:
    import boto3

    # No endpoint_url passed: the environment alone must route the SDK to the emulator.
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket="probe", CreateBucketConfiguration={"LocationConstraint": emulator.region}
    )
    assert [b["Name"] for b in emulator.client("s3").list_buckets()["Buckets"]] == ["probe"]
    assert emulator.endpoint_url.startswith("http://127.0.0.1:")


def test_a_new_emulator_starts_empty(emulator: Emulator) -> None:
    """moto keeps state per process; a second emulator must not see the first one's."""
    emulator.client("s3").create_bucket(
        Bucket="left-over", CreateBucketConfiguration={"LocationConstraint": emulator.region}
    )
    second = Emulator().start()
    try:
        assert second.client("s3").list_buckets()["Buckets"] == []
    finally:
        second.stop()


def test_engine_refuses_an_unpinned_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator_module, "version", lambda _name: "5.9.9")
    with pytest.raises(EmulatorVersionError, match=r"moto==5\.2\.5.*found moto==5\.9\.9"):
        check_moto_version()


def test_installed_moto_is_the_pinned_one() -> None:
    check_moto_version()
