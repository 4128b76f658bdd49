-- 1.3 -> 1.4: pad, decorrelate, background and flip (settings columns at their defaults);
-- actmax_results.judge_prob, judge_class and score. The rows already there have no judge: their
-- score is the derived one (results_schema.sql, actmax_results.score).
UPDATE actmax_results SET score = @derived actmax_results.score@;
