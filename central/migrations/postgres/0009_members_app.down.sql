-- Undo the members' app tables (rotating passes already written stay in qr_codes).
DROP INDEX sessions_newest_by_kiosk;
DROP TABLE member_devices;
DROP TABLE web_sessions;
DROP TABLE passkeys;
DROP TABLE web_tickets;
DROP TABLE member_emails;
