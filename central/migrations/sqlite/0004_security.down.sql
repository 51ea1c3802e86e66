DROP INDEX scan_events_by_kiosk_time;
DROP TABLE rate_buckets;
