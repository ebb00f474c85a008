-- One line per call: status, length, talk time and warnings.
SELECT call_id, agent_id, queue, status, round(duration, 1) AS duration_s,
       num_utterances, round(agent_speech, 1) AS agent_speech_s,
       round(customer_speech, 1) AS customer_speech_s,
       round(processing_seconds, 1) AS processing_s, warnings
FROM calls
ORDER BY call_id;
