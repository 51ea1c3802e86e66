-- One statement per step of a batch of scans (central/storage/scan_batch.py): apply the
-- writes the rules chose for the previous round, take every lock of the batch in the
-- global order, and return every fact the rules may ask for about the next round. The
-- rules stay in Python (central/rules.py); this only loads and writes.
CREATE VIEW schema_backend AS SELECT 'postgresql'::text AS backend, 1 AS batched_scans;

CREATE FUNCTION cs_scan_step(
    p_now timestamptz,
    p_ops jsonb,            -- [[op, args...], ...] in order, or NULL
    p_lock boolean,         -- take the locks of the events named below (the batch's first step)
    p_ev_kiosks text[],     -- the events: kiosk ids ...
    p_ev_ids text[],        -- ... and their event ids
    p_kiosks text[],
    p_items text[],         -- the labels' items
    p_members text[],       -- the passes' members (the sessions' members are added here)
    p_passes text[],
    p_pair_kiosks text[],   -- (kiosk, item) of each label: the session member's standing
    p_pair_items text[],
    p_bucket_keys text[],   -- rate buckets to create if absent, with their full level
    p_bucket_full float8[],
    p_member_full float8,   -- the members' buckets' full level (NULL: no member buckets)
    p_fail_since timestamptz,  -- count each kiosk's failures since (NULL: do not)
    p_fail_reasons text[]
) RETURNS jsonb LANGUAGE plpgsql AS $fn$
DECLARE
    op jsonb;
    n integer;
    bumped jsonb := '[]'::jsonb;
    got jsonb;
    claim bigint;
    v_members text[];
    v_keys text[];
