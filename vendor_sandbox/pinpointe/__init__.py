"""Pinpointe (JSON API `apijson.php`): the seeded account generator and the WSGI app."""
