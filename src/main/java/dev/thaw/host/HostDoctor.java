package dev.thaw.host;

import dev.thaw.guest.GuestBuilder;
import dev.thaw.guest.GuestImage;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.util.ExternalCommand;
import dev.thaw.util.ThawPaths;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Supplier;

/**
 * Checks that this host can run Thaw, installs the Debian packages it lacks when running as root,
 * and probes KVM for real. {@code ./thaw doctor} prints the report; {@code demo}, {@code bench},
 * {@code boot} and the tests run it implicitly through {@link #ensureReady}; {@code restore} checks only
 * what it needs ({@link #ensureCanRestore}).
 */
public final class HostDoctor {
    public static final String QEMU_BINARY = "qemu-system-x86_64";
    private static final Duration APT_TIMEOUT = Duration.ofMinutes(20);

    /** One line of the report; {@code debianPackage} fixes a failed check, if any package does. */
    public record Check(String name, boolean ok, String detail, String debianPackage) {}

    /**
     * @param accessBitScanning whether the access-bit working-set estimator can run here, and if not why (optional: the other
     *                          estimators serve, so it never makes the host "not ready")
     */
    public record Report(List<Check> checks, List<String> installedPackages, Optional<QemuVersion> qemuVersion,
                         Optional<GuestImage> guest, Optional<KvmProbe.Verdict> kvm, boolean root, String accessBitScanning) {
        public boolean ready() {
            return checks.stream().allMatch(Check::ok);
        }

        public Accel accel() {
            return kvm.map(KvmProbe.Verdict::accel).orElse(Accel.TCG);
        }

        public List<String> missingPackages() {
            return packagesOf(checks);
        }

        /** What a user must do, when the host is not ready. */
        public String remedy() {
            List<String> steps = new ArrayList<>();
            List<String> missing = missingPackages();
            if (!missing.isEmpty()) {
                steps.add("as root: apt-get update && apt-get install -y --no-install-recommends " + String.join(" ", missing));
            }
            for (Check c : checks) {
                if (!c.ok() && c.debianPackage() == null) steps.add(c.name() + ": " + c.detail());
            }
            return String.join("\n", steps);
        }

        public String render() {
            StringBuilder out = new StringBuilder();
            for (Check c : checks) {
                out.append(String.format("  %-4s %-22s %s%n", c.ok() ? "ok" : "FAIL", c.name(), c.detail()));
            }
            if (!installedPackages.isEmpty()) {
                out.append("  installed now: ").append(String.join(" ", installedPackages)).append('\n');
            }
            guest.ifPresent(g -> out.append(String.format("  %-4s %-22s %s (%s)%n", "ok", "demo guest", g.key(), g.kernelPackage())));
            kvm.ifPresent(v -> out.append(String.format("  %-4s %-22s %s (%s%s)%n", "", "accelerator",
                    v.accel().qemuName(), v.reason(), v.fromCache() ? ", cached verdict from " + v.probedAt() : "")));
            out.append(String.format("  %-4s %-22s dirty, trace and learned work on every host; abit (accessed bits): %s%n", "",
                    "working-set estimators", accessBitScanning));
            if (!ready()) {
                out.append("not ready; to fix:\n  ").append(remedy().replace("\n", "\n  ")).append('\n');
            }
            return out.toString();
        }
    }

    /** Raised when the host cannot run Thaw and the doctor could not fix it. */
    public static final class HostNotReadyException extends RuntimeException {
        private final Report report;

        public HostNotReadyException(Report report) {
            super("this host cannot run Thaw yet:\n" + report.render());
            this.report = report;
        }

        public Report report() {
            return report;
        }
    }

    private HostDoctor() {}

    /** Runs the doctor (installing what is missing when root) and throws unless the host is ready. */
    public static Report ensureReady(PrintStream progress) {
        return ready(examine(true, progress));
    }

    /**
     * What a restore needs and no more: QEMU (installed when root and missing) and userfaultfd, which QEMU's postcopy
     * destination registers guest RAM with. No guest build and no KVM probe: the image's saved configuration says how its
     * guest runs. Throws unless both are there.
     */
    public static Report ensureCanRestore(PrintStream progress) {
        boolean root = isRoot();
        Checked packages = checkInstalling(() -> new ArrayList<>(List.of(checkQemu())), true, root, progress);
        List<Check> checks = new ArrayList<>(packages.checks());
        checks.add(checkUserfaultfd(root));
        return ready(new Report(List.copyOf(checks), packages.installed(), qemuVersion(), Optional.empty(), Optional.empty(), root,
                accessBitScanning()));
    }

