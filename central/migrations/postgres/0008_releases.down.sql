DROP TABLE kiosk_updates;
DROP INDEX release_rollouts_one_active;
DROP TABLE release_rollouts;
DROP TABLE releases;
