-- Which QA checks fail most often, across all calls.
SELECT check_name, count(*) AS calls_failed
FROM (SELECT unnest(failed_checks) AS check_name FROM scorecards)
GROUP BY check_name
ORDER BY calls_failed DESC;
