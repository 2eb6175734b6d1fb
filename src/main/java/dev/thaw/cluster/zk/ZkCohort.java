package dev.thaw.cluster.zk;

import dev.thaw.cluster.CohortMessage;
import dev.thaw.cluster.checkpoint.CheckpointException;
import dev.thaw.cluster.checkpoint.ClusterManifest;
import dev.thaw.cluster.checkpoint.ClusterRestore;
import dev.thaw.cluster.checkpoint.MemberRestore;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.Journal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;

/**
 * The cohort of one member ({@code thaw cluster cohort}): joins the checkpoint's current run in ZooKeeper (its own ephemeral znode),
 * takes LOAD from its queue and restores the member with its start held ({@link MemberRestore}, its QEMU on the run's switch),
 * reports LOAD_FIN once QEMU is paused with its working set loaded, waits for START, runs the guest and reports START_FIN, and
 * RESTORE_FIN once every page is in. It then keeps the member running until the coordinator ends the cluster ({@code end}).
 *
 * <p>Failure: its restore failing (it writes {@code abort} with the reason), the coordinator's {@code abort}, the run gone without
 * {@code end} (the coordinator's session ended), this process's session lost (ZooKeeper gone), or the timeout: the member's QEMU
 * is killed and {@link #run} throws a {@link CheckpointException.RestoreFailed} saying what was lost.
 */
public final class ZkCohort {
    private static final Duration POLL = Duration.ofMillis(20);
    private static final Duration CHECK_EVERY = Duration.ofMillis(100);

    /** What the command hears: the member's QEMU when it is launched, status lines, and every line of its console. */
    public interface Listener {
        default void launched(QemuVm vm) {}

        default void status(String line) {}

        default void console(String line) {}
    }

    /**
     * @param joinTimeout how long to wait for ZooKeeper, the coordinator's run and the LOAD
     * @param timeout     the member's restore, from LOAD to RESTORE_FIN
     * @param switchDir   the directory of this host's switch, when the member is on another host than the coordinator (its switch
     *                    joined to the coordinator's by a tunnel: {@code thaw cluster switch}); null: the coordinator's, from its run
     */
    public record Options(String connectString, Duration joinTimeout, Duration timeout, Listener listener, Path switchDir) {
        public Options(String connectString, Duration joinTimeout, Duration timeout, Listener listener) {
            this(connectString, joinTimeout, timeout, listener, null);
        }
    }

    private ZkCohort() {}

