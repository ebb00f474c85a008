-- Per agent: calls handled, minutes of audio, share of speech that is the agent's.
SELECT agent_id, count(*) AS calls, round(sum(duration) / 60, 1) AS minutes,
       round(sum(agent_speech) / nullif(sum(agent_speech + customer_speech), 0), 2)
           AS agent_talk_share
FROM calls
WHERE status <> 'failed'
GROUP BY agent_id
ORDER BY agent_id;
