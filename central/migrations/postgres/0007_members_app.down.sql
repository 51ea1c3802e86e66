-- Undo the members' app tables (rotating passes already written stay in qr_codes).
DROP TABLE member_devices;
DROP TABLE web_sessions;
DROP TABLE passkeys;
DROP TABLE web_tickets;
DROP TABLE member_emails;
