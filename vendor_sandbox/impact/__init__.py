"""impact.com (REST API, async export jobs): the seeded account generator and the WSGI app."""
