"""Versioned schema migrations, one up and one down script per version and backend."""
