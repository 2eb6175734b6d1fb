package dev.thaw.objectstore;

import java.util.regex.Pattern;

/**
 * A place in a bucket, from {@code s3://BUCKET/PREFIX}: where {@code thaw push} puts images (the prefix may be empty), or,
 * with the image's name as its last segment, one image ({@code s3://BUCKET/PREFIX/NAME}).
 *
 * <p>Objects under a prefix: {@code PREFIX/NAME.thaw} (an image's manifest, the one object that makes it an image, written
 * last), {@code PREFIX/files/IMAGE-ID/...} (its other files), {@code PREFIX/packs/pack-ID.thaw} (packs, shared by every
 * image under the prefix).
 */
public record S3Location(String bucket, String prefix) {
    public static final String SCHEME = "s3://";
    // S3's bucket naming rules (lowercase letters, digits, dots and hyphens; 3-63 characters).
    private static final Pattern BUCKET = Pattern.compile("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]");
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    public S3Location {
        if (!BUCKET.matcher(bucket).matches()) {
            throw new IllegalArgumentException("bucket: expected 3-63 of [a-z0-9.-], actual '" + bucket + "'");
        }
        if (prefix.startsWith("/") || prefix.endsWith("/") || prefix.contains("//")) {
            throw new IllegalArgumentException("prefix: expected segments without empty ones, actual '" + prefix + "'");
        }
    }

    public static boolean isS3(String text) {
        return text.startsWith(SCHEME);
    }

    /** {@code s3://BUCKET} or {@code s3://BUCKET/PREFIX} (a trailing slash is dropped). */
    public static S3Location parse(String text) {
        if (!isS3(text)) throw new IllegalArgumentException("expected s3://BUCKET/PREFIX, actual '" + text + "'");
        String rest = text.substring(SCHEME.length());
        while (rest.endsWith("/")) rest = rest.substring(0, rest.length() - 1);
        int slash = rest.indexOf('/');
        return slash < 0 ? new S3Location(rest, "") : new S3Location(rest.substring(0, slash), rest.substring(slash + 1));
    }

    /** {@code s3://BUCKET/PREFIX/NAME}: the prefix holding the image, and its name. */
    public static Image parseImage(String text) {
        S3Location all = parse(text);
        int slash = all.prefix.lastIndexOf('/');
        String name = slash < 0 ? all.prefix : all.prefix.substring(slash + 1);
        if (name.isEmpty()) throw new IllegalArgumentException("expected s3://BUCKET/PREFIX/NAME (an image), actual '" + text + "'");
        return new Image(new S3Location(all.bucket, slash < 0 ? "" : all.prefix.substring(0, slash)), requireName(name));
    }

    static String requireName(String name) {
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("image name: expected 1-128 of [A-Za-z0-9._-] starting with a letter or digit, actual '"
                    + name + "'");
        }
        return name;
    }

    /** The key of an object under this prefix. */
    public String key(String relative) {
        return prefix.isEmpty() ? relative : prefix + "/" + relative;
    }

    public String url(String relative) {
        return SCHEME + bucket + "/" + key(relative);
    }

    @Override
    public String toString() {
        return SCHEME + bucket + (prefix.isEmpty() ? "" : "/" + prefix);
    }

    /** One image in a bucket. */
    public record Image(S3Location location, String name) {
        public Image {
            requireName(name);
        }

        /** The manifest's object, relative to the prefix. */
        public String manifestObject() {
            return name + ".thaw";
        }

        @Override
        public String toString() {
            return location.url(name);
        }
    }

    /** An image's files other than its manifest, relative to the prefix: {@code files/IMAGE-ID/NAME}. */
    static String fileObject(String imageId, String name) {
        return "files/" + imageId + "/" + name;
    }

    /** The MAC of one version of an image's manifest (named by the manifest's checksum), relative to the prefix. */
    static String macObject(String imageId, String manifestChecksum) {
        return "files/" + imageId + "/image-" + manifestChecksum + ".mac";
    }

    static String packObject(String packFile) {
        return "packs/" + packFile;
    }

    /** A file of a disk base's chain, named by the SHA-256 of its bytes: shared by every image under the prefix that has it. */
    static String baseObject(String sha256) {
        return "bases/" + sha256;
    }

    /** The list of an image's disk bases and their chains ({@link dev.thaw.image.DiskBases}), relative to the prefix. */
    static String diskBasesObject(String imageId) {
        return fileObject(imageId, dev.thaw.image.DiskBases.FILE);
    }
}
