-- One line per call: QA score and the checks it failed.
SELECT call_id, agent_id, score, checks_passed || '/' || checks_applicable AS passed,
       failed_checks
FROM scorecards
ORDER BY score, call_id;
