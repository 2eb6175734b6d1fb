package dev.thaw.cluster.zk;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.UUID;

/**
 * The current run of a checkpoint's restore, the data of its {@code run} znode: its id, the switch's directory the members'
 * QEMUs connect to, and how many members restore at once. Text, one field a line.
 */
record RunInfo(String runId, Path switchDir, int members) {
    RunInfo {
        UUID.fromString(runId);
        if (!switchDir.isAbsolute()) throw new IllegalArgumentException("run: expected an absolute switch directory, actual " + switchDir);
        if (members < 1) throw new IllegalArgumentException("run: expected at least 1 member, actual " + members);
    }

    byte[] encode() {
        return (runId + "\n" + switchDir + "\n" + members + "\n").getBytes(StandardCharsets.UTF_8);
    }

    static RunInfo decode(byte[] data) {
        String[] f = new String(data, StandardCharsets.UTF_8).split("\n", -1);
        if (f.length != 4 || !f[3].isEmpty()) {
            throw new IllegalArgumentException("run znode: expected 3 lines (run id, switch directory, members), actual " + (f.length - 1));
        }
        try {
            return new RunInfo(f[0], Path.of(f[1]), Integer.parseInt(f[2]));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("run znode: expected a number of members, actual '" + f[2] + "'", e);
        }
    }
}
