-- Agent utterances a coach should hear: blame, overwhelm talk, jargon, rushing.
SELECT u.call_id, c.agent_id, round(u.start, 1) AS start_s, l.labels, u.text
FROM utterances u
JOIN utterance_labels l USING (utterance_id)
JOIN calls c ON c.call_id = u.call_id
WHERE u.role = 'agent' AND (l.blame OR l.overwhelm OR l.jargon OR l.rushing)
ORDER BY u.call_id, u.start;
