"""Real local file and HTTP servers for the vendor sandbox (127.0.0.1, free or fixed ports).

Import the module you need (`.sftp`, `.ftp`, `.http`, `.faults`): importing pyftpdlib pulls in the
deprecated asyncore, so nothing here is imported eagerly.
"""
