package dev.thaw.cluster.zk;

import java.util.UUID;

/**
 * Where one checkpoint's restores live in ZooKeeper, under {@code /thaw/cluster/CHECKPOINT-ID}: the coordinators' leader latch
 * ({@code leader}), the current run ({@code run}, ephemeral: the coordinator's session; its data is the run's id and the switch's
 * directory), and per run ({@code runs/RUN-ID}) each cohort's ephemeral node ({@code cohorts/MEMBER}), the queues to each cohort
 * ({@code to/MEMBER}) and to the coordinator ({@code from}), {@code abort} (its data: why the run failed) and {@code end} (the
 * cluster was closed after its restore).
 */
public record RestoreZnodes(UUID checkpointId) {
    public static RestoreZnodes of(String checkpointId) {
        return new RestoreZnodes(UUID.fromString(checkpointId));
    }

    public String root() {
        return "/thaw/cluster/" + checkpointId;
    }

    public String leader() {
        return root() + "/leader";
    }

    public String run() {
        return root() + "/run";
    }

    public String runs() {
        return root() + "/runs";
    }

    public String cohorts(String runId) {
        return runs() + "/" + runId + "/cohorts";
    }

    public String cohort(String runId, String member) {
        return cohorts(runId) + "/" + member;
    }

    public String to(String runId, String member) {
        return runs() + "/" + runId + "/to/" + member;
    }

    public String from(String runId) {
        return runs() + "/" + runId + "/from";
    }

    public String abort(String runId) {
        return runs() + "/" + runId + "/abort";
    }

    public String end(String runId) {
        return runs() + "/" + runId + "/end";
    }
}
