package dev.thaw.testing;

import dev.thaw.objectstore.ObjectStore;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.Properties;
import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStoreContext;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;

/**
 * A real S3-compatible server for the tests: s3proxy (Maven Central, org.gaul:s3proxy) in this JVM, on 127.0.0.1 and a free
 * port, its jclouds {@code filesystem} backend in a directory of the test's, SigV4 authentication with fixed test
 * credentials. Each bucket is a directory under that one, each object a file.
 */
public final class S3Server implements AutoCloseable {
    public static final String ACCESS_KEY = "thaw-test-access";
    public static final String SECRET_KEY = "thaw-test-secret-key";

    private final S3Proxy proxy;
    private final BlobStoreContext context;
    private final Path directory;

    public S3Server(Path directory) throws Exception {
        this.directory = Files.createDirectories(directory);
        Properties properties = new Properties();
        properties.setProperty("jclouds.filesystem.basedir", directory.toString());
        context = ContextBuilder.newBuilder("filesystem").credentials("identity", "credential").overrides(properties)
                .build(BlobStoreContext.class);
        proxy = S3Proxy.builder().blobStore(context.getBlobStore()).endpoint(URI.create("http://127.0.0.1:0"))
                .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, ACCESS_KEY, SECRET_KEY).build();
        proxy.start();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!"STARTED".equals(proxy.getState())) {
            if (System.nanoTime() > deadline) throw new IllegalStateException("s3proxy: expected STARTED within 30 s, actual " + proxy.getState());
            Thread.sleep(10);
        }
    }

    public URI endpoint() {
        return URI.create("http://127.0.0.1:" + proxy.getPort());
    }

    /** Where the filesystem backend keeps a bucket's objects: {@code DIR/BUCKET/KEY}. */
    public Path objectFile(String bucket, String key) {
        return directory.resolve(bucket).resolve(key);
    }

    public void createBucket(String bucket) {
        context.getBlobStore().createContainerInLocation(null, bucket);
    }

    /** Settings for this server: its endpoint, the test credentials, short timeouts. */
    public ObjectStore.Settings settings() {
        return settings(endpoint());
    }

    public static ObjectStore.Settings settings(URI endpoint) {
        return new ObjectStore.Settings(Optional.of(endpoint), Optional.of("us-east-1"),
                Optional.of(StaticCredentialsProvider.create(AwsBasicCredentials.create(ACCESS_KEY, SECRET_KEY))),
                Duration.ofSeconds(2), Duration.ofSeconds(2));
    }

    @Override
    public void close() throws Exception {
        proxy.stop();
        context.close();
    }
}
