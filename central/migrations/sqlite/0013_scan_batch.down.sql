-- Undo 0013 on SQLite.
DROP VIEW schema_backend;
