package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What Thaw replays of a QEMU it did not start, and what it refuses, naming the argument. */
class ForeignCommandLineTest {
    private static final Path CWD = Path.of("/srv/vm");

    private static List<String> line(String... more) {
        List<String> argv = new ArrayList<>(List.of("/usr/bin/qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "256M", "-smp", "1",
                "-nodefaults", "-display", "none", "-name", "web", "-kernel", "vmlinuz", "-initrd", "/boot/initrd.img", "-append",
                "console=ttyS0", "-serial", "stdio", "-qmp", "unix:qmp.sock,server=on,wait=off", "-chardev", "socket,id=c,path=a.sock",
                "-drive", "file=disk.qcow2,format=qcow2,if=virtio"));
        argv.addAll(List.of(more));
        return argv;
    }

    @Test
    void replaysDevicesAndResolvesFilesAgainstQemusWorkingDirectory() {
        ForeignCommandLine c = ForeignCommandLine.parse(line("-blockdev", "driver=raw,node-name=d1,read-only=on,file.driver=file,file.filename=/x.img",
                "-device", "virtio-blk-pci,drive=d1,id=vd1", "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,addr=05",
                "-device", "vmgenid,guid=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "-object", "iothread,id=io0",
                "-device", "virtio-balloon-pci,addr=06,free-page-reporting=on,free-page-hint=on,iothread=io0", "--enable-kvm"), CWD);
        assertThat(c.kernel()).isEqualTo(Path.of("/srv/vm/vmlinuz"));
        assertThat(c.initrd()).isEqualTo(Path.of("/boot/initrd.img"));
        assertThat(c.kernelCommandLine()).isEqualTo("console=ttyS0");
        assertThat(c.accel()).isEqualTo(Accel.KVM);
        assertThat(c.serialPorts()).isEqualTo(1);
        // Disks come from QMP; only the allowlisted devices are replayed as arguments.
        // vmgenid is no PCI device: no address to repeat (a restore replaces its GUID: RestoreIdentity).
        assertThat(c.replayedArgs()).containsExactly("-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,addr=05",
                "-device", "vmgenid,guid=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "-object", "iothread,id=io0",
                "-device", "virtio-balloon-pci,addr=06,free-page-reporting=on,free-page-hint=on,iothread=io0");
        // What the image records, and inspect reports.
        assertThat(FreePages.of(QemuOption.parse(c.replayedArgs()))).isEqualTo(FreePages.REPORTING_AND_HINT);
    }

    /** The line without -kernel, -initrd and -append: a guest its firmware boots from a disk. */
    private static List<String> firmwareLine(String... more) {
        List<String> argv = new ArrayList<>(line(more));
        for (String option : List.of("-kernel", "-initrd", "-append")) {
            int at = argv.indexOf(option);
            argv.subList(at, at + 2).clear();
        }
        return argv;
    }

