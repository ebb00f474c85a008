-- What failed, where and why: one line per dead letter.
SELECT call_id, stage, error_type, message, audio
FROM dead_letter
ORDER BY stage, call_id;
