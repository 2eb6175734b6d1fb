package dev.thaw.cli;

import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import java.io.PrintStream;
import java.time.Duration;

/** A command that stays attached to the QEMU it started: the guest's console, until Ctrl-C or the guest stops. */
final class Foreground {
    private Foreground() {}

    static void follow(QemuVm vm, PrintStream status) throws InterruptedException {
        if (!vm.launchedHere()) {
            // Its console went to the Thaw that launched it: wait for the guest to stop, or for Ctrl-C.
            status.println("attached to QEMU pid " + vm.pid() + " (its console is not available here)");
            boolean exited = false;
            while (!exited) exited = vm.awaitExit(Duration.ofMinutes(1)); // Ctrl-C ends Thaw meanwhile (and, by its hook, this QEMU)
            status.println("QEMU exited: " + vm.describeState());
            return;
        }
        Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
        while (vm.isAlive()) {
            console.next(Duration.ofSeconds(1)).ifPresent(l -> status.println("guest: " + l.text()));
        }
        status.println("QEMU exited: " + vm.describeState());
    }

    /** Several QEMUs launched here (clones): every console, each line prefixed with its VM's name, until all have stopped. */
    static void followAll(java.util.List<QemuVm> vms, PrintStream status) throws InterruptedException {
        java.util.Map<QemuVm, Journal<ConsoleLine>.Cursor> consoles = new java.util.LinkedHashMap<>();
        for (QemuVm vm : vms) consoles.put(vm, vm.console().cursorFromStart());
        while (!consoles.isEmpty()) {
            boolean printed = false;
            var it = consoles.entrySet().iterator();
            while (it.hasNext()) {
                var e = it.next();
                boolean alive = e.getKey().isAlive(); // before draining: a line written just before the exit is still printed
                // Every line there is now, without waiting: one quiet console must not hold up the others' lines.
                for (var l = e.getValue().next(Duration.ZERO); l.isPresent(); l = e.getValue().next(Duration.ZERO)) {
                    status.println(e.getKey().name() + " guest: " + l.get().text());
                    printed = true;
                }
                if (!alive) {
                    status.println(e.getKey().name() + ": QEMU exited: " + e.getKey().describeState());
                    it.remove();
                }
            }
            if (!printed) Thread.sleep(50); // one wait a pass, not one per quiet console
        }
    }
}
