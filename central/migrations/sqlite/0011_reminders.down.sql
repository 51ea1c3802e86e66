-- Undo the reminders' tables (mail already sent stays sent).
DROP TABLE reminder_subscriptions;
DROP TABLE reminder_claims;
DROP INDEX reminder_deliveries_by_member;
DROP INDEX reminder_deliveries_pending;
DROP TABLE reminder_deliveries;
DROP TABLE reminder_settings;
