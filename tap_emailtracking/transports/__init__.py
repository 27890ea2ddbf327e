"""How bytes reach the tap: HTTP for APIs, FTP/FTPS and SFTP for result files."""