    @Test
    void acceptsAGuestItsFirmwareBootsFromADiskAndRecordsItsBios() {
        ForeignCommandLine c = ForeignCommandLine.parse(firmwareLine("-drive", "file=boot.img,if=none,id=d0,format=raw",
                "-device", "virtio-blk-pci,drive=d0,addr=04,bootindex=0"), CWD);
        assertThat(c.kernel()).isNull();
        assertThat(c.initrd()).isNull();
        assertThat(c.kernelCommandLine()).isEmpty();
        assertThat(c.firmware()).as("QEMU's default firmware").isNull();
        assertThat(ForeignCommandLine.parse(firmwareLine("-bios", "fw/OVMF.fd"), CWD).firmware()).isEqualTo(Path.of("/srv/vm/fw/OVMF.fd"));
        assertThat(ForeignCommandLine.parse(firmwareLine("-bios", "/usr/share/seabios/bios.bin"), CWD).firmware())
                .isEqualTo(Path.of("/usr/share/seabios/bios.bin"));
        // A bare name is looked up as QEMU does (its working directory, then its data directories): by ForeignGuest, not here.
        assertThat(ForeignCommandLine.parse(firmwareLine("-bios", "bios-256k.bin"), CWD).firmware()).isEqualTo(Path.of("bios-256k.bin"));
        assertThat(ForeignCommandLine.parse(line("-bios", "bios.bin"), CWD).kernel()).as("-bios with -kernel").isEqualTo(Path.of("/srv/vm/vmlinuz"));
        // OVMF's way: its code read-only in unit 0, its variables writable in unit 1 (without unit=, in the order given).
        ForeignCommandLine ovmf = ForeignCommandLine.parse(firmwareLine("-drive",
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd", "-drive", "if=pflash,format=raw,file=vars.fd"), CWD);
        assertThat(ovmf.flash()).containsExactly(new VmConfig.Flash(0, Path.of("/usr/share/OVMF/OVMF_CODE.fd"), true),
                new VmConfig.Flash(1, Path.of("/srv/vm/vars.fd"), false));
        assertThat(ovmf.firmware()).isNull();
    }

    @Test
    void refusesHalfADirectBootAndFirmwareItCannotCarry() {
        List<String> noInitrd = new ArrayList<>(line());
        noInitrd.subList(noInitrd.indexOf("-initrd"), noInitrd.indexOf("-initrd") + 2).clear();
        assertThatThrownBy(() -> ForeignCommandLine.parse(noInitrd, CWD))
                .hasMessage("the QEMU command line: expected -initrd with -kernel, actual no -initrd (a kernel booted without an"
                        + " initramfs is not replayed yet)");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-append", "console=ttyS0"), CWD))
                .hasMessage("the QEMU command line: expected -kernel with -append, actual no -kernel (without one the firmware boots a"
                        + " disk and QEMU refuses -append)");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-initrd", "/i"), CWD))
                .hasMessageContaining("expected -kernel with -initrd, actual no -kernel");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-L", "/opt/fw"), CWD))
                .hasMessageContaining("(-L) cannot be replayed: expected none of [L, daemonize, global], actual -L");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-drive", "if=pflash,format=raw,unit=1,file=vars.fd"), CWD))
                .hasMessage("the QEMU command line: expected pflash unit 0 (the firmware's code) and at most one unit 1 (its"
                        + " variables), actual units [1]");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-drive", "if=pflash,format=qcow2,file=code.fd"), CWD))
                .hasMessageContaining("cannot be replayed: expected format to match raw (a firmware's flash), actual 'format=qcow2'");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-bios", "b.bin", "-drive", "if=pflash,format=raw,file=code.fd"), CWD))
                .hasMessageContaining("expected -bios or if=pflash firmware, actual both");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-drive", "if=pflash,format=raw,file=a.fd", "-drive",
                "if=pflash,format=raw,file=b.fd", "-drive", "if=pflash,format=raw,file=c.fd"), CWD))
                .hasMessageContaining("expected at most two pflash units (code and variables), actual a third");
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-boot", "order=c"), CWD))
                .hasMessageContaining("(-boot) cannot be replayed: expected one of").hasMessageContaining("actual '-boot'");
    }

    @Test
    void refusesWhatCannotBeReplayedNamingTheArgument() {
        record Case(List<String> argv, String named) {}
        List<Case> cases = List.of(
                new Case(line("-daemonize"), "-daemonize"),
                new Case(line("-device", "vfio-pci,host=01:00.0"), "-device vfio-pci,host=01:00.0"),
                new Case(line("-netdev", "tap,id=t0,script=/etc/qemu-ifup"), "-netdev tap,id=t0,script=/etc/qemu-ifup"),
                new Case(line("-chardev", "socket,id=vu,path=/v.sock", "-netdev", "vhost-user,id=v0,chardev=vu"), "-netdev vhost-user"),
                new Case(line("-drive", "file=/x.img,if=ide"), "-drive file=/x.img,if=ide"),
                new Case(line("-drive", "file=/x.img,if=virtio,snapshot=on"), "snapshot=on"),
                new Case(line("-device", "virtio-net-pci,netdev=n0"), "expected addr=SLOT"),
                new Case(line("-cpu", "host"), "-cpu host"),
                new Case(line("-rtc", "base=utc"), "-rtc"),
                new Case(line("-object", "memory-backend-file,id=m,mem-path=/dev/shm/x,size=1G,share=on"), "-object"),
                new Case(line("-object", "iothread,id=io0,poll-max-ns=0"), "-object iothread,id=io0,poll-max-ns=0"),
                new Case(line("/var/disk.img"), "/var/disk.img"));
        for (Case c : cases) {
            assertThatThrownBy(() -> ForeignCommandLine.parse(c.argv(), CWD)).as(c.named()).isInstanceOf(QemuOption.RefusedException.class)
                    .hasMessageContaining("cannot be replayed").hasMessageContaining(c.named()).hasMessageContaining("expected");
        }
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-device", "virtio-rng-pci"), CWD))
                .hasMessage("the QEMU command line's argument 26 (-device virtio-rng-pci) cannot be replayed: expected one of"
                        + " [virtio-balloon-pci, virtio-blk-pci, virtio-net-pci, vmgenid] as its type, actual 'virtio-rng-pci'");
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-netdev", "tap,id=t0"), CWD))
                .hasMessage("the QEMU command line's argument 26 (-netdev tap,id=t0) cannot be replayed: expected one of"
                        + " [stream, user] as its type, actual 'tap'");
        List<String> withoutDefaults = new ArrayList<>(line());
        withoutDefaults.remove("-nodefaults");
        assertThat(ForeignCommandLine.parse(withoutDefaults, CWD).qemuDefaults()).as("QEMU's default devices kept").isTrue();
        assertThat(ForeignCommandLine.parse(line(), CWD).qemuDefaults()).isFalse();
        withoutDefaults.addAll(List.of("-vga", "none"));
        assertThatThrownBy(() -> ForeignCommandLine.parse(withoutDefaults, CWD))
                .hasMessage("the QEMU command line: expected -nodefaults with -vga none, actual -vga none alone (QEMU's other default"
                        + " devices without its VGA are not replayed yet)");
        assertThatThrownBy(() -> ForeignCommandLine.parse(List.of("/usr/bin/qemu-system-aarch64"), CWD))
                .hasMessageContaining("expected qemu-system-x86_64");
    }
}
