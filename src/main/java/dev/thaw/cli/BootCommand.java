package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.host.HostDoctor;
import dev.thaw.measure.Throughput;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpException;
import dev.thaw.save.SaveHold;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "boot", mixinStandardHelpOptions = true,
        description = {"Boot the demo guest and keep it running.",
                "Boots the demo guest and keeps it running, printing wsbench's rate every second, until Ctrl-C",
                "or the guest stops. Prints the QMP socket that 'thaw save --qmp' takes. The guest dies with this command.",
                "A guest that a thaw save killed mid-save (SIGKILL) left paused is resumed, saying so."})
final class BootCommand implements Callable<Integer> {
    @Mixin
    GuestShape shape;

    @Option(names = "--name", defaultValue = "thaw-guest", description = "VM name (default ${DEFAULT-VALUE}).")
    String name;

    @Override
    public Integer call() throws Exception {
        HostDoctor.Report host = HostDoctor.ensureReady(System.err);
        DemoGuest guest = shape.toGuest();
        try (QemuVm vm = QemuVm.launch(guest.vmConfig(name, host.guest().orElseThrow(), host.qemuVersion().orElseThrow(), host.accel()))) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            System.out.println("guest " + name + " running (QEMU pid " + vm.pid() + ")");
            System.out.println("QMP socket for other clients: " + vm.extraQmpSocket());
            System.out.println("save it with: ./thaw save --qmp " + vm.extraQmpSocket() + " --out DIR");
            while (vm.isAlive()) {
                List<WsbenchTick> ticks = DemoGuest.collectTicks(console, Duration.ofSeconds(1));
                if (ticks.size() >= 2) {
                    System.out.printf("wsbench %s ops/s%n", dev.thaw.measure.Demo.human(Throughput.of(ticks, Throughput.ONE_SECOND_NANOS).opsPerSecond()));
                } else if (vm.isAlive()) {
                    System.out.println("wsbench: no ticks (guest " + vm.statusOrWhyNot(Duration.ofSeconds(5)) + ")");
                    resumeIfADeadSaveLeftItPaused(vm);
                }
            }
            System.out.println("QEMU exited: " + vm.describeState());
            return 0;
        }
    }

    /** The guest this command owns runs unless told otherwise: a thaw save killed mid-save (no cleanup) left it paused. */
    private static void resumeIfADeadSaveLeftItPaused(QemuVm vm) {
        try {
            SaveHold.resumeIfLeftPaused(vm.extraQmpSocket(), vm.qmp()).ifPresent(r -> System.out.println(r.message()));
        } catch (QmpException e) {
            System.out.println("cannot check for a save that died holding the guest: " + e.getMessage());
        }
    }
}
