"""``dhf doctor``'s storage round trip and ``dhf storage migrate`` (local files -> S3, each
object verified), against a real SeaweedFS server."""

from __future__ import annotations

import io
import json
import os

import pytest
from click.testing import CliRunner

from compliance.vault import CHUNK, KeyDestroyed, Vault, parse_master_keys
from webapp.cli import main
from webapp.storage import make_store, vault

from .test_audit_log import _cli_env

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _env(app, storage: dict[str, str]) -> dict[str, str]:
    return {
        **_cli_env(app),
        "DHF_STORAGE_DIR": app.config["STORAGE_DIR"],
        **{f"DHF_{k}": v for k, v in storage.items()},
    }


def _doctor_storage(app, storage: dict[str, str]) -> dict[str, object]:
    result = CliRunner().invoke(
        main, ["doctor", "--json", "--only", "storage"], env=_env(app, storage)
    )
    return {"exit": result.exit_code, **json.loads(result.output)["checks"]["storage"]}


def test_doctor_checks_the_storage_round_trip(app, s3_config):
    local = _doctor_storage(app, {})
    assert (local["exit"], local["ok"]) == (0, True)
    assert local["detail"] == f"round trip ok (local folder {app.config['STORAGE_DIR']})"
    s3 = _doctor_storage(app, s3_config)
    assert (s3["exit"], s3["ok"]) == (0, True)
    assert (
        s3["detail"].startswith("round trip ok (s3://dhf/t")
        and "at http://127.0.0.1:" in s3["detail"]
    )
    assert list(make_store(s3_config).list("")) == []  # the probe object is gone
    wrong = _doctor_storage(app, {**s3_config, "S3_SECRET_KEY": "not-the-secret"})
    assert (wrong["exit"], wrong["ok"]) == (1, False)
    assert "S3 refused access to bucket 'dhf' (SignatureDoesNotMatch)" in wrong["detail"]


def test_migrate_copies_the_local_store_to_s3_and_verifies_each_object(app, s3_config):
    big, small = os.urandom(2 * CHUNK + 5), b"voice take"
    with app.app_context():
        ada = [vault().put("ada", io.BytesIO(data))[0] for data in (big, small)]
        vault().put("bob", io.BytesIO(b"gone"))
        vault().shred("bob")  # leaves only the tombstone: it must travel too
        master = parse_master_keys(app.config["MASTER_KEYS"])
    run = CliRunner().invoke(main, ["storage", "migrate", "--json"], env=_env(app, s3_config))
    report = json.loads(run.output)
    assert run.exit_code == 0, run.output
    assert (report["copied"], report["present"], report["verified"]) == (4, 0, 4)
    assert report["ok"] is True and report["mismatched"] == []

    on_s3 = Vault(make_store(s3_config), master)
    assert [on_s3.read("ada", blob) for blob in ada] == [big, small]
    with pytest.raises(KeyDestroyed):
        on_s3.put("bob", io.BytesIO(b"new"))  # the shredded person stays shredded on S3

    # a damaged copy is sent again; intact ones are only verified
    on_s3.store.put(Vault.blob_name("ada", ada[1]), [b"damaged"])
    again = CliRunner().invoke(main, ["storage", "migrate", "--json"], env=_env(app, s3_config))
    report = json.loads(again.output)
    assert (again.exit_code, report["copied"], report["present"]) == (0, 1, 3)
    assert on_s3.read("ada", ada[1]) == small


def test_migrate_needs_an_s3_target(app):
    run = CliRunner().invoke(main, ["storage", "migrate"], env=_env(app, {}))
    assert run.exit_code == 2
    assert "set DHF_STORAGE_URL=s3://bucket/prefix (and DHF_S3_*) to the target first" in run.output
