DROP TABLE enrolments;
DROP TABLE broker_accounts;
