package dev.thaw.guest;

import java.nio.file.Path;

/**
 * A built demo guest: kernel and initramfs, cached under a key that hashes every input.
 *
 * @param key           16 hex digits hashing the build inputs (see guest/build.sh)
 * @param directory     the cache directory holding kernel, initramfs and guest.json
 * @param kernelRelease e.g. {@code 6.1.0-56-cloud-amd64}
 * @param kernelPackage the Debian package and version the kernel came from
 */
public record GuestImage(String key, Path directory, Path kernel, Path initrd, String kernelRelease, String kernelPackage) {}
