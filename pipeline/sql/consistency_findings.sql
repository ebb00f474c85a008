-- Questions answered differently by different agents (run `callscope consistency` first).
SELECT canonical_question, variant, is_majority, severity, kinds, stated, expected,
       agent_ids, call_ids
FROM consistency_findings
ORDER BY severity DESC, canonical_question, variant;
