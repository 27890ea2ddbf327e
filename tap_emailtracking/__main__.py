"""Run the tap: python -m tap_emailtracking."""

from tap_emailtracking.tap import TapEmailTracking

TapEmailTracking.cli()
