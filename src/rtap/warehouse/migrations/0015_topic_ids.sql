-- Which log each batch read: per input topic, the id Kafka gave the topic when it was created (KIP-516). A topic
-- deleted and created again under the same name, or the same name on another cluster, is another log whose
-- offsets start over; the job compares the id Kafka gives now with the last one recorded here before it starts
-- (rtap.stream.identity). Empty on batches written before this, and for a broker that has no topic ids.
ALTER TABLE {db}.pipeline_batches ADD COLUMN IF NOT EXISTS topic_ids Map(String, String);
