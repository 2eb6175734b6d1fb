package dev.thaw.util;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where Thaw finds its own files (the checkout) and keeps its caches. */
public final class ThawPaths {
    private ThawPaths() {}

    /**
     * The Thaw checkout: system property {@code thaw.home} (set by the {@code ./thaw} launcher and
     * by the test build), else the working directory. It must hold {@code guest/build.sh}.
     */
    public static Path home() {
        String property = System.getProperty("thaw.home");
        Path home = Path.of(property != null ? property : "").toAbsolutePath().normalize();
        if (!Files.isRegularFile(home.resolve("guest/build.sh"))) {
            throw new IllegalStateException("Thaw home " + home + " has no guest/build.sh: expected the Thaw checkout"
                    + " (run through ./thaw, or set -Dthaw.home=PATH_OF_THE_CHECKOUT)");
        }
        return home;
    }

    /** The cache root: {@code $THAW_CACHE}, else {@code $XDG_CACHE_HOME/thaw}, else {@code ~/.cache/thaw}. */
    public static Path cacheDir() {
        String explicit = System.getenv("THAW_CACHE");
        if (explicit != null && !explicit.isBlank()) {
            return Path.of(explicit).toAbsolutePath();
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("thaw").toAbsolutePath();
    }

    /**
     * The directories a recorded configuration's kernel and initrd may come from: Thaw's guest
     * builds ({@code CACHE/guest}) and those listed in {@code THAW_GUEST_DIRS} (colon-separated).
     */
    public static java.util.List<Path> guestDirs() {
        java.util.List<Path> dirs = new java.util.ArrayList<>(java.util.List.of(cacheDir().resolve("guest")));
        String listed = System.getenv("THAW_GUEST_DIRS");
        if (listed != null) {
            for (String d : listed.split(":")) if (!d.isBlank()) dirs.add(Path.of(d).toAbsolutePath());
        }
        return java.util.List.copyOf(dirs);
    }
}
