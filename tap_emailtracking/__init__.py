"""tap-emailtracking: complete email-tracking exports for any Singer target."""

from tap_emailtracking import cli

# First thing the tap's process does: an interruption from here on ends with 130/143.
if cli.launched_as_cli():
    cli.install()
