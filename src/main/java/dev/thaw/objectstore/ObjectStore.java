package dev.thaw.objectstore;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProviderChain;
import software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider;
import software.amazon.awssdk.auth.credentials.ProfileCredentialsProvider;
import software.amazon.awssdk.auth.credentials.SystemPropertyCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.AwsProfileRegionProvider;
import software.amazon.awssdk.regions.providers.AwsRegionProviderChain;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.regions.providers.SystemSettingsRegionProvider;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.NoSuchBucketException;
import software.amazon.awssdk.services.s3.model.S3Exception;

/**
 * One bucket of an S3-compatible service through the AWS SDK for Java v2 (the JDK's HTTP client underneath): the few
 * calls Thaw makes, each bounded by the connect and read timeouts (and the SDK's standard retries), its failures
 * translated into {@link ObjectStoreException}s that name the endpoint, bucket and object.
 */
public final class ObjectStore implements AutoCloseable {
    /** Objects above this size are uploaded in parts of this size (S3 takes at most 5 GiB in one PUT). */
    static final long PART_BYTES = 64L << 20;
    /**
     * Parts of one object uploaded at once: one part after another leaves the connection idle for a round trip between parts
     * and stays under what one TCP stream carries over a long round trip. {@code -Dthaw.partsInFlight=1}: one at a time, as
     * before the twenty-fifth session, for comparison.
     */
    static final int PARTS_IN_FLIGHT = Integer.getInteger("thaw.partsInFlight", 4);

    /**
     * Where and how to connect.
     *
     * @param endpoint       a custom endpoint (any S3-compatible service; addressed path-style), or empty for AWS's own
     * @param region         the signing region, or empty for the SDK's chain (environment, profile)
     * @param credentials    explicit credentials, or empty for the SDK's default chain (environment, profile, ...)
     * @param connectTimeout a connection's bound
     * @param readTimeout    the longest silence while a response is read
     */
    public record Settings(Optional<URI> endpoint, Optional<String> region, Optional<AwsCredentialsProvider> credentials,
                           Duration connectTimeout, Duration readTimeout) {
        public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
        public static final Duration READ_TIMEOUT = Duration.ofSeconds(30);

        /**
         * From the standard AWS environment: {@code AWS_ENDPOINT_URL_S3} or {@code AWS_ENDPOINT_URL} (or the SDK's system
         * properties {@code aws.endpointUrlS3}, {@code aws.endpointUrl}); region and credentials from the SDK's chains
         * ({@code AWS_REGION}, {@code AWS_ACCESS_KEY_ID}, {@code AWS_SECRET_ACCESS_KEY}, {@code ~/.aws/config} and
         * {@code credentials}; with a custom endpoint those alone, without EC2's instance metadata).
         */
        public static Settings fromEnvironment() {
            Optional<URI> endpoint = firstSet(System.getenv("AWS_ENDPOINT_URL_S3"), System.getProperty("aws.endpointUrlS3"),
                    System.getenv("AWS_ENDPOINT_URL"), System.getProperty("aws.endpointUrl")).map(URI::create);
            return new Settings(endpoint, Optional.empty(), Optional.empty(), CONNECT_TIMEOUT, READ_TIMEOUT);
        }

        private static Optional<String> firstSet(String... values) {
            for (String v : values) if (v != null && !v.isBlank()) return Optional.of(v.strip());
            return Optional.empty();
        }

        String describeEndpoint() {
            return endpoint.map(URI::toString).orElse("AWS S3");
        }
    }

    private final S3Client client;
    private final String bucket;
    private final Settings settings;
    private final java.util.concurrent.atomic.LongAdder gets = new java.util.concurrent.atomic.LongAdder();
    private final java.util.concurrent.atomic.LongAdder heads = new java.util.concurrent.atomic.LongAdder();

