"""ExactTarget (legacy XML API): the seeded export generator and the integrate.aspx WSGI app."""

from vendor_sandbox.exacttarget.api import FIRST_BATCH_ID, ExactTargetApi, ExactTargetFaults
from vendor_sandbox.exacttarget.data import (
    EVENT_KINDS,
    KINDS,
    WINDOW_DAYS,
    ExactTargetDataset,
    ExactTargetDataSpec,
    format_et_datetime,
)

__all__ = [
    "EVENT_KINDS",
    "FIRST_BATCH_ID",
    "KINDS",
    "WINDOW_DAYS",
    "ExactTargetApi",
    "ExactTargetDataSpec",
    "ExactTargetDataset",
    "ExactTargetFaults",
    "format_et_datetime",
]
