package dev.thaw.qemu;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A QEMU release as printed by {@code qemu-system-x86_64 --version}. */
public record QemuVersion(int major, int minor, int micro, String text) implements Comparable<QemuVersion> {
    /** The oldest QEMU whose migration stream Thaw speaks (see docs/protocol.md). */
    public static final QemuVersion MINIMUM = new QemuVersion(7, 2, 0, "7.2.0");

    private static final Pattern VERSION = Pattern.compile("QEMU emulator version (\\d+)\\.(\\d+)(?:\\.(\\d+))?");

    public static QemuVersion parse(String versionOutput) {
        Matcher m = VERSION.matcher(versionOutput);
        if (!m.find()) {
            throw new IllegalArgumentException("unrecognised QEMU version output: expected 'QEMU emulator version X.Y.Z',"
                    + " actual '" + versionOutput.lines().findFirst().orElse("").strip() + "'");
        }
        int micro = m.group(3) == null ? 0 : Integer.parseInt(m.group(3));
        return new QemuVersion(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), micro,
                versionOutput.lines().findFirst().orElse("").replace("QEMU emulator version ", "").strip());
    }

    /** The versioned i440FX machine type of this QEMU's own release, e.g. {@code pc-i440fx-7.2}. */
    public String i440fxMachineType() {
        return "pc-i440fx-" + major + "." + minor;
    }

    @Override
    public int compareTo(QemuVersion other) {
        int c = Integer.compare(major, other.major);
        if (c == 0) c = Integer.compare(minor, other.minor);
        if (c == 0) c = Integer.compare(micro, other.micro);
        return c;
    }

    public boolean atLeast(QemuVersion other) {
        return compareTo(other) >= 0;
    }

    @Override
    public String toString() {
        return text;
    }
}
