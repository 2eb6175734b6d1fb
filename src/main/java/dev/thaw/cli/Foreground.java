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
        Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
        while (vm.isAlive()) {
            console.next(Duration.ofSeconds(1)).ifPresent(l -> status.println("guest: " + l.text()));
        }
        status.println("QEMU exited: " + vm.describeState());
    }
}
