-- Event ids are minted by kiosks, so they are unique per kiosk only: idempotency is keyed
-- by (kiosk, event id). Keyed by event id alone, a kiosk sending another kiosk's event id
-- got that kiosk's verdict back, and an honest scan whose id another kiosk used first was
-- never decided.
ALTER TABLE scan_events DROP CONSTRAINT scan_events_pkey;
ALTER TABLE scan_events ADD CONSTRAINT scan_events_pkey PRIMARY KEY (kiosk_id, event_id);
-- Checkouts remember the event that opened and closed them; those ids are unique per
-- kiosk too.
ALTER TABLE checkouts DROP CONSTRAINT checkouts_event_id_key;
ALTER TABLE checkouts ADD CONSTRAINT checkouts_event_id_key UNIQUE (kiosk_id, event_id);
ALTER TABLE checkouts DROP CONSTRAINT checkouts_return_event_id_key;
ALTER TABLE checkouts ADD CONSTRAINT checkouts_return_event_id_key
    UNIQUE (return_kiosk_id, return_event_id);
-- A kiosk that takes returns of any shelf's items (a front desk, a drop box); others take
-- returns of their own shelf's items only.
ALTER TABLE kiosks ADD COLUMN return_point BOOLEAN NOT NULL DEFAULT false;
