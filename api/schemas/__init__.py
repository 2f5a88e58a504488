"""Request and response bodies of the REST API (the table models never leave ``api``)."""
