-- What the queue's SLA order needs from a case's log, kept on its queue row
-- so the queue need not read the logs: when a person first changed the
-- status (its first response), and the stretches that may have paused a
-- clock (bit 1, 2, 4, 8: on hold awaiting the customer, parts, the vendor,
-- a window; 16: any other stretch out of new, assigned, in progress and
-- recovered). Filled in for the cases there are.
ALTER TABLE case_meta ADD COLUMN responded_at_ms BIGINT;
ALTER TABLE case_meta ADD COLUMN paused BIGINT NOT NULL DEFAULT 0;
UPDATE case_meta m SET
    responded_at_ms = (SELECT l.at_ms FROM item_log l WHERE l.item_id = m.item_id
        AND l.actor LIKE 'person:%' AND l.from_status IS NOT NULL ORDER BY l.id LIMIT 1),
    paused = coalesce((SELECT sum(DISTINCT CASE l.to_status WHEN 'on_hold:awaiting_customer' THEN 1
        WHEN 'on_hold:awaiting_parts' THEN 2 WHEN 'on_hold:awaiting_vendor' THEN 4
        WHEN 'on_hold:awaiting_window' THEN 8 ELSE 16 END) FROM item_log l WHERE l.item_id = m.item_id
        AND l.to_status NOT IN ('new', 'assigned', 'in_progress', 'recovered')), 0);