BEGIN
    IF p_ops IS NOT NULL THEN
        FOR op IN SELECT value FROM jsonb_array_elements(p_ops) LOOP
            CASE op->>0
            WHEN 'verdict' THEN
                INSERT INTO scan_events (event_id, kiosk_id, code_hash, scanned_at, decided_at,
                    reason, verdict)
                VALUES (op->>1, op->>2, op->>3, (op->>4)::timestamptz, (op->>5)::timestamptz,
                    op->>6, op->>7);
            WHEN 'audit' THEN
                INSERT INTO qr_audit_log (at, actor, action, reason, kiosk_id, member_id,
                    item_id, event_id, detail)
                VALUES ((op->>1)::timestamptz, op->>2, op->>3, op->>4, op->>5, op->>6, op->>7,
                    op->>8, op->>9);
            WHEN 'bucket' THEN
                INSERT INTO rate_buckets (bucket_key, tokens, updated_at)
                VALUES (op->>1, (op->>2)::float8, (op->>3)::timestamptz)
                ON CONFLICT (bucket_key) DO UPDATE
                SET tokens = EXCLUDED.tokens, updated_at = EXCLUDED.updated_at;
            WHEN 'close_sessions' THEN
                UPDATE sessions SET closed_at = (op->>2)::timestamptz
                WHERE kiosk_id = op->>1 AND closed_at IS NULL;
            WHEN 'start_session' THEN
                INSERT INTO sessions (kiosk_id, member_id, pass_id, opened_at, expires_at)
                VALUES (op->>1, op->>2, op->>3, (op->>4)::timestamptz, (op->>5)::timestamptz);
            WHEN 'extend_session' THEN
                UPDATE sessions SET expires_at = (op->>2)::timestamptz
                WHERE session_id = (op->>1)::bigint;
            WHEN 'consume_pass' THEN
                -- The same conditional write as the per-scan path: the row is locked, so
                -- it succeeds exactly when the facts said the pass was usable.
                UPDATE qr_codes SET consumed_at = (op->>4)::timestamptz, consumed_by = op->>3
                WHERE pass_id = op->>1 AND member_id = op->>2 AND consumed_at IS NULL
                    AND invalidated_at IS NULL AND expires_at > (op->>4)::timestamptz;
                GET DIAGNOSTICS n = ROW_COUNT;
                IF n <> 1 THEN
                    RAISE EXCEPTION 'pass % was not usable', op->>1;
                END IF;
            WHEN 'insert_checkout' THEN
                INSERT INTO checkouts (item_id, member_id, session_id, kiosk_id, event_id,
                    checked_out_at, due_at)
                VALUES (op->>1, op->>2, (op->>3)::bigint, op->>4, op->>5,
                    (op->>6)::timestamptz, (op->>7)::timestamptz);
            WHEN 'close_checkout' THEN
                UPDATE checkouts SET returned_at = (op->>2)::timestamptz,
                    return_event_id = op->>3, return_kiosk_id = op->>4
                WHERE checkout_id = (op->>1)::bigint AND returned_at IS NULL;
                GET DIAGNOSTICS n = ROW_COUNT;
                IF n <> 1 THEN
                    RAISE EXCEPTION 'checkout % was not open', op->>1;
                END IF;
            WHEN 'bump' THEN
                UPDATE items SET availability_seq = availability_seq + 1 WHERE item_id = op->>1
                RETURNING jsonb_build_array(item_id, shelf_id, name, state, availability_seq,
                    (SELECT c.due_at FROM checkouts c WHERE c.item_id = items.item_id
                        AND c.returned_at IS NULL),
                    EXISTS (SELECT 1 FROM holds h WHERE h.item_id = items.item_id
                        AND h.state = 'ready'))
                INTO got;
                IF got IS NULL THEN
                    RAISE EXCEPTION 'item % vanished', op->>1;
                END IF;
                bumped := bumped || jsonb_build_array(got);
            WHEN 'blocked_until' THEN
                UPDATE kiosks SET blocked_until = (op->>2)::timestamptz WHERE kiosk_id = op->>1;
            WHEN 'place_hold' THEN
                INSERT INTO holds (item_id, member_id, placed_at, placed_via, state)
                VALUES (op->>1, op->>2, (op->>3)::timestamptz, op->>4, 'waiting');
            WHEN 'hold_ready' THEN
                UPDATE holds SET state = 'ready', ready_at = (op->>2)::timestamptz,
                    notified_at = NULL
                WHERE id = (op->>1)::bigint AND state = 'waiting';
                GET DIAGNOSTICS n = ROW_COUNT;
                IF n <> 1 THEN
                    RAISE EXCEPTION 'hold % was not open', op->>1;
                END IF;
            WHEN 'hold_close' THEN
                UPDATE holds SET state = op->>3, closed_at = (op->>2)::timestamptz
                WHERE id = (op->>1)::bigint AND state IN ('waiting', 'ready');
                GET DIAGNOSTICS n = ROW_COUNT;
                IF n <> 1 THEN
                    RAISE EXCEPTION 'hold % was not open', op->>1;
                END IF;
            WHEN 'renew' THEN
                UPDATE checkouts SET due_at = (op->>2)::timestamptz, renewals = renewals + 1
                WHERE checkout_id = (op->>1)::bigint AND returned_at IS NULL;
                GET DIAGNOSTICS n = ROW_COUNT;
                IF n <> 1 THEN
                    RAISE EXCEPTION 'checkout % was not open', op->>1;
                END IF;
            WHEN 'ticket' THEN
                INSERT INTO repair_tickets (item_id, kiosk_id, member_id, checkout_id, event_id,
                    opened_at, note)
                VALUES (op->>1, op->>2, op->>3, (op->>4)::bigint, op->>5, (op->>6)::timestamptz,
                    op->>7);
            WHEN 'item_state' THEN
                UPDATE items SET state = op->>2 WHERE item_id = op->>1;
            ELSE
                RAISE EXCEPTION 'unknown scan write %', op->>0;
            END CASE;
        END LOOP;
    END IF;
    IF p_ev_kiosks IS NULL THEN
        RETURN jsonb_build_object('bumped', bumped);
    END IF;
    IF p_lock THEN
        -- Every lock of the batch, one class after the other, each class sorted: the
        -- events' claims, kiosks, rate buckets, items, their open holds, members, passes.
        -- A scan decided alone takes a subset in the same order, so no two transactions
        -- ever wait on each other in a cycle.
        FOR claim IN SELECT DISTINCT hashtextextended(k || '/' || e, 0)
                FROM unnest(p_ev_kiosks, p_ev_ids) AS q(k, e) ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(claim);
        END LOOP;
        PERFORM 1 FROM kiosks WHERE kiosk_id = ANY(p_kiosks)
            ORDER BY kiosk_id COLLATE "C" FOR UPDATE;
    END IF;
    -- The chain kiosk -> open session -> member, read under the kiosk locks.
    v_members := ARRAY(
        SELECT unnest(p_members)
        UNION
        SELECT s.member_id FROM sessions s WHERE s.kiosk_id = ANY(p_kiosks)
            AND s.closed_at IS NULL AND s.expires_at > p_now);
    v_keys := ARRAY(
        SELECT unnest(p_bucket_keys)
        UNION SELECT 'member:' || m FROM unnest(v_members) m WHERE p_member_full IS NOT NULL
        UNION SELECT 'cooldown:' || k FROM unnest(p_kiosks) k);
    IF p_lock THEN
        -- Create-if-absent first, so two instances meeting a new key wait on each other.
        INSERT INTO rate_buckets (bucket_key, tokens, updated_at)
        SELECT key, full_level, p_now FROM (
            SELECT b.key, b.full_level FROM unnest(p_bucket_keys, p_bucket_full)
                AS b(key, full_level)
            UNION ALL
            SELECT 'member:' || m, p_member_full FROM unnest(v_members) m
                WHERE p_member_full IS NOT NULL) AS wanted
        ORDER BY key COLLATE "C"
        ON CONFLICT (bucket_key) DO NOTHING;
        PERFORM 1 FROM rate_buckets WHERE bucket_key = ANY(v_keys)
            ORDER BY bucket_key COLLATE "C" FOR UPDATE;
        PERFORM 1 FROM items WHERE item_id = ANY(p_items)
            ORDER BY item_id COLLATE "C" FOR UPDATE;
        PERFORM 1 FROM holds WHERE item_id = ANY(p_items) AND state IN ('waiting', 'ready')
            ORDER BY id FOR UPDATE;
        PERFORM 1 FROM members WHERE member_id = ANY(v_members)
            ORDER BY member_id COLLATE "C" FOR UPDATE;
        PERFORM 1 FROM qr_codes WHERE pass_id = ANY(p_passes)
            ORDER BY pass_id COLLATE "C" FOR UPDATE;
    END IF;
    RETURN jsonb_build_object('bumped', bumped, 'facts', jsonb_build_object(
        'verdicts', (SELECT jsonb_object_agg(s.kiosk_id || '/' || s.event_id, s.verdict)
            FROM unnest(p_ev_kiosks, p_ev_ids) AS q(k, e)
            JOIN scan_events s ON s.kiosk_id = q.k AND s.event_id = q.e),
        'kiosks', (SELECT jsonb_object_agg(kiosk_id, jsonb_build_array(kiosk_id, shelf_id,
                retired, blocked_until, config_version, session_timeout_s, return_point))
            FROM kiosks WHERE kiosk_id = ANY(p_kiosks)),
        'sessions', (SELECT jsonb_object_agg(kiosk_id, jsonb_build_array(session_id, kiosk_id,
                member_id, expires_at))
            FROM sessions WHERE kiosk_id = ANY(p_kiosks) AND closed_at IS NULL
                AND expires_at > p_now),
        'buckets', (SELECT jsonb_object_agg(bucket_key, jsonb_build_array(tokens, updated_at))
            FROM rate_buckets WHERE bucket_key = ANY(v_keys)),
        'flag', (SELECT jsonb_build_array(mode, members, items, kiosks, percent, reason,
                changed_by, changed_at, tripped_at, trip_reason, breaker_reset_at)
            FROM rollout_flags WHERE name = 'qr-checkout-enabled'),
        'items', (SELECT jsonb_object_agg(item_id, jsonb_build_array(item_id, shelf_id, name,
                label_version, state, loan_days))
            FROM items WHERE item_id = ANY(p_items)),
        'terms', (SELECT jsonb_object_agg(i.item_id, jsonb_build_array(i.category,
                COALESCE(c.loan_days, i.loan_days), c.max_renewals, c.max_out,
                c.needs_training, c.needs_agreement, c.inspection_required, c.buffer_hours,
                s.hold_hours, s.overdue_block_days, s.renew_grace_hours,
                s.reservation_min_hours))
            FROM items i LEFT JOIN categories c ON c.name = i.category
            CROSS JOIN circulation_settings s WHERE i.item_id = ANY(p_items)),
        'checkouts', (SELECT jsonb_object_agg(item_id, jsonb_build_array(checkout_id, item_id,
                member_id, checked_out_at, due_at, renewals))
            FROM checkouts WHERE item_id = ANY(p_items) AND returned_at IS NULL),
        'holds', (SELECT jsonb_object_agg(item_id, rows) FROM (
            SELECT item_id, jsonb_agg(jsonb_build_array(id, item_id, member_id, placed_at,
                    state, ready_at, notified_at) ORDER BY placed_at, id) AS rows
            FROM holds WHERE item_id = ANY(p_items) AND state IN ('waiting', 'ready')
            GROUP BY item_id) AS open_holds),
        'reservations', (SELECT jsonb_object_agg(i, (
                SELECT jsonb_build_array(r.id, r.item_id, r.member_id, r.starts_at, r.ends_at)
                FROM reservations r WHERE r.item_id = i AND r.state = 'booked'
                    AND r.ends_at > p_now ORDER BY r.starts_at LIMIT 1))
            FROM unnest(p_items) AS i),
        'members', (SELECT jsonb_object_agg(member_id, jsonb_build_array(member_id, name,
                suspended, checkout_limit))
            FROM members WHERE member_id = ANY(v_members)),
        'loans', (SELECT jsonb_object_agg(m, (SELECT count(*) FROM checkouts c
                WHERE c.member_id = m AND c.returned_at IS NULL))
            FROM unnest(v_members) AS m),
        'standing', (SELECT jsonb_object_agg(s.member_id || '|' || COALESCE(i.category, ''),
                jsonb_build_array(
                    (SELECT count(*) FROM member_training t WHERE t.member_id = s.member_id
                        AND t.category = i.category),
                    (SELECT count(*) FROM agreements a WHERE a.current AND NOT EXISTS
                        (SELECT 1 FROM member_agreements m WHERE m.member_id = s.member_id
                            AND m.version = a.version)),
                    (SELECT min(c.due_at) FROM checkouts c WHERE c.member_id = s.member_id
                        AND c.returned_at IS NULL AND c.due_at < p_now),
                    (SELECT count(*) FROM checkouts c JOIN items i2 ON i2.item_id = c.item_id
                        WHERE c.member_id = s.member_id AND c.returned_at IS NULL
                            AND i2.category = i.category)))
            FROM unnest(p_pair_kiosks, p_pair_items) AS q(k, i_id)
            JOIN sessions s ON s.kiosk_id = q.k AND s.closed_at IS NULL AND s.expires_at > p_now
            JOIN items i ON i.item_id = q.i_id),
        'passes', (SELECT jsonb_object_agg(pass_id, jsonb_build_array(member_id, consumed_at,
                invalidated_at, expires_at))
            FROM qr_codes WHERE pass_id = ANY(p_passes)),
        'failures', (SELECT jsonb_object_agg(k, (SELECT count(*) FROM scan_events e
                WHERE e.kiosk_id = k AND e.decided_at > p_fail_since
                    AND e.reason = ANY(p_fail_reasons)))
            FROM unnest(p_kiosks) AS k WHERE p_fail_since IS NOT NULL)
    ));
END;
$fn$;
