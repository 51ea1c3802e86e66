"""Application services: what an admin route, a staff page or a member page calls to act."""
