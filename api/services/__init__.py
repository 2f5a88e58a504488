"""Plain-Python cores behind the routes (no HTTP here): routes translate, services decide."""
