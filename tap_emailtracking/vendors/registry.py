"""Every vendor the tap knows, in the order their settings and streams are listed.

Adding a vendor: its own folder, whose `__init__.py` exports a `SPEC` keyed by the folder's name,
and one word in `VENDOR_PACKAGES`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tap_emailtracking.vendors.spec import VendorSpec

VENDOR_PACKAGES = ("exacttarget", "acoustic", "pinpointe", "mailkit", "impact")

VENDORS: tuple[VendorSpec[Any, Any], ...] = tuple(
    import_module(f"{__package__}.{name}").SPEC for name in VENDOR_PACKAGES
)