    public ObjectStore(Settings settings, String bucket) {
        this.settings = settings;
        this.bucket = bucket;
        Region region;
        boolean custom = settings.endpoint().isPresent();
        try {
            // A custom endpoint's region and credentials come from the environment and the AWS files only, never from EC2's
            // instance metadata service (a request to a link-local address the service has nothing to do with).
            region = settings.region().map(Region::of).orElseGet(() -> custom
                    ? new AwsRegionProviderChain(new SystemSettingsRegionProvider(), new AwsProfileRegionProvider()).getRegion()
                    : new DefaultAwsRegionProviderChain().getRegion());
        } catch (SdkClientException e) {
            // A custom endpoint usually ignores the region, but requests are still signed with one.
            if (settings.endpoint().isEmpty()) {
                throw new ObjectStoreException.Refused("no AWS region: expected AWS_REGION or a region in ~/.aws/config, actual none ("
                        + e.getMessage() + ")", e);
            }
            region = Region.US_EAST_1;
        }
        var builder = S3Client.builder()
                .region(region)
                .httpClientBuilder(UrlConnectionHttpClient.builder()
                        .connectionTimeout(settings.connectTimeout())
                        .socketTimeout(settings.readTimeout()))
                .credentialsProvider(settings.credentials().orElseGet(() -> custom
                        ? AwsCredentialsProviderChain.of(SystemPropertyCredentialsProvider.create(),
                                EnvironmentVariableCredentialsProvider.create(), ProfileCredentialsProvider.create())
                        : DefaultCredentialsProvider.builder().build()))
                // Thaw checks every byte with the image's own checksums; services that know no flexible checksums still work.
                .requestChecksumCalculation(software.amazon.awssdk.core.checksums.RequestChecksumCalculation.WHEN_REQUIRED)
                .responseChecksumValidation(software.amazon.awssdk.core.checksums.ResponseChecksumValidation.WHEN_REQUIRED);
        settings.endpoint().ifPresent(e -> builder.endpointOverride(e).forcePathStyle(true));
        this.client = builder.build();
    }

    public String bucket() {
        return bucket;
    }

    String url(String key) {
        return S3Location.SCHEME + bucket + "/" + key;
    }

    /** The size of an object, or empty if there is none. */
    public Optional<Long> size(String key) {
        return head(key).map(software.amazon.awssdk.services.s3.model.HeadObjectResponse::contentLength);
    }

    /** One HEAD of an object: its answer, or empty if there is none (and the bucket is there). */
    private Optional<software.amazon.awssdk.services.s3.model.HeadObjectResponse> head(String key) {
        heads.increment();
        try {
            return Optional.of(client.headObject(b -> b.bucket(bucket).key(key)));
        } catch (S3Exception e) {
            if (e.statusCode() == 404 && !(e instanceof NoSuchBucketException) && bucketExists()) return Optional.empty();
            throw translate("HEAD", key, e);
        } catch (SdkException e) {
            throw translate("HEAD", key, e);
        }
    }

    /** An object of a listing: its key, size and the service's time of its last write. */
    public record Listed(String key, long byteSize, java.time.Instant lastModified) {}

    /** Every object whose key starts with {@code keyPrefix}, in key order (ListObjectsV2, page after page). */
    public List<Listed> list(String keyPrefix) {
        List<Listed> out = new ArrayList<>();
        try {
            for (var page : client.listObjectsV2Paginator(b -> b.bucket(bucket).prefix(keyPrefix))) {
                for (var o : page.contents()) out.add(new Listed(o.key(), o.size(), o.lastModified()));
            }
        } catch (SdkException e) {
            throw translate("LIST", keyPrefix, e);
        }
        return out;
    }

    /** The service's time of an object's last write, or empty if there is none. */
    public Optional<java.time.Instant> lastModified(String key) {
        return head(key).map(software.amazon.awssdk.services.s3.model.HeadObjectResponse::lastModified);
    }

    /** A HEAD's 404 does not say whether the key or the bucket is missing. */
    private boolean bucketExists() {
        heads.increment();
        try {
            client.headBucket(b -> b.bucket(bucket));
            return true;
        } catch (S3Exception e) {
            if (e.statusCode() == 404) return false;
            throw translate("HEAD bucket", "", e);
        } catch (SdkException e) {
            throw translate("HEAD bucket", "", e);
        }
    }

    /** Deletes an object (none of that name is no error, as S3 has it). */
    public void delete(String key) {
        try {
            client.deleteObject(b -> b.bucket(bucket).key(key));
        } catch (SdkException e) {
            throw translate("DELETE", key, e);
        }
    }

    private volatile boolean multiDelete = true;

    /** Deletes objects, up to 1000 a request (DeleteObjects); a key the service could not delete fails the call, naming it. */
    public void deleteAll(List<String> keys) {
        for (int from = 0; from < keys.size(); from += 1000) {
            List<software.amazon.awssdk.services.s3.model.ObjectIdentifier> batch = keys.subList(from, Math.min(keys.size(), from + 1000))
                    .stream().map(k -> software.amazon.awssdk.services.s3.model.ObjectIdentifier.builder().key(k).build()).toList();
            software.amazon.awssdk.services.s3.model.DeleteObjectsResponse r;
            try {
                if (!multiDelete) {
                    for (var o : batch) delete(o.key());
                    continue;
                }
                r = client.deleteObjects(b -> b.bucket(bucket).delete(d -> d.objects(batch).quiet(true)));
            } catch (S3Exception e) {
                // A service that has no multi-object delete with the checksum the SDK sends (s3proxy): one DELETE a key.
                if (e.statusCode() != 501) throw translate("DELETE (multi)", batch.getFirst().key(), e);
                multiDelete = false;
                for (var o : batch) delete(o.key());
                continue;
            } catch (SdkException e) {
                throw translate("DELETE (multi)", batch.getFirst().key(), e);
            }
            if (r.hasErrors() && !r.errors().isEmpty()) {
                var first = r.errors().getFirst();
                throw new ObjectStoreException.Refused("DELETE " + url(first.key()) + " at " + settings.describeEndpoint() + ": expected success,"
                        + " actual " + first.code() + ": " + first.message() + " (" + r.errors().size() + " of " + batch.size()
                        + " keys of the request failed)", null);
            }
        }
    }

