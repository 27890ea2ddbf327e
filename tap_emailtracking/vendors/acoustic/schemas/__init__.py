"""JSON schemas, one file per Acoustic stream."""
