"""HTTP API logic, routes as data."""
