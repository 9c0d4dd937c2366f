-- selector records how a run's jobs were chosen when `batchreset select
-- --run` or `run --run` with selector flags made them: the selector's
-- description (regions, filters, target image, exclusions, limit,
-- skip-matching), so that a report can say how the list was made. '' for a
-- run imported from a jobs CSV or inserted by another tool.
ALTER TABLE runs ADD COLUMN selector text NOT NULL DEFAULT '';
