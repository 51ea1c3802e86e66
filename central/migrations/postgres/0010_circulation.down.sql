-- Undo circulation (holds, reservations, tickets and training records are lost).
DROP TABLE repair_tickets;
DROP INDEX reservations_by_item;
DROP TABLE reservations;
DROP INDEX holds_one_ready;
DROP INDEX holds_one_open;
DROP TABLE holds;
DROP TABLE member_agreements;
DROP INDEX agreements_one_current;
DROP TABLE agreements;
DROP TABLE member_training;
ALTER TABLE checkouts DROP COLUMN renewals;
ALTER TABLE items DROP COLUMN category;
DROP TABLE categories;
DROP TABLE circulation_settings;
