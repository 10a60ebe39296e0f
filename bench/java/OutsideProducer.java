import java.time.Instant;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Clickstream events of contract v1 from Kafka's own Java client, open loop at a fixed rate: traffic that rtap's
 * Python code did not write (bench/rtap_bench/java_producer.py runs it; Java 11+ runs this file as it is).
 *
 * <p>Arguments: bootstrap servers, topic, run name, events per second, seconds. Every event is valid and distinct,
 * its id an upper-case UUID (the spelling of Swift's and .NET's UUID strings), its event_time this JVM's clock as
 * the event is made, its user and session ids "jv-RUN-..." so that the run's events can be found. Prints one JSON
 * line: what was sent, what the broker refused, and how far the sender fell behind its schedule.
 */
public final class OutsideProducer {
    private static final String[] TYPES = {
        "page_view", "page_view", "page_view", "product_view", "product_view", "search", "add_to_cart", "checkout",
        "purchase"
    };

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String run = args[2];
        double rate = Double.parseDouble(args[3]);
        double seconds = Double.parseDouble(args[4]);
        Properties config = new Properties();
        config.put("bootstrap.servers", bootstrap);
        config.put("acks", "all");
        config.put("enable.idempotence", "true");
        config.put("linger.ms", "5");
        config.put("key.serializer", StringSerializer.class.getName());
        config.put("value.serializer", StringSerializer.class.getName());
        AtomicLong refused = new AtomicLong();
        long total = Math.round(rate * seconds);
        long maxBehindNs = 0;
        long start;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(config)) {
            producer.partitionsFor(topic); // the cluster's metadata before the schedule starts, not in its first send
            start = System.nanoTime();
            for (long i = 0; i < total; i++) {
                long due = start + (long) (i * 1e9 / rate);
                long now = System.nanoTime();
                if (due > now) {
                    Thread.sleep((due - now) / 1_000_000, (int) ((due - now) % 1_000_000));
                } else {
                    maxBehindNs = Math.max(maxBehindNs, now - due);
                }
                String user = "jv-" + run + "-u" + (i % 997);
                producer.send(new ProducerRecord<>(topic, user, event(run, i, user)), (metadata, error) -> {
                    if (error != null) {
                        refused.incrementAndGet();
                    }
                });
            }
            producer.flush();
        }
        System.out.printf(
            "{\"run\": \"%s\", \"sent\": %d, \"refused\": %d, \"seconds\": %.3f, \"max_behind_s\": %.3f}%n",
            run, total, refused.get(), (System.nanoTime() - start) / 1e9, maxBehindNs / 1e9);
    }

    private static String event(String run, long i, String user) {
        String type = TYPES[(int) (i % TYPES.length)];
        StringBuilder json = new StringBuilder(320)
            .append("{\"event_id\": \"").append(UUID.randomUUID().toString().toUpperCase())
            .append("\", \"event_type\": \"").append(type)
            .append("\", \"event_time\": \"").append(Instant.now())
            .append("\", \"user_id\": \"").append(user)
            .append("\", \"session_id\": \"jv-").append(run).append("-s").append(i % 997)
            .append("\", \"page_url\": \"https://shop.example/p/").append(i % 50).append('"');
        if (!type.equals("page_view") && !type.equals("search")) {
            json.append(", \"product_id\": \"sku-").append(i % 200).append('"');
        }
        if (type.equals("purchase")) {
            json.append(", \"price\": 19.99, \"quantity\": 2, \"order_id\": \"jv-").append(run).append("-o").append(i)
                .append('"');
        }
        return json.append('}').toString();
    }
}
