"""Acoustic Campaign: Bulk Event Export (BEX) files over SFTP, or Raw Recipient Data Export."""
