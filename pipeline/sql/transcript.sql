-- Transcripts of all calls in time order, agent and customer interleaved.
SELECT call_id, utterance_id, role, round(start, 2) AS start, round("end", 2) AS "end", text
FROM utterances
ORDER BY call_id, start;
