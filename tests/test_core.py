"""The SDK's standard tap tests, run against the local vendor sandbox (not mocked)."""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_emailtracking.tap import TapEmailTracking
from vendor_sandbox.sandbox import Sandbox

# The test class needs its config when it is built, at import: start one sandbox for this module.
_ROOT = Path(tempfile.mkdtemp(prefix="tap-emailtracking-core-"))
_SANDBOX = Sandbox(_ROOT).start()
atexit.register(_SANDBOX.stop)

TestTapEmailTracking = get_tap_test_class(
    tap_class=TapEmailTracking,
    config=_SANDBOX.tap_config("sftp"),
    suite_config=SuiteConfig(max_records_limit=150),
    parse_env_config=False,
)
