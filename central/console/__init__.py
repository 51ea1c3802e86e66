"""The staff console: the library and the fleet in a browser, for volunteers and admins."""