    public void put(String key, byte[] bytes) {
        try {
            client.putObject(b -> b.bucket(bucket).key(key).contentLength((long) bytes.length), RequestBody.fromBytes(bytes));
        } catch (SdkException e) {
            throw translate("PUT", key, e);
        }
    }

    /**
     * Uploads a file, in parts of {@link #PART_BYTES} when it is larger, {@link #PARTS_IN_FLIGHT} at once; a failed multipart
     * upload is aborted.
     */
    public void put(String key, Path file) {
        put(key, file, PART_BYTES, PARTS_IN_FLIGHT);
    }

    /**
     * {@link #put(String, Path)} in parts of {@code partBytes} (S3 takes parts of 5 MiB and more but for the last), at most
     * {@code partsInFlight} at once.
     */
    void put(String key, Path file, long partBytes, int partsInFlight) {
        long size;
        try {
            size = java.nio.file.Files.size(file);
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("cannot read " + file + " to upload it to " + url(key) + ": " + e, e);
        }
        if (size <= partBytes) {
            try {
                client.putObject(b -> b.bucket(bucket).key(key).contentLength(size), RequestBody.fromFile(file));
            } catch (SdkException e) {
                throw translate("PUT", key, e);
            }
            return;
        }
        String uploadId;
        try {
            uploadId = client.createMultipartUpload(b -> b.bucket(bucket).key(key)).uploadId();
        } catch (SdkException e) {
            throw translate("CreateMultipartUpload", key, e);
        }
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            int partCount = (int) ((size + partBytes - 1) / partBytes);
            String[] etags = new String[partCount];
            List<Concurrently.Task> uploads = new ArrayList<>();
            for (int i = 0; i < partCount; i++) {
                int number = i + 1;
                long from = i * partBytes;
                long length = Math.min(partBytes, size - from);
                uploads.add(() -> {
                    var body = RequestBody.fromContentProvider(() -> java.nio.channels.Channels.newInputStream(positioned(channel, from, length)),
                            length, "application/octet-stream");
                    etags[number - 1] = client.uploadPart(b -> b.bucket(bucket).key(key).uploadId(uploadId).partNumber(number)
                            .contentLength(length), body).eTag();
                    return length;
                });
            }
            Concurrently.run(uploads, partsInFlight); // at least one at a time
            List<CompletedPart> parts = new ArrayList<>();
            for (int i = 0; i < partCount; i++) parts.add(CompletedPart.builder().partNumber(i + 1).eTag(etags[i]).build());
            client.completeMultipartUpload(b -> b.bucket(bucket).key(key).uploadId(uploadId).multipartUpload(m -> m.parts(parts)));
        } catch (IOException | RuntimeException e) {
            boolean interrupted = Thread.interrupted(); // an interrupted thread's abort would be refused, leaving the parts
            try {
                client.abortMultipartUpload(b -> b.bucket(bucket).key(key).uploadId(uploadId));
            } catch (SdkException abort) {
                e.addSuppressed(abort);
            } finally {
                if (interrupted) Thread.currentThread().interrupt();
            }
            if (e instanceof SdkException s) throw translate("multipart PUT", key, s);
            if (e instanceof RuntimeException r) throw r;
            throw new ObjectStoreException.Refused("cannot read " + file + " to upload it to " + url(key) + ": " + e, e);
        }
    }

    /** A channel reading {@code length} bytes of {@code channel} from {@code position}, for one part (re-readable on a retry). */
    private static java.nio.channels.ReadableByteChannel positioned(FileChannel channel, long position, long length) {
        return new java.nio.channels.ReadableByteChannel() {
            long at = position;
            final long end = position + length;

            @Override
            public int read(java.nio.ByteBuffer dst) throws IOException {
                if (at >= end) return -1;
                java.nio.ByteBuffer slice = dst.slice(dst.position(), (int) Math.min(dst.remaining(), end - at));
                int n = channel.read(slice, at);
                if (n < 0) throw new IOException("expected " + length + " bytes from offset " + position + ", actual end of file at " + at);
                dst.position(dst.position() + n);
                at += n;
                return n;
            }

            @Override
            public boolean isOpen() {
                return true;
            }

            @Override
            public void close() {}
        };
    }

    /**
     * The whole object, at most {@code maxBytes} of it: a larger one (a manifest or MAC object is small; the bucket is not
     * trusted to say so) is refused from its length before its bytes are read.
     */
    public byte[] get(String key, long maxBytes) {
        try {
            return readBounded(key, maxBytes);
        } catch (SdkException e) {
            throw translate("GET", key, e);
        } catch (IOException e) {
            throw new ObjectStoreException.Unreachable("reading " + url(key) + ": " + e, e);
        }
    }

    /**
     * The whole object, or empty if the bucket has none of that name: one GET (a HEAD first would cost a round trip more, and
     * a HEAD's 404 a third to tell a missing key from a missing bucket).
     */
    public Optional<byte[]> getIfExists(String key, long maxBytes) {
        try {
            return Optional.of(readBounded(key, maxBytes));
        } catch (S3Exception e) {
            String code = e.awsErrorDetails() == null ? "" : e.awsErrorDetails().errorCode();
            if (e.statusCode() == 404 && "NoSuchKey".equals(code)) return Optional.empty();
            throw translate("GET", key, e);
        } catch (SdkException e) {
            throw translate("GET", key, e);
        } catch (IOException e) {
            throw new ObjectStoreException.Unreachable("reading " + url(key) + ": " + e, e);
        }
    }

    /** One GET of a whole object of at most {@code maxBytes}, refused from its length; the SDK's errors as they are. */
    private byte[] readBounded(String key, long maxBytes) throws IOException {
        gets.increment();
        long bound = Math.min(maxBytes, Integer.MAX_VALUE - 16); // one array
        try (software.amazon.awssdk.core.ResponseInputStream<software.amazon.awssdk.services.s3.model.GetObjectResponse> in =
                     client.getObject(b -> b.bucket(bucket).key(key))) {
            Long size = in.response().contentLength();
            if (size == null || size > bound) {
                in.abort();
                throw new ObjectStoreException.Corrupt(url(key) + ": expected at most " + bound + " bytes, actual " + size, null);
            }
            byte[] bytes = in.readNBytes((int) (long) size + 1);
            if (bytes.length != size) {
                throw new ObjectStoreException.Corrupt(url(key) + ": expected " + size + " bytes (its length), actual " + bytes.length, null);
            }
            return bytes;
        }
    }

    /** A stream of bytes {@code [from, from + length)} of an object: one range GET. The caller closes it. */
    public InputStream getRange(String key, long from, long length) {
        gets.increment();
        try {
            return client.getObject(b -> b.bucket(bucket).key(key).range("bytes=" + from + "-" + (from + length - 1)));
        } catch (SdkException e) {
            throw translate("GET", key, e);
        }
    }

    /** Requests made so far: GETs (whole and range) and HEADs (of objects and of the bucket), retries not counted. */
    public record Requests(long gets, long heads) {}

    public Requests requests() {
        return new Requests(gets.sum(), heads.sum());
    }

    /** The error of a call, naming the endpoint, the bucket and the object. */
    ObjectStoreException translate(String operation, String key, SdkException e) {
        String where = key.isEmpty() ? "bucket " + bucket : url(key);
        String at = " at " + settings.describeEndpoint();
        if (e instanceof S3Exception s) {
            String code = s.awsErrorDetails() == null ? "" : s.awsErrorDetails().errorCode();
            if (s instanceof NoSuchBucketException || "NoSuchBucket".equals(code) || key.isEmpty() && s.statusCode() == 404) {
                return new ObjectStoreException.NotFound("bucket " + bucket + " does not exist" + at + " (" + operation + " " + where + ")", e);
            }
            if (s.statusCode() == 404) {
                return new ObjectStoreException.NotFound(where + " is missing" + at + " (" + operation + ")", e);
            }
            return new ObjectStoreException.Refused(operation + " " + where + at + ": expected success, actual HTTP " + s.statusCode()
                    + (code == null || code.isEmpty() ? "" : " " + code) + ": " + s.getMessage(), e);
        }
        if (e.getMessage() != null && e.getMessage().contains("Unable to load credentials")) {
            return new ObjectStoreException.Refused("no credentials for " + operation + " " + where + at + ": expected AWS_ACCESS_KEY_ID and"
                    + " AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials, actual none (" + e.getMessage() + ")", e);
        }
        return new ObjectStoreException.Unreachable("cannot reach the object store" + at + " for " + operation + " " + where + " (connect"
                + " timeout " + settings.connectTimeout().toSeconds() + " s, read timeout " + settings.readTimeout().toSeconds() + " s, with"
                + " the SDK's retries): " + e.getMessage(), e);
    }

    @Override
    public void close() {
        client.close();
    }
}
