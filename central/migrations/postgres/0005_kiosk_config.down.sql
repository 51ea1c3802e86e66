ALTER TABLE kiosks DROP COLUMN device_config;