    /** Restores {@code member} of the checkpoint under the coordinator, and runs it until the cluster ends. */
    public static void run(Path checkpoint, String member, Options options) {
        ClusterManifest manifest = ClusterManifest.read(checkpoint);
        ClusterManifest.Member entry = manifest.members().stream().filter(m -> m.member().name().equals(member)).findFirst()
                .orElseThrow(() -> new CheckpointException.RestoreFailed(member, "expected one of the checkpoint's members "
                        + manifest.memberNames() + ", actual " + member, null));
        MemberRestore restore = MemberRestore.open(checkpoint, entry);
        RestoreZnodes z = RestoreZnodes.of(manifest.checkpointId());
        ZkSession zk = ZkSession.connect(options.connectString(), member, options.joinTimeout());
        Cohort c = new Cohort(restore, z, zk, options);
        // SIGTERM or Ctrl-C mid-restore: QemuVm's own hook kills the QEMUs it knows, but one being launched at that moment is not
        // known yet; abandoning the restore kills it as soon as it is launched, and the hook waits for the restore's thread.
        Thread hook = new Thread(() -> {
            restore.abandon();
            restore.join(Duration.ofSeconds(10));
        }, "cluster-cohort-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            c.go();
        } catch (Exception e) {
            CheckpointException failure = zk.failed(member, "the cohort", e);
            c.abort(failure);
            throw failure;
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook runs
            }
            restore.abandon();
            restore.join(Duration.ofSeconds(15));
            if (c.watchdog != null) c.watchdog.destroy(); // its QEMU is gone: nothing left to watch
            restore.closeImage();
            c.closeQueues();
            zk.close();
        }
    }

    private static final class Cohort {
        final MemberRestore restore;
        final RestoreZnodes z;
        final ZkSession zk;
        final Options options;
        final String member;
        final LinkedBlockingQueue<byte[]> inbox = new LinkedBlockingQueue<>();
        RunInfo run;
        DistributedQueue<byte[]> to;
        DistributedQueue<byte[]> from;
        Journal<ConsoleLine>.Cursor console;
        /** Kills the member's QEMU if this process dies without its hooks (SIGKILL). */
        volatile Process watchdog;
        long nextCheck;
        boolean serving;

        Cohort(MemberRestore restore, RestoreZnodes z, ZkSession zk, Options options) {
            this.restore = restore;
            this.z = z;
            this.zk = zk;
            this.options = options;
            this.member = restore.name();
        }

        void go() throws Exception {
            run = awaitRun();
            try {
                zk.client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(z.cohort(run.runId(), member),
                        ("pid " + ProcessHandle.current().pid()).getBytes(StandardCharsets.UTF_8));
            } catch (KeeperException.NodeExistsException e) {
                throw new CheckpointException.RestoreFailed(member, "expected one cohort of " + member + " in run " + run.runId()
                        + ", actual another one joined already", e);
            }
            Path switchDir = options.switchDir() != null ? options.switchDir().toAbsolutePath().normalize() : run.switchDir();
            options.listener().status("joined run " + run.runId() + " (switch " + switchDir + ")");
            to = zk.queue(z.to(run.runId(), member), inbox);
            from = zk.queue(z.from(run.runId()), null);

            CohortMessage.Load load = switch (next(options.joinTimeout(), "LOAD")) {
                case CohortMessage.Load l -> l;
                case CohortMessage other -> throw new CheckpointException.RestoreFailed(member, "expected LOAD first, actual " + other.type(), null);
            };
            long begun = System.nanoTime();
            restore.begin(load.workingSetPages(), run.members(), switchDir, vm -> {
                try {
                    watchdog = CohortWatchdog.watch(vm.pid());
                } catch (java.io.IOException e) { // the hooks still end it on SIGTERM or Ctrl-C; only a SIGKILL would leave it
                    org.slf4j.LoggerFactory.getLogger(ZkCohort.class).warn("{}: no watchdog for QEMU pid {}: {}", member, vm.pid(), e.toString());
                }
                console = vm.console().cursorFromStart();
                options.listener().launched(vm);
            });
            options.listener().status("LOAD " + load.workingSetPages() + " pages");
            long deadline = begun + options.timeout().toNanos();
            while (restore.vm() == null || !restore.loaded()) {
                checkAlive(deadline, "LOAD_FIN");
                ClusterRestore.sleep(POLL);
            }
            send(new CohortMessage.LoadFin(member));
            options.listener().status(String.format("LOAD_FIN after %.2f s", (System.nanoTime() - begun) / 1e9));
            switch (next(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())), "START")) {
                case CohortMessage.Start _ -> { }
                case CohortMessage other -> throw new CheckpointException.RestoreFailed(member, "expected START after LOAD_FIN, actual "
                        + other.type(), null);
            }
            restore.start();
            send(new CohortMessage.StartFin(member));
            options.listener().status(String.format("START_FIN after %.2f s", (System.nanoTime() - begun) / 1e9));
            while (!restore.completed()) {
                checkAlive(deadline, "RESTORE_FIN");
                ClusterRestore.sleep(POLL);
            }
            send(new CohortMessage.RestoreFin(member));
            options.listener().status(String.format("RESTORE_FIN after %.2f s", (System.nanoTime() - begun) / 1e9));
            // The member runs until the coordinator ends the cluster.
            serving = true;
            while (!ended()) {
                checkAlive(Long.MAX_VALUE, "the cluster's end");
                ClusterRestore.sleep(POLL);
            }
            drainConsole();
            options.listener().status("the coordinator ended the cluster");
        }

        /** The coordinator's current run (its ephemeral znode), waiting at most the join timeout. */
        private RunInfo awaitRun() throws Exception {
            long deadline = System.nanoTime() + options.joinTimeout().toNanos();
            while (true) {
                zk.check(member);
                byte[] data = data(z.run());
                if (data != null) {
                    try {
                        return RunInfo.decode(data);
                    } catch (IllegalArgumentException e) {
                        throw new CheckpointException.RestoreFailed(member, "the coordinator's run: " + e.getMessage(), e);
                    }
                }
                if (System.nanoTime() > deadline) {
                    throw new CheckpointException.RestoreFailed(member, "expected a coordinator's run at " + z.run() + " on ZooKeeper "
                            + zk.connectString + " within " + options.joinTimeout().toSeconds() + " s, actual none", null);
                }
                ClusterRestore.sleep(Duration.ofMillis(100));
            }
        }

        /** The next message for this cohort, checking everything else meanwhile. */
        private CohortMessage next(Duration timeout, String what) throws Exception {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (true) {
                checkAlive(deadline, what);
                byte[] raw = inbox.poll(POLL.toMillis(), TimeUnit.MILLISECONDS);
                if (raw == null) continue;
                CohortMessage m = ZkSession.decode(raw, member, "the coordinator");
                if (!m.member().equals(member)) {
                    throw new CheckpointException.RestoreFailed(member, "expected a message for " + member + ", actual " + m.type() + " for "
                            + m.member(), null);
                }
                return m;
            }
        }

        /** Fails when the restore, its QEMU, the session, the run or the timeout says so; prints the console meanwhile. */
        private void checkAlive(long deadline, String waitingFor) throws Exception {
            drainConsole();
            zk.check(member);
            restore.check();
            if (System.nanoTime() > deadline) {
                throw new CheckpointException.RestoreFailed(member, "expected " + waitingFor + " within " + options.timeout().toSeconds()
                        + " s of LOAD, actual none", null);
            }
            if (System.nanoTime() < nextCheck) return;
            nextCheck = System.nanoTime() + CHECK_EVERY.toNanos();
            throwIfAborted();
            if (ended()) {
                if (serving) return;
                throw new CheckpointException.RestoreFailed(member, "expected " + waitingFor + ", actual the coordinator ended the cluster", null);
            }
            byte[] current = data(z.run());
            if (current == null || !RunInfo.decode(current).runId().equals(run.runId())) {
                // A failing coordinator writes its abort, then its session ends and the run with it: read again, since the abort
                // may have come between the read above and this one.
                throwIfAborted();
                throw new CheckpointException.RestoreFailed(member, "lost the coordinator while waiting for " + waitingFor + ": its run "
                        + run.runId() + " is gone from ZooKeeper (its process died, or its session ended)", null);
            }
        }

        private void throwIfAborted() throws Exception {
            byte[] abort = data(z.abort(run.runId()));
            if (abort != null) {
                String[] f = new String(abort, StandardCharsets.UTF_8).split("\n", 2);
                throw new CheckpointException.RestoreFailed(member, "the run was aborted: " + (f.length > 1 ? f[1] : f[0]), null);
            }
        }

        private boolean ended() throws Exception {
            return zk.client.checkExists().forPath(z.end(run.runId())) != null;
        }

        private byte[] data(String path) throws Exception {
            try {
                return zk.client.getData().forPath(path);
            } catch (KeeperException.NoNodeException e) {
                return null;
            }
        }

        private void drainConsole() {
            Journal<ConsoleLine>.Cursor c = console;
            if (c == null) return;
            for (ConsoleLine line : c.drain()) options.listener().console(line.text());
        }

        private void send(CohortMessage m) throws Exception {
            from.put(CohortWire.INSTANCE.serialize(m));
        }

        /** Tells the coordinator why this cohort failed, when ZooKeeper still answers; the first failure written stays (create, never set). */
        void abort(CheckpointException failure) {
            if (run == null || !zk.client.getZookeeperClient().isConnected()) return;
            try {
                zk.client.create().creatingParentsIfNeeded().forPath(z.abort(run.runId()),
                        (member + "\n" + failure.getMessage()).getBytes(StandardCharsets.UTF_8));
            } catch (Exception ignored) {
                // the coordinator still sees this cohort's znode go with its session
            }
        }

        void closeQueues() {
            for (DistributedQueue<byte[]> q : new DistributedQueue[] {to, from}) {
                if (q == null) continue;
                try {
                    q.close();
                } catch (Exception ignored) {
                    // closing on the way out
                }
            }
        }
    }
}
