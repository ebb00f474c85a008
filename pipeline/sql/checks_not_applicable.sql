-- Why checks did not apply: how often each check was not applicable, and for what reason.
SELECT c.check AS check_name, c.reason, count(*) AS calls
FROM (SELECT unnest(checks) AS c FROM scorecards)
WHERE c.result = 'not_applicable'
GROUP BY ALL
ORDER BY calls DESC, check_name;