    private static Report ready(Report report) {
        if (!report.ready()) {
            throw new HostNotReadyException(report);
        }
        return report;
    }

    /** Everything Thaw and its demo need: the packages, userfaultfd, the demo guest built, and KVM probed. */
    public static Report examine(boolean installMissing, PrintStream progress) {
        boolean root = isRoot();
        Checked packages = checkInstalling(HostDoctor::checkPackages, installMissing, root, progress);
        List<Check> checks = new ArrayList<>(packages.checks());
        checks.add(checkUserfaultfd(root));

        Optional<QemuVersion> qemu = qemuVersion();
        Optional<GuestImage> guest = Optional.empty();
        Optional<KvmProbe.Verdict> kvm = Optional.empty();
        if (checks.stream().allMatch(Check::ok)) {
            // The KVM probe boots the demo guest's kernel, so the guest is built here.
            try {
                guest = Optional.of(GuestBuilder.build(progress));
            } catch (RuntimeException e) {
                checks.add(new Check("demo guest", false, e.getMessage(), null));
            }
        }
        if (guest.isPresent()) {
            progress.println("thaw doctor: checking KVM (a real probe on first use, then cached) ...");
            kvm = Optional.of(KvmProbe.probe(QEMU_BINARY, qemu.orElseThrow(), guest.get(), ThawPaths.cacheDir()));
        }
        return new Report(List.copyOf(checks), packages.installed(), qemu, guest, kvm, root, accessBitScanning());
    }

    /** Checks, and the packages installed (when asked, as root) to fix what failed, checked again. */
    private record Checked(List<Check> checks, List<String> installed) {}

    private static Checked checkInstalling(Supplier<List<Check>> check, boolean installMissing, boolean root, PrintStream progress) {
        List<Check> checks = check.get();
        List<String> missing = packagesOf(checks);
        if (missing.isEmpty() || !installMissing || !root) return new Checked(checks, List.of());
        progress.println("thaw doctor: installing " + String.join(" ", missing) + " with apt-get ...");
        aptInstall(missing);
        return new Checked(check.get(), missing);
    }

    private static String accessBitScanning() {
        return IdlePageTracking.unavailableReason().map(r -> "unavailable: " + r).orElse("available");
    }

    private static List<String> packagesOf(List<Check> checks) {
        Set<String> packages = new LinkedHashSet<>();
        for (Check c : checks) {
            if (!c.ok() && c.debianPackage() != null) packages.add(c.debianPackage());
        }
        return List.copyOf(packages);
    }

    private static List<Check> checkPackages() {
        List<Check> checks = new ArrayList<>();
        checks.add(checkQemu());
        checks.add(staticBusybox());
        checks.add(onPath("cpio", "cpio"));
        checks.add(onPath("gcc", "gcc"));
        checks.add(onPath("readelf", "binutils"));
        // qemu-img makes the qcow2 file that holds the QEMU loadvm baseline's internal snapshot.
        checks.add(onPath("qemu-img", "qemu-utils"));
        Path libcA = Path.of("/usr/lib/x86_64-linux-gnu/libc.a");
        checks.add(new Check("static libc", Files.isRegularFile(libcA),
                Files.isRegularFile(libcA) ? libcA.toString() : libcA + " missing (gcc -static needs it)", "libc6-dev"));
        return checks;
    }

    private static Check checkQemu() {
        Optional<QemuVersion> qemu = qemuVersion();
        if (qemu.isEmpty()) {
            return new Check("qemu", false, QEMU_BINARY + " not found", "qemu-system-x86");
        } else if (!qemu.get().atLeast(QemuVersion.MINIMUM)) {
            return new Check("qemu", false, "expected QEMU >= " + QemuVersion.MINIMUM + ", actual " + qemu.get(), "qemu-system-x86");
        }
        return new Check("qemu", true, qemu.get().text(), "qemu-system-x86");
    }

    private static Check staticBusybox() {
        Path busybox = Path.of("/bin/busybox");
        if (!Files.isExecutable(busybox)) {
            return new Check("busybox (static)", false, busybox + " missing", "busybox-static");
        }
        ExternalCommand.Result elf = ExternalCommand.run(List.of("readelf", "-d", busybox.toString()), Duration.ofSeconds(10));
        if (elf.succeeded() && elf.stdout().contains("NEEDED")) {
            return new Check("busybox (static)", false, busybox + " is dynamically linked", "busybox-static");
        }
        return new Check("busybox (static)", true, busybox.toString(), "busybox-static");
    }

