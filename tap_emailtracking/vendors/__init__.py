"""One folder per vendor: its protocol client, streams and schemas."""
