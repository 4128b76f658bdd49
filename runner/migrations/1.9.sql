-- 1.8 -> 1.9: the interpretability score of a row with mis is mis times the drive (its
-- activation_ratio clamped to [0, 1]), so an image that barely drives its unit no longer scores
-- as high as one that drives it; the rows already scored get the new value.
UPDATE actmax_results SET score = @derived actmax_results.score@ WHERE mis IS NOT NULL;
UPDATE metrics SET description = 'interpretability score: the judge''s probability of the class for class units, else the machine interpretability against the natural exemplars times the drive (activation over the top exemplar''s, at most 1), else activation kept under shifts times low-frequency share' WHERE name = 'score';
