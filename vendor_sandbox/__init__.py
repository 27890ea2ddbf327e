"""Local copies of the vendors' servers for tests and demos; the tap never imports this package."""
