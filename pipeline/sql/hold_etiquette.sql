-- Every hold: was permission asked and answered, how long, any 30 s without an update.
SELECT e.call_id, c.agent_id, round(e.start, 1) AS start_s, round(e."end" - e.start, 1) AS hold_s,
       json_extract(e.attributes, '$.permission_asked')::BOOLEAN AS permission_asked,
       json_extract(e.attributes, '$.customer_agreed')::BOOLEAN AS customer_agreed,
       json_extract(e.attributes, '$.updates')::INTEGER AS updates,
       json_extract(e.attributes, '$.over_limit_without_update')::BOOLEAN AS over_30s_without_update,
       json_extract(e.attributes, '$.music')::BOOLEAN AS music
FROM events e JOIN calls c USING (call_id)
WHERE e.type = 'hold'
ORDER BY e.call_id, e.start;
