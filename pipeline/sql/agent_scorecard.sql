-- Per agent: calls, mean QA score and how often each check failed.
SELECT agent_id,
       count(*) AS calls,
       round(avg(score), 1) AS mean_score,
       round(avg(CASE WHEN greeting AND identification AND offer_help THEN 1 ELSE 0 END), 2)
           AS full_opening_rate,
       sum(agent_interruptions) AS interruptions,
       sum(venting_windows) AS venting_windows,
       sum(venting_acknowledged) AS venting_acknowledged,
       sum(blame_statements) AS blame,
       sum(overwhelm_statements) AS overwhelm_talk,
       sum(jargon_statements) AS jargon,
       sum(holds) AS holds,
       sum(holds_without_permission) AS holds_without_permission,
       sum(holds_over_limit_without_update) AS holds_over_30s_without_update,
       round(sum(typing_over_customer_seconds), 1) AS typing_over_customer_s,
       round(avg(CASE WHEN next_steps THEN 1 ELSE 0 END), 2) AS next_steps_rate
FROM scorecards
GROUP BY agent_id
ORDER BY mean_score;
