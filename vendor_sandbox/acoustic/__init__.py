"""Acoustic Campaign: the seeded event generator, and the OAuth / BEX REST / XML API WSGI app."""
