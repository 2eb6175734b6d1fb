package dev.thaw.qemu;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * Everything that decides the QEMU command line of a guest. A restore must start QEMU with the same
 * configuration as the saved guest (same machine type, devices and memory), plus {@code -incoming defer}.
 *
 * @param name              a name for logs, threads and {@code -name}; no commas
 * @param machineType       a versioned machine type such as {@code pc-i440fx-7.2}, never an alias like {@code pc}
 * @param memoryMiB         guest RAM in MiB
 * @param kernelCommandLine the guest kernel's command line ({@code -append})
 * @param incomingDefer     start with {@code -incoming defer} (the destination of a restore)
 * @param startPaused       start with {@code -S}
 * @param extraArgs         further QEMU arguments (devices), part of the configuration a restore repeats
 */
public record VmConfig(String name, String machineType, Accel accel, long memoryMiB, int cpuCount,
                       Path kernel, Path initrd, String kernelCommandLine,
                       boolean incomingDefer, boolean startPaused, List<String> extraArgs) {
    private static final Pattern VERSIONED_MACHINE = Pattern.compile("[a-z0-9-]+-\\d+\\.\\d+");
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    public VmConfig {
        Objects.requireNonNull(accel, "accel");
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(initrd, "initrd");
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("VM name: expected 1-64 of [A-Za-z0-9._-], actual '" + name + "'");
        }
        if (machineType == null || !VERSIONED_MACHINE.matcher(machineType).matches()) {
            throw new IllegalArgumentException("machine type: expected a versioned type such as pc-i440fx-7.2"
                    + " (an alias such as 'pc' changes meaning between QEMU versions), actual '" + machineType + "'");
        }
        if (memoryMiB < 64) {
            throw new IllegalArgumentException("guest memory: expected at least 64 MiB, actual " + memoryMiB + " MiB");
        }
        if (cpuCount < 1) {
            throw new IllegalArgumentException("cpu count: expected at least 1, actual " + cpuCount);
        }
        kernelCommandLine = kernelCommandLine == null ? "" : kernelCommandLine;
        extraArgs = List.copyOf(extraArgs == null ? List.of() : extraArgs);
    }

    /** The same configuration with further QEMU arguments (for example a different memory backend). */
    public VmConfig withExtraArgs(List<String> more) {
        List<String> all = new ArrayList<>(extraArgs);
        all.addAll(more);
        return new VmConfig(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer, startPaused, all);
    }

    /** The same guest, started as the destination of a restore. */
    public VmConfig asIncoming(String newName) {
        return new VmConfig(newName, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine,
                true, startPaused, extraArgs);
    }

    /** The same guest, started paused ({@code -S}) and not as a migration destination (for example to {@code loadvm} into). */
    public VmConfig asPaused(String newName) {
        return new VmConfig(newName, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine,
                false, true, extraArgs);
    }

    /**
     * The QEMU arguments, given the per-launch socket paths. The serial console (ttyS0) is QEMU's
     * stdio, which Thaw reads continuously; ttyS1 is the guest agent's port, on a unix socket.
     */
    public List<String> qemuArguments(String qemuBinary, Path qmpSocket, Path controlSocket) {
        return qemuArguments(qemuBinary, qmpSocket, null, controlSocket);
    }

    /**
     * @param extraQmpSocket a second QMP monitor for other clients (QEMU serves one client per
     *                       monitor socket, and Thaw keeps the first); null for none
     */
    public List<String> qemuArguments(String qemuBinary, Path qmpSocket, Path extraQmpSocket, Path controlSocket) {
        List<String> args = new ArrayList<>(List.of(qemuBinary,
                "-name", "guest=" + name + ",debug-threads=on",
                "-machine", machineType,
                "-accel", accel.qemuName(),
                "-cpu", "qemu64",
                "-smp", Integer.toString(cpuCount),
                "-m", memoryMiB + "M",
                "-nodefaults", "-display", "none", "-no-user-config", "-no-reboot",
                "-chardev", "stdio,id=console,signal=off",
                "-serial", "chardev:console",
                "-chardev", "socket,id=control,path=" + controlSocket + ",server=on,wait=off",
                "-serial", "chardev:control",
                "-chardev", "socket,id=qmp,path=" + qmpSocket + ",server=on,wait=off",
                "-mon", "chardev=qmp,mode=control",
                "-kernel", kernel.toString(),
                "-initrd", initrd.toString(),
                "-append", kernelCommandLine));
        if (extraQmpSocket != null) {
            args.addAll(List.of("-chardev", "socket,id=qmp-extra,path=" + extraQmpSocket + ",server=on,wait=off",
                    "-mon", "chardev=qmp-extra,mode=control"));
        }
        args.addAll(extraArgs);
        if (startPaused) {
            args.add("-S");
        }
        if (incomingDefer) {
            args.addAll(List.of("-incoming", "defer"));
        }
        return args;
    }
}
