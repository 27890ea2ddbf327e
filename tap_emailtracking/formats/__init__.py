"""File formats: containers (ZIP) and streaming parsers (XML, later delimited text and JSON)."""
