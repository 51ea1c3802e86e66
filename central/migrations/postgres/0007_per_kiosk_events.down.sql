-- Back to one verdict per event id: where kiosks shared an id, the first decided is kept
-- (the old schema cannot hold the others).
ALTER TABLE kiosks DROP COLUMN return_point;
DELETE FROM scan_events later USING scan_events kept
WHERE later.event_id = kept.event_id
  AND (later.decided_at, later.kiosk_id) > (kept.decided_at, kept.kiosk_id);
ALTER TABLE scan_events DROP CONSTRAINT scan_events_pkey;
ALTER TABLE scan_events ADD CONSTRAINT scan_events_pkey PRIMARY KEY (event_id);
-- Event ids another kiosk also used are prefixed with their kiosk to stay unique.
UPDATE checkouts c SET event_id = c.kiosk_id || '/' || c.event_id
WHERE (SELECT count(*) FROM checkouts o WHERE o.event_id = c.event_id) > 1;
UPDATE checkouts c SET return_event_id = c.return_kiosk_id || '/' || c.return_event_id
WHERE (SELECT count(*) FROM checkouts o WHERE o.return_event_id = c.return_event_id) > 1;
ALTER TABLE checkouts DROP CONSTRAINT checkouts_event_id_key;
ALTER TABLE checkouts ADD CONSTRAINT checkouts_event_id_key UNIQUE (event_id);
ALTER TABLE checkouts DROP CONSTRAINT checkouts_return_event_id_key;
ALTER TABLE checkouts ADD CONSTRAINT checkouts_return_event_id_key UNIQUE (return_event_id);
