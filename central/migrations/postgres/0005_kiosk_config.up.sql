-- What central sets on a kiosk beyond its shelf and session timeout: pins, camera and
-- feedback, as the JSON of broker.messages.KioskConfig's groups (unset ones left out).
ALTER TABLE kiosks ADD COLUMN device_config TEXT NOT NULL DEFAULT '{}';
