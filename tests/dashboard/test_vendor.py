"""The vendored browser libraries match their manifest (pinned versions, licenses, hashes)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from apps.dashboard import vendor


def test_vendored_files_match_the_manifest_and_carry_their_licenses():
    call_command("vendor_refresh", "--check")  # raises CommandError on any difference
    manifest = json.loads(vendor.manifest_path().read_text())
    for entry in manifest["packages"]:
        assert entry["license"], entry["name"]
        assert any(name.upper().startswith("LICENSE") for name in entry["files"]), entry["name"]
        assert entry["integrity"].startswith("sha512-")


def test_a_hand_edited_vendored_file_is_caught(tmp_path, settings):
    root = tmp_path / "static" / "vendor"
    root.parent.mkdir()
    import shutil

    shutil.copytree(vendor.vendor_root(), root)
    settings.BASE_DIR = tmp_path
    (root / "htmx" / "htmx.min.js").write_text("/* patched */")
    assert any("differs from the manifest" in problem for problem in vendor.verify_manifest())


def test_integrity_strings_are_checked():
    import base64
    import hashlib

    data = b"package bytes"
    good = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    vendor.check_integrity(data, good)
    with pytest.raises(ValueError, match="integrity mismatch"):
        vendor.check_integrity(data + b"!", good)
