"""Mailkit (JSON API): the seeded raw-report generator, the json.fcgi WSGI app and a server."""

from vendor_sandbox.mailkit.api import CAMPAIGNS_LIST, MAX_LIMIT, REPORT_CAMPAIGN, MailkitApi
from vendor_sandbox.mailkit.data import (
    BOUNCES,
    FUNCTIONS,
    ID_KEYS,
    MESSAGES,
    RESPONSES,
    STREAMS,
    MailkitDataset,
    MailkitDataSpec,
)
from vendor_sandbox.mailkit.faults import Growth, MailkitFaults
from vendor_sandbox.mailkit.server import MailkitSandbox

__all__ = [
    "BOUNCES",
    "CAMPAIGNS_LIST",
    "FUNCTIONS",
    "ID_KEYS",
    "MAX_LIMIT",
    "MESSAGES",
    "REPORT_CAMPAIGN",
    "RESPONSES",
    "STREAMS",
    "Growth",
    "MailkitApi",
    "MailkitDataSpec",
    "MailkitDataset",
    "MailkitFaults",
    "MailkitSandbox",
]
