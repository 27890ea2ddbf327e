"""tap-emailtracking: complete email-tracking exports for any Singer target."""