    private static Check onPath(String program, String debianPackage) {
        Optional<Path> found = which(program);
        return new Check(program, found.isPresent(), found.map(Path::toString).orElse("not found on PATH"), debianPackage);
    }

    static Optional<Path> which(String program) {
        String path = Optional.ofNullable(System.getenv("PATH")).orElse("/usr/bin:/bin");
        for (String dir : (path + ":/usr/sbin:/sbin").split(":")) {
            if (dir.isEmpty()) continue;
            Path candidate = Path.of(dir, program);
            if (Files.isExecutable(candidate)) return Optional.of(candidate);
        }
        return Optional.empty();
    }

    /**
     * The version of the QEMU on PATH, asked once per binary (path, size and modification time) in this process: a restore's
     * checks asked twice, each a QEMU process started (0.1-0.2 s of a cold {@code thaw restore} here).
     */
    public static Optional<QemuVersion> qemuVersion() {
        Optional<Path> binary = which(QEMU_BINARY);
        if (binary.isEmpty()) return Optional.empty();
        String identity;
        try {
            Path real = binary.get().toRealPath();
            java.nio.file.attribute.BasicFileAttributes a = Files.readAttributes(real, java.nio.file.attribute.BasicFileAttributes.class);
            identity = real + " " + a.size() + " " + a.lastModifiedTime();
        } catch (java.io.IOException e) {
            identity = null; // not cached: asked again
        }
        KnownQemu known = knownQemu;
        if (identity != null && known != null && known.identity().equals(identity)) return known.version();
        ExternalCommand.Result r = ExternalCommand.run(List.of(QEMU_BINARY, "--version"), Duration.ofSeconds(20));
        Optional<QemuVersion> version = r.succeeded() ? Optional.of(QemuVersion.parse(r.stdout())) : Optional.empty();
        if (identity != null && version.isPresent()) knownQemu = new KnownQemu(identity, version);
        return version;
    }

    private record KnownQemu(String identity, Optional<QemuVersion> version) {}

    private static volatile KnownQemu knownQemu;

    private static Check checkUserfaultfd(boolean root) {
        // QEMU's postcopy destination registers guest RAM with userfaultfd.
        if (root) {
            return new Check("userfaultfd", true, "usable (running as root)", null);
        }
        String sysctl = readFirstLine(Path.of("/proc/sys/vm/unprivileged_userfaultfd")).orElse("absent");
        boolean ok = "1".equals(sysctl);
        return new Check("userfaultfd", ok, ok ? "usable (vm.unprivileged_userfaultfd=1)"
                : "not usable without root: expected vm.unprivileged_userfaultfd=1, actual " + sysctl
                        + " (run as root: sysctl -w vm.unprivileged_userfaultfd=1)", null);
    }

    static boolean isRoot() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    return line.split("\\s+")[2].equals("0"); // real, effective, saved, fs
                }
            }
        } catch (IOException e) {
            // fall through
        }
        return "root".equals(System.getProperty("user.name"));
    }

    private static Optional<String> readFirstLine(Path file) {
        try {
            return Files.readAllLines(file).stream().findFirst().map(String::strip);
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    private static void aptInstall(List<String> packages) {
        Map<String, String> env = Map.of("DEBIAN_FRONTEND", "noninteractive");
        List<String> install = new ArrayList<>(List.of("apt-get", "install", "-y", "-q", "--no-install-recommends"));
        install.addAll(packages);
        ExternalCommand.Result first = ExternalCommand.run(install, APT_TIMEOUT, null, env);
        if (first.succeeded()) return;
        // Package lists missing or stale on a fresh machine: update once and try again.
        ExternalCommand.Result update = ExternalCommand.run(List.of("apt-get", "update", "-q"), APT_TIMEOUT, null, env);
        ExternalCommand.Result second = ExternalCommand.run(install, APT_TIMEOUT, null, env);
        if (!second.succeeded()) {
            throw new IllegalStateException("installing " + String.join(" ", packages) + " failed: " + second.describe()
                    + (update.succeeded() ? "" : "\n(apt-get update also failed: " + update.describe() + ")"));
        }
    }
}
