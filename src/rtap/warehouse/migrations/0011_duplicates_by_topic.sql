-- Duplicates per input topic, beside the batch's total. `rtap reconcile` compares one producer's topic with its
-- ground truth while other topics (the collector's browser events, a previous system's topic) are read beside
-- it; the total alone would count their duplicates as its own. Empty on batches written before this.
ALTER TABLE {db}.pipeline_batches ADD COLUMN IF NOT EXISTS topic_duplicates Map(String, UInt64);
