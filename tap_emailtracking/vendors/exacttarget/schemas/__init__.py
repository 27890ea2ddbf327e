"""JSON schemas, one file per ExactTarget stream."""
