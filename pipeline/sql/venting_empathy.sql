-- Venting windows and the agent's first words after each: was the feeling acknowledged?
SELECT e.call_id, c.agent_id, round(e.start, 1) AS start_s, round(e."end", 1) AS end_s,
       json_extract(e.attributes, '$.agent_interrupted')::BOOLEAN AS agent_interrupted,
       u.text AS agent_response, l.empathy AS acknowledged, round(l.score_empathy, 2) AS empathy_score
FROM events e
JOIN calls c USING (call_id)
LEFT JOIN utterances u ON u.utterance_id = json_extract_string(e.attributes, '$.agent_response_utterance_id')
LEFT JOIN utterance_labels l ON l.utterance_id = u.utterance_id
WHERE e.type = 'venting'
ORDER BY e.call_id, e.start;
