-- Undo the staff console's tables (its audit rows stay in the audit log).
DROP TABLE staff_sessions;
DROP TABLE staff_passkeys;
DROP TABLE staff_tickets;
DROP TABLE staff;
