"""`meltano.yml` lists exactly the settings `--about` shows, secrets marked sensitive.

Meltano passes only the settings it knows, and shows unmarked ones in clear text: a setting added to
a vendor's schema but not to `meltano.yml` is silently unusable there, and a secret without
`sensitive: true` is printed by `meltano config`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import yaml

from tap_emailtracking.tap import TapEmailTracking
from tap_emailtracking.vendors.registry import VENDORS

from .conftest import REPO, tap_env


def about_settings() -> dict[str, dict[str, Any]]:
    """Every setting of `tap-emailtracking --about`, vendors' ones as `vendor.setting`."""
    about = subprocess.run(
        [sys.executable, "-m", "tap_emailtracking", "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=tap_env(),
        check=True,
    )
    properties: dict[str, Any] = json.loads(about.stdout)["settings"]["properties"]
    builtin: dict[str, Any] = {"properties": {}}
    TapEmailTracking.append_builtin_config(builtin)  # the SDK's own; Meltano knows them
    vendors = {vendor.key for vendor in VENDORS}
    flat: dict[str, dict[str, Any]] = {}
    for name, schema in properties.items():
        if name in builtin["properties"]:
            continue
        if name in vendors:
            for setting, nested in schema["properties"].items():
                flat[f"{name}.{setting}"] = nested
        else:
            flat[name] = schema
    return flat


def meltano_settings() -> dict[str, dict[str, Any]]:
    project = yaml.safe_load((REPO / "meltano.yml").read_text(encoding="utf-8"))
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-emailtracking"]
    return {setting["name"]: setting for setting in tap["settings"]}


def test_meltano_yml_lists_every_setting_of_the_schema_and_no_other() -> None:
    about, meltano = about_settings(), meltano_settings()
    assert len(about) > 60
    assert sorted(set(about) - set(meltano)) == [], "add these to meltano.yml"
    assert sorted(set(meltano) - set(about)) == [], "these are in meltano.yml only"


def test_every_secret_and_only_secrets_are_sensitive_in_meltano_yml() -> None:
    about, meltano = about_settings(), meltano_settings()
    secrets = {name for name, schema in about.items() if schema.get("secret")}
    assert {"exacttarget.password", "acoustic.refresh_token"} <= secrets
    sensitive = {name for name, setting in meltano.items() if setting.get("sensitive")}
    assert sensitive == secrets


def test_meltano_yml_defaults_and_groups_match_the_schema() -> None:
    about, meltano = about_settings(), meltano_settings()
    with_value = {name: s["value"] for name, s in meltano.items() if "value" in s}
    assert with_value
    for name, value in with_value.items():
        assert about[name].get("default") == value, name
    project = yaml.safe_load((REPO / "meltano.yml").read_text(encoding="utf-8"))
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-emailtracking"]
    for group in tap["settings_group_validation"]:
        assert set(group) <= set(about), group
