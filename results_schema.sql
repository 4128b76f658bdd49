-- vizsweep results index (SQLite). The one source of the schema: the runner compiles this
-- file in and fills in its markers from the declarations (`vizsweep schema` prints the
-- result); analysis scripts read the same tables and views.
-- Schema version: major.minor. A run refuses to resume an index of another major version and
-- brings an older minor version to this one in place: its tables, columns, views and indexes
-- reconciled with this file, then the numbered migrations since its version
-- (runner/migrations/MAJOR.MINOR.sql, each saying what it changed) in one transaction.
-- Every statement is idempotent (IF NOT EXISTS, INSERT OR IGNORE), so applying the schema to
-- an index of the same version changes nothing.

PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1.9');

-- One row per sweep file run into this results directory.
CREATE TABLE IF NOT EXISTS sweeps (
  sweep_id         INTEGER PRIMARY KEY,
  name             TEXT NOT NULL,
  spec_text        TEXT NOT NULL,              -- the sweep file as read
  spec_hash        TEXT NOT NULL UNIQUE,       -- hash of the canonical, validated spec
  model_path       TEXT NOT NULL,
  model_hash       TEXT NOT NULL,              -- hash of the model file's bytes ("builtin:..." for built-ins)
  vizsweep_version TEXT NOT NULL,
  torch_version    TEXT NOT NULL,
  created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Hyperparameter settings, one table per technique, one column per hyperparameter. Each
-- "-- @declared TABLE" line stands for the columns of the hyperparameters declared in
-- kernels/settings.cpp (the technique's table), in order, each with its type, default and
-- CHECK range; "/* @techniques ... */" for the techniques' names (sweeps/techniques/). The
-- runner fills them in (`vizsweep schema` prints the result); as it stands the file is valid
-- SQL without them.
CREATE TABLE IF NOT EXISTS actmax_settings (
  setting_id      INTEGER PRIMARY KEY,
  name            TEXT NOT NULL,                -- a preset's name; "preset+key=value,..." for a preset
                                                -- with changed values; a grid's "key=value,..." of its
                                                -- varying keys ("grid" when none varies); "random-N";
                                                -- "default" (docs/sweep-files.md)
  objective       TEXT NOT NULL CHECK (length(objective) > 0)
  -- @declared actmax_settings
);

CREATE TABLE IF NOT EXISTS invert_settings (
  setting_id  INTEGER PRIMARY KEY,
  name        TEXT NOT NULL
  -- @declared invert_settings
);

CREATE TABLE IF NOT EXISTS fgsm_settings (
  setting_id  INTEGER PRIMARY KEY,
  name        TEXT NOT NULL
  -- @declared fgsm_settings
);

-- Class names of the model's output units (fc8), so every answer can say "Trouser", not "1".
CREATE TABLE IF NOT EXISTS classes (
  class_id INTEGER PRIMARY KEY,
  name     TEXT NOT NULL
);

-- Input images of invert, fgsm, featuremaps and exemplars tasks: image_id is the position in
-- the technique's image list of the sweep file.
CREATE TABLE IF NOT EXISTS images (
  technique TEXT NOT NULL CHECK (technique IN (/* @techniques of images */)),
  image_id  INTEGER NOT NULL,
  source    TEXT NOT NULL,                      -- file path as written, or "fashion-mnist/test#17"
  label     INTEGER,                            -- dataset label when known
  PRIMARY KEY (technique, image_id)
);

-- One row per task: (technique, layer, block of units or images, setting, seed).
-- state is the task state machine of the runner; the same four states live in one C++ enum.
CREATE TABLE IF NOT EXISTS tasks (
  task_key    TEXT PRIMARY KEY,                 -- hash of the canonical parameters
  sweep_id    INTEGER NOT NULL REFERENCES sweeps (sweep_id),
  technique   TEXT NOT NULL CHECK (technique IN (/* @techniques */)),
  layer       TEXT NOT NULL,                    -- alias; '*' for FGSM, featuremaps and exemplars
  units       TEXT NOT NULL,                    -- canonical ranges of units or image ids, "0-63,70"
  setting_id  INTEGER,                          -- into <technique>_settings; NULL for featuremaps
  seed        INTEGER NOT NULL,
  cost        REAL NOT NULL DEFAULT 0,          -- estimated, for most-expensive-first dispatch
  state       TEXT NOT NULL DEFAULT 'pending'
              CHECK (state IN ('pending', 'running', 'done', 'failed')),
  attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  rank        INTEGER,
  host        TEXT,
  started_at  TEXT,
  finished_at TEXT,
  seconds     REAL,
  error       TEXT,                             -- reason of the last failure
  CHECK (state <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state);
CREATE INDEX IF NOT EXISTS tasks_by_layer ON tasks (technique, layer);

-- Results. shard: path of the HDF5 file relative to the results directory; dataset: the
-- HDF5 path of the data inside it.
CREATE TABLE IF NOT EXISTS actmax_results (
  task_key         TEXT NOT NULL REFERENCES tasks (task_key),
  unit             INTEGER NOT NULL CHECK (unit >= 0),
  final_activation REAL NOT NULL,
  hf_energy        REAL NOT NULL,
  total_variation  REAL NOT NULL,
  saturation       REAL NOT NULL,
  robustness       REAL NOT NULL,
  is_argmax        INTEGER NOT NULL CHECK (is_argmax IN (0, 1)),
  shard            TEXT NOT NULL,
  dataset          TEXT NOT NULL,
  -- Schema 1.4. Class units (the model's output layer) under a sweep's actmax.judge: the
  -- probability the independent judge model gives the unit's class, and the judge's top
  -- class; NULL elsewhere.
  judge_prob       REAL CHECK (judge_prob >= 0 AND judge_prob <= 1),
  judge_class      INTEGER CHECK (judge_class >= 0),
  -- Interpretability score in [0, 1] (docs/results-layout.md): judge_prob where there is one,
  -- else mis where there is one, times the drive (activation_ratio clamped to [0, 1]: an image
  -- that does not drive its unit as its strongest natural image does is not a picture of what
  -- the unit responds to; schema 1.9), else the activation kept under small shifts (clamped to
  -- [0, 1]) times the share of the spectrum's energy below the high-frequency band. The index
  -- computes it from the row (the expression below is its one definition).
  -- @derived score = CASE WHEN judge_prob IS NOT NULL THEN MIN(MAX(judge_prob, 0.0), 1.0) WHEN mis IS NOT NULL THEN mis * MIN(MAX(COALESCE(activation_ratio, 0.0), 0.0), 1.0) ELSE MIN(MAX(robustness, 0.0), 1.0) * MIN(MAX(1.0 - hf_energy, 0.0), 1.0) END
  score            REAL NOT NULL DEFAULT 0 CHECK (score >= 0 AND score <= 1),
  -- Schema 1.5. Units with natural exemplars (top and bottom): the machine interpretability of
  -- the image against them (kernels/exemplars.h; docs/results-layout.md) and its activation
  -- over the top exemplar's; NULL until the run that completes the exemplars scores it.
  mis              REAL CHECK (mis >= 0 AND mis <= 1),
  activation_ratio REAL,
  -- Schema 1.6. Which of a unit's images under actmax.diversity N (0..N-1, optimized together
  -- to differ); 0 without.
  copy             INTEGER NOT NULL DEFAULT 0 CHECK (copy >= 0),
  PRIMARY KEY (task_key, unit, copy)
);

CREATE TABLE IF NOT EXISTS invert_results (
  task_key  TEXT NOT NULL REFERENCES tasks (task_key),
  image_id  INTEGER NOT NULL,
  rep_error REAL NOT NULL,                      -- ||Phi(x) - Phi0||^2 / ||Phi0||^2
  hf_energy REAL NOT NULL,
  shard     TEXT NOT NULL,
  dataset   TEXT NOT NULL,
  PRIMARY KEY (task_key, image_id)
);

CREATE TABLE IF NOT EXISTS fgsm_results (
  task_key   TEXT NOT NULL REFERENCES tasks (task_key),
  image_id   INTEGER NOT NULL,
  true_label INTEGER NOT NULL,
  target     INTEGER,                           -- targeted attacks only
  clean_pred INTEGER NOT NULL,
  final_pred INTEGER NOT NULL,
  success    INTEGER NOT NULL CHECK (success IN (0, 1)),  -- label changed (targeted: target reached)
  shard      TEXT NOT NULL,
  dataset    TEXT NOT NULL,
  run        INTEGER CHECK (run >= 0),           -- the run the result is from (restart; apgd-dlr:
                                                 -- target x restarts + restart); added in 1.8
  PRIMARY KEY (task_key, image_id)
);

CREATE TABLE IF NOT EXISTS fgsm_steps (
  task_key   TEXT NOT NULL REFERENCES tasks (task_key),
  image_id   INTEGER NOT NULL,
  step       INTEGER NOT NULL CHECK (step >= 0),  -- 0 = clean image
  pred       INTEGER NOT NULL,
  pred_prob  REAL NOT NULL,
  label_prob REAL NOT NULL,                       -- true label (untargeted) or target
  loss       REAL NOT NULL,
  final_prob REAL,                                -- probability of the attack's final predicted class
                                                  -- (the adversarial class); added in 1.1
  margin     REAL,                                -- logit of the true (or target) label minus the
                                                  -- largest other; added in 1.8
  eta        REAL,                                -- the step size after this step (APGD halves it
                                                  -- per image); added in 1.8
  PRIMARY KEY (task_key, image_id, step)
);

CREATE TABLE IF NOT EXISTS featuremap_results (
  task_key TEXT NOT NULL REFERENCES tasks (task_key),
  image_id INTEGER NOT NULL,
  layer    TEXT NOT NULL,
  shard    TEXT NOT NULL,
  dataset  TEXT NOT NULL,
  PRIMARY KEY (task_key, image_id, layer)
);

-- Natural exemplars (schema 1.5): each task scans one shard of the dataset and keeps, per
-- unit, the shard's k images of highest response (kind 'top') and, when asked, of lowest
-- ('bottom'); task_rank is the place in the shard's list. The view `exemplars` below merges
-- the shards. A conv unit's response is its maximum over positions (or its centre value) at
-- (y, x) of the layer's output; box_* is the receptive field there, in input pixels, clipped
-- to the image: [box_y0, box_y1) x [box_x0, box_x1) of the image stored at `dataset`.
CREATE TABLE IF NOT EXISTS exemplar_results (
  task_key   TEXT NOT NULL REFERENCES tasks (task_key),
  layer      TEXT NOT NULL,
  unit       INTEGER NOT NULL CHECK (unit >= 0),
  kind       TEXT NOT NULL CHECK (kind IN ('top', 'bottom')),
  task_rank  INTEGER NOT NULL CHECK (task_rank >= 1),
  image_id   INTEGER NOT NULL CHECK (image_id >= 0),  -- images (technique 'exemplars')
  activation REAL NOT NULL,
  y          INTEGER NOT NULL,
  x          INTEGER NOT NULL,
  box_y0     INTEGER NOT NULL,
  box_y1     INTEGER NOT NULL,
  box_x0     INTEGER NOT NULL,
  box_x1     INTEGER NOT NULL,
  shard      TEXT NOT NULL,
  dataset    TEXT NOT NULL,
  PRIMARY KEY (task_key, layer, unit, kind, task_rank)
);
CREATE INDEX IF NOT EXISTS exemplar_results_by_unit ON exemplar_results (layer, unit, kind);

-- The metrics the results carry, declared once (schema 1.2): `python3 -m analysis` lists and
-- ranks whatever this table holds. column_name: the column of result_table a metric reads;
-- aggregate: how the rows of one setting combine: 'mean' of the column, or 'fooled' (FGSM:
-- the share of the correctly classified images whose label changed; column_name 'success').
CREATE TABLE IF NOT EXISTS metrics (
  name             TEXT PRIMARY KEY,
  technique        TEXT NOT NULL CHECK (technique IN (/* @techniques with settings */)),
  result_table     TEXT NOT NULL,
  column_name      TEXT NOT NULL,
  aggregate        TEXT NOT NULL CHECK (aggregate IN ('mean', 'fooled')),
  higher_is_better INTEGER NOT NULL CHECK (higher_is_better IN (0, 1)),
  unit             TEXT NOT NULL,
  description      TEXT NOT NULL
);
INSERT OR IGNORE INTO metrics VALUES
  ('score', 'actmax', 'actmax_results', 'score', 'mean', 1, 'in [0, 1]',
   'interpretability score: the judge''s probability of the class for class units, else the machine interpretability against the natural exemplars times the drive (activation over the top exemplar''s, at most 1), else activation kept under shifts times low-frequency share'),
  ('judge_prob', 'actmax', 'actmax_results', 'judge_prob', 'mean', 1, 'probability',
   'probability the independent judge model gives the intended class (class units under a judge)'),
  ('mis', 'actmax', 'actmax_results', 'mis', 'mean', 1, 'share of trials',
   'machine interpretability: share of top-vs-bottom exemplar pairs where the top one is nearer the image in the feature model'),
  ('activation_ratio', 'actmax', 'actmax_results', 'activation_ratio', 'mean', 1, 'ratio',
   'activation of the image over that of the unit''s strongest natural exemplar'),
  ('activation', 'actmax', 'actmax_results', 'final_activation', 'mean', 1, 'layer output',
   'mean final activation of the unit'),
  ('hf_energy', 'actmax', 'actmax_results', 'hf_energy', 'mean', 0, 'share of spectral energy',
   'high-frequency energy share (lower: more natural)'),
  ('total_variation', 'actmax', 'actmax_results', 'total_variation', 'mean', 0, 'per pixel, [0, 1] scale',
   'total variation per pixel'),
  ('saturation', 'actmax', 'actmax_results', 'saturation', 'mean', 0, 'share of pixels',
   'share of pixels at 0 or 255'),
  ('robustness', 'actmax', 'actmax_results', 'robustness', 'mean', 1, 'ratio',
   'activation kept under jitter, relative'),
  ('argmax_rate', 'actmax', 'actmax_results', 'is_argmax', 'mean', 1, 'share of units',
   'share of units that are the layer''s argmax'),
  ('inversion_error', 'invert', 'invert_results', 'rep_error', 'mean', 0, 'relative squared error',
   'normalized representation error'),
  ('fgsm_success', 'fgsm', 'fgsm_results', 'success', 'fooled', 1, 'share of images',
   'share of correctly classified images fooled');

-- Views for the common questions.

-- Per layer and activation-maximization setting: how high, how natural, how often argmax.
-- Schema 1.7. actmax.search's trials (runner/search.h): one row per (layer, setting, rung)
-- whose tasks are all done, written by the coordinator in the transaction that records the
-- trial's last task, with the metric it read and, once decided, its promotion. A resumed
-- search rebuilds its state from these rows and decides nothing twice.
CREATE TABLE IF NOT EXISTS search_trials (
  layer        TEXT NOT NULL,
  base_setting INTEGER NOT NULL CHECK (base_setting >= 0),  -- the setting searched, 0..K-1
  rung         INTEGER NOT NULL CHECK (rung >= 0),
  setting_id   INTEGER NOT NULL,             -- into actmax_settings: that setting at the rung's iterations
  iterations   INTEGER NOT NULL CHECK (iterations >= 1),
  units        INTEGER NOT NULL CHECK (units >= 1),  -- the sampled units the metric is the mean over
  metric       TEXT NOT NULL,                -- a name in metrics
  value        REAL,                         -- the trial's metric; NULL where no row had one (ranked last)
  completed    INTEGER NOT NULL UNIQUE,      -- the search's order of completion, from 1
  completed_at TEXT NOT NULL,
  promoted_at  TEXT,                         -- when it went on to rung + 1; NULL: not (yet)
  PRIMARY KEY (layer, base_setting, rung)
);

CREATE VIEW IF NOT EXISTS actmax_by_layer_setting AS
SELECT t.layer, s.setting_id, s.name AS setting, COUNT(*) AS units,
       AVG(r.final_activation) AS mean_activation, AVG(r.hf_energy) AS mean_hf_energy,
       AVG(r.total_variation) AS mean_tv, AVG(r.saturation) AS mean_saturation,
       AVG(r.robustness) AS mean_robustness, AVG(r.is_argmax) AS argmax_rate,
       AVG(r.score) AS mean_score, AVG(r.judge_prob) AS mean_judge_prob,
       AVG(r.judge_class = r.unit) AS judge_recognized,
       AVG(r.mis) AS mean_mis, AVG(r.activation_ratio) AS mean_activation_ratio
FROM actmax_results r
JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done'
JOIN actmax_settings s ON s.setting_id = t.setting_id
GROUP BY t.layer, s.setting_id;

-- Inversion error by layer and setting.
CREATE VIEW IF NOT EXISTS invert_error_by_layer AS
SELECT t.layer, s.setting_id, s.name AS setting, COUNT(*) AS images,
       AVG(r.rep_error) AS mean_rep_error, AVG(r.hf_energy) AS mean_hf_energy
FROM invert_results r
JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done'
JOIN invert_settings s ON s.setting_id = t.setting_id
GROUP BY t.layer, s.setting_id;

-- Attack success rate by eps and step count (and attack, norm, restarts: 1.8), over images
-- the model classified correctly.
CREATE VIEW IF NOT EXISTS fgsm_success AS
SELECT s.eps, s.steps, s.targeted, COUNT(*) AS images,
       SUM(r.clean_pred = r.true_label) AS clean_correct,
       AVG(r.final_pred = r.true_label) AS adversarial_accuracy,
       CAST(SUM(r.success AND r.clean_pred = r.true_label) AS REAL) /
         NULLIF(SUM(r.clean_pred = r.true_label), 0) AS success_rate,
       s.attack, s.norm, s.restarts
FROM fgsm_results r
JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done'
JOIN fgsm_settings s ON s.setting_id = t.setting_id
GROUP BY s.eps, s.steps, s.targeted, s.attack, s.norm, s.restarts;

-- Schema 1.8. Robust accuracy by AutoAttack's rule: an image is robust at (norm, eps) when the
-- model classifies it correctly and no attack at that budget changed its label: every attack,
-- step count, restart and target of every done task (targeted attacks too), so adding an attack
-- later can only lower the figure. `attacks`: the attack rows the flag stands on.
CREATE VIEW IF NOT EXISTS robust_images AS
SELECT s.norm, s.eps, r.image_id, r.true_label,
       MIN(r.clean_pred = r.true_label) AS clean_correct,
       MIN(r.clean_pred = r.true_label AND r.final_pred = r.true_label) AS robust,
       COUNT(*) AS attacks
FROM fgsm_results r
JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done'
JOIN fgsm_settings s ON s.setting_id = t.setting_id
GROUP BY s.norm, s.eps, r.image_id;

-- Robust accuracy per budget over the ensemble (robust_images), and per attack setting
-- (attack, steps, restarts, targeted) alone, over every image attacked.
CREATE VIEW IF NOT EXISTS robust_accuracy AS
SELECT norm, eps, COUNT(*) AS images, AVG(clean_correct) AS clean_accuracy, AVG(robust) AS robust_accuracy
FROM robust_images
GROUP BY norm, eps;

CREATE VIEW IF NOT EXISTS attack_accuracy AS
SELECT s.attack, s.norm, s.eps, s.steps, s.restarts, s.targeted, COUNT(*) AS images,
       AVG(r.clean_pred = r.true_label AND r.final_pred = r.true_label) AS robust_accuracy
FROM fgsm_results r
JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done'
JOIN fgsm_settings s ON s.setting_id = t.setting_id
GROUP BY s.attack, s.norm, s.eps, s.steps, s.restarts, s.targeted;

-- Each unit's exemplars over the whole dataset: the shards' lists merged in the total order
-- (response, then image id; kernels/exemplars.h), so that `rank` 1..k equals a single scan's.
-- k: the longest shard list of the unit.
CREATE VIEW IF NOT EXISTS exemplars AS
SELECT layer, unit, kind, rank, image_id, source, activation, y, x, box_y0, box_y1, box_x0, box_x1, shard, dataset
FROM (
  SELECT r.*, i.source,
         ROW_NUMBER() OVER (PARTITION BY r.layer, r.unit, r.kind
                            ORDER BY CASE r.kind WHEN 'top' THEN -r.activation ELSE r.activation END, r.image_id) AS rank,
         MAX(r.task_rank) OVER (PARTITION BY r.layer, r.unit, r.kind) AS k
  FROM exemplar_results r
  JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done'
  LEFT JOIN images i ON i.technique = 'exemplars' AND i.image_id = r.image_id
)
WHERE rank <= k;

-- Progress of the sweep.
CREATE VIEW IF NOT EXISTS progress AS
SELECT technique, state, COUNT(*) AS tasks, SUM(attempts) AS attempts
FROM tasks GROUP BY technique, state;
