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

    /** QMP's answers as a test gives them: each device's QOM path, type, devfn, MAC and query-pci entry. */
    private static class Facts implements ForeignCommandLine.DeviceFacts {
        final java.util.Map<String, String> types = new java.util.HashMap<>();
        final java.util.Map<String, Integer> devfns = new java.util.HashMap<>();
        final java.util.Map<String, String> macs = new java.util.HashMap<>();
        final java.util.Map<String, Integer> vectors = new java.util.HashMap<>();
        final List<String> boardNics = new ArrayList<>();
        final List<ForeignCommandLine.PciDevice> pci = new ArrayList<>();

        /** A PCI device at {@code qomPath} (a NIC if {@code mac} is not null), listed by query-pci with {@code qdevId}. */
        Facts device(String qomPath, String type, int devfn, String mac, String qdevId) {
            types.put(qomPath, type);
            devfns.put(qomPath, devfn);
            if (mac != null) macs.put(qomPath, mac);
            if (type.equals("virtio-net-pci")) vectors.put(qomPath, qomPath.startsWith("/machine/unattached/") ? 0 : 4);
            if (qomPath.startsWith("/machine/unattached/")) boardNics.add(qomPath);
            pci.add(new ForeignCommandLine.PciDevice(devfn, qdevId, mac != null ? 0x0200 : 0x00ff));
            return this;
        }

        private static <T> T known(java.util.Map<String, T> map, String qomPath, String property) {
            T v = map.get(qomPath);
            if (v == null) throw new IllegalArgumentException("qom-get " + qomPath + " " + property + ": expected a value, actual QEMU's error");
            return v;
        }

        @Override public String type(String qomPath) { return known(types, qomPath, "type"); }
        @Override public int devfn(String qomPath) { return known(devfns, qomPath, "addr"); }
        @Override public String mac(String qomPath) { return known(macs, qomPath, "mac"); }
        @Override public int vectors(String qomPath) { return known(vectors, qomPath, "vectors"); }
        @Override public List<String> boardNics() { return boardNics; }
        @Override public List<ForeignCommandLine.PciDevice> pciDevices() { return pci; }
    }

    /** Facts for a command line whose every device is placed on it: QMP is asked only for query-pci (here: no devices). */
    private static final ForeignCommandLine.DeviceFacts UNASKED = new Facts() {
        @Override public String type(String qomPath) { throw new AssertionError("QMP asked"); }
        @Override public List<String> boardNics() { throw new AssertionError("QMP asked"); }
    };

    @Test
    void replaysDevicesAndResolvesFilesAgainstQemusWorkingDirectory() {
        ForeignCommandLine c = ForeignCommandLine.parse(line("-blockdev", "driver=raw,node-name=d1,read-only=on,file.driver=file,file.filename=/x.img",
                "-device", "virtio-blk-pci,drive=d1,id=vd1", "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,addr=05,mac=52:54:00:00:00:01",
                "-device", "vmgenid,guid=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "-object", "iothread,id=io0",
                "-device", "virtio-balloon-pci,addr=06,free-page-reporting=on,free-page-hint=on,iothread=io0", "--enable-kvm"), CWD);
        assertThat(c.kernel()).isEqualTo(Path.of("/srv/vm/vmlinuz"));
        assertThat(c.initrd()).isEqualTo(Path.of("/boot/initrd.img"));
        assertThat(c.kernelCommandLine()).isEqualTo("console=ttyS0");
        assertThat(c.accel()).isEqualTo(Accel.KVM);
        assertThat(c.serialPorts()).isEqualTo(1);
        // Disks come from QMP; only the allowlisted devices are replayed as arguments.
        // vmgenid is no PCI device: no address to repeat (a restore replaces its GUID: RestoreIdentity).
        List<String> replayed = c.replayedArgs(UNASKED, List.of());
        assertThat(replayed).containsExactly("-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,addr=05,mac=52:54:00:00:00:01",
                "-device", "vmgenid,guid=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "-object", "iothread,id=io0",
                "-device", "virtio-balloon-pci,addr=06,free-page-reporting=on,free-page-hint=on,iothread=io0");
        // What the image records, and inspect reports.
        assertThat(FreePages.of(QemuOption.parse(replayed))).isEqualTo(FreePages.REPORTING_AND_HINT);
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
        assertThatThrownBy(() -> ForeignCommandLine.parse(firmwareLine("-L", "help"), CWD))
                .hasMessageContaining("(-L help) cannot be replayed: expected a directory, actual 'help'");
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
                        + " [e1000, e1000e, virtio-balloon-pci, virtio-blk-pci, virtio-net-pci, vmgenid] as its type, actual 'virtio-rng-pci'");
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

    @Test
    void placesADeviceWithoutAddrWhereQmpSaysQemuPutItWithItsMac() {
        // Without id= QEMU names a -device /machine/peripheral-anon/device[N], N counting every such -device (disks and vmgenid too).
        ForeignCommandLine c = ForeignCommandLine.parse(line("-device", "vmgenid", "-netdev", "user,id=n0",
                "-device", "virtio-net-pci,netdev=n0,bootindex=2", "-drive", "file=d.img,if=none,id=d1,format=raw",
                "-device", "virtio-blk-pci,drive=d1", "-device", "virtio-balloon-pci,id=bal", "-netdev", "user,id=n1",
                "-device", "e1000,netdev=n1,id=e0,addr=07"), CWD);
        Facts qemu = new Facts().device("/machine/peripheral-anon/device[1]", "virtio-net-pci", 3 << 3, "52:54:00:12:34:56", "")
                .device("/machine/peripheral-anon/device[2]", "virtio-blk-pci", 4 << 3, null, "")
                .device("/machine/peripheral/bal", "virtio-balloon-pci", 5 << 3, null, "bal")
                .device("/machine/peripheral/e0", "e1000", 7 << 3, "52:54:00:12:34:57", "e0");
        assertThat(c.replayedArgs(qemu, List.of("04.0"))).containsExactly("-device", "vmgenid", "-netdev", "user,id=n0",
                "-device", "virtio-net-pci,netdev=n0,bootindex=2,addr=03.0,mac=52:54:00:12:34:56",
                "-device", "virtio-balloon-pci,id=bal,addr=05.0", "-netdev", "user,id=n1",
                "-device", "e1000,netdev=n1,id=e0,addr=07,mac=52:54:00:12:34:57");

        // QMP's answers that do not fit the command line: refused, saying what was expected where.
        record Wrong(Facts facts, String message) {}
        List<Wrong> wrong = List.of(
                new Wrong(new Facts().device("/machine/peripheral-anon/device[1]", "virtio-balloon-pci", 3 << 3, null, "")
                        .device("/machine/peripheral/bal", "virtio-balloon-pci", 5 << 3, null, "bal")
                        .device("/machine/peripheral/e0", "e1000", 7 << 3, "52:54:00:12:34:57", "e0"),
                        "argument 30 (-device virtio-net-pci,netdev=n0,bootindex=2): expected QEMU's virtio-net-pci at"
                                + " /machine/peripheral-anon/device[1], actual 'virtio-balloon-pci'"),
                new Wrong(new Facts().device("/machine/peripheral-anon/device[1]", "virtio-net-pci", 3 << 3, "52:54:00:12:34:56", "")
                        .device("/machine/peripheral/bal", "virtio-balloon-pci", 5 << 3, null, "bal")
                        .device("/machine/peripheral/e0", "e1000", 8 << 3, "52:54:00:12:34:57", "e0"),
                        "argument 40 (-device e1000,netdev=n1,id=e0,addr=07): expected QEMU's device at /machine/peripheral/e0 at addr=07,"
                                + " actual 08.0"),
                new Wrong(new Facts().device("/machine/peripheral-anon/device[1]", "virtio-net-pci", 3 << 3, "52:54:00:12:34:56", "other")
                        .device("/machine/peripheral/bal", "virtio-balloon-pci", 5 << 3, null, "bal")
                        .device("/machine/peripheral/e0", "e1000", 7 << 3, "52:54:00:12:34:57", "e0"),
                        "argument 30 (-device virtio-net-pci,netdev=n0,bootindex=2): expected query-pci's device at 03.0 to have id '',"
                                + " actual 'other'"),
                new Wrong(new Facts().device("/machine/peripheral/bal", "virtio-balloon-pci", 5 << 3, null, "bal"),
                        "qom-get /machine/peripheral-anon/device[1] type: expected a value, actual QEMU's error"),
                new Wrong(new Facts().device("/machine/peripheral-anon/device[1]", "virtio-net-pci", 3 << 3, "52:54:00:12:34:56", "")
                        .device("/machine/peripheral/bal", "virtio-balloon-pci", 5 << 3, null, "bal")
                        .device("/machine/peripheral/e0", "e1000", 7 << 3, "52:54:00:12:34:57", "e0")
                        .device("/machine/peripheral/hot", "e1000", 9 << 3, "52:54:00:12:34:58", "hot"),
                        "the devices on PCI bus 0: expected QEMU's board's and those of the command line and its disks (at [03.0, 04.0,"
                                + " 05.0, 07.0]), actual also a device at 09.0 (class 0x0200, id 'hot') in query-pci (a device added by"
                                + " device_add is not replayed)"));
        for (Wrong w : wrong) {
            assertThatThrownBy(() -> c.replayedArgs(w.facts(), List.of("04.0"))).isInstanceOf(IllegalArgumentException.class).hasMessage(w.message());
        }
        Facts noPci = new Facts();
        noPci.types.put("/machine/peripheral-anon/device[0]", "virtio-balloon-pci");
        noPci.devfns.put("/machine/peripheral-anon/device[0]", 6 << 3);
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-device", "virtio-balloon-pci"), CWD).replayedArgs(noPci, List.of()))
                .hasMessage("argument 26 (-device virtio-balloon-pci): expected query-pci to list a device at 06.0 (where"
                        + " /machine/peripheral-anon/device[0] is), actual none");
    }

    @Test
    void refusesAnyDeviceOnBusZeroThatIsNeitherTheBoardsNorReplayedNorADisk() {
        // Every device placed on the command line: before, query-pci was not even asked.
        ForeignCommandLine explicit = ForeignCommandLine.parse(line("-netdev", "user,id=n0",
                "-device", "virtio-net-pci,netdev=n0,addr=05,mac=52:54:00:00:00:01", "-drive", "file=d.img,if=virtio,format=raw"), CWD);
        Facts board = new Facts();
        for (int[] d : new int[][] {{0, 0x0600}, {1 << 3, 0x0601}, {(1 << 3) | 1, 0x0101}, {(1 << 3) | 3, 0x0680}}) {
            board.pci.add(new ForeignCommandLine.PciDevice(d[0], "", d[1]));
        }
        board.pci.add(new ForeignCommandLine.PciDevice(5 << 3, "", 0x0200));
        board.pci.add(new ForeignCommandLine.PciDevice(4 << 3, "", 0x0100)); // the if=virtio disk
        assertThat(explicit.replayedArgs(board, List.of("04.0"))).containsExactly("-netdev", "user,id=n0",
                "-device", "virtio-net-pci,netdev=n0,addr=05,mac=52:54:00:00:00:01");
        assertThatThrownBy(() -> explicit.replayedArgs(board, List.of()))
                .hasMessageContaining("actual also a device at 04.0 (class 0x0100) in query-pci");
        board.pci.add(new ForeignCommandLine.PciDevice(6 << 3, "hot", 0x00ff));
        assertThatThrownBy(() -> explicit.replayedArgs(board, List.of("04.0")))
                .hasMessage("the devices on PCI bus 0: expected QEMU's board's and those of the command line and its disks (at [04.0,"
                        + " 05.0]), actual also a device at 06.0 (class 0x00ff, id 'hot') in query-pci (a device added by device_add is"
                        + " not replayed)");
        // QEMU's default VGA is the board's only without -nodefaults.
        Facts vga = new Facts();
        vga.pci.add(new ForeignCommandLine.PciDevice(2 << 3, "", 0x0300));
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-net", "none"), CWD).replayedArgs(vga, List.of()))
                .hasMessageContaining("actual also a device at 02.0 (class 0x0300)");
        List<String> defaults = new ArrayList<>(line("-net", "none"));
        defaults.remove("-nodefaults");
        assertThat(ForeignCommandLine.parse(defaults, CWD).replayedArgs(vga, List.of())).containsExactly("-nic", "none");
    }

    @Test
    void refusesAJsonDeviceAndAHubWithMoreThanOneNicAndOneUserNetwork() {
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-device", "{\"driver\":\"virtio-balloon-pci\"}"), CWD))
                .isInstanceOf(QemuOption.RefusedException.class)
                .hasMessageEndingWith("(-device {\"driver\":\"virtio-balloon-pci\"}) cannot be replayed: expected type,key=value..."
                        + " (the JSON form is not read yet), actual JSON");
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-net", "nic", "-net", "user", "-net", "user,hostfwd=tcp:127.0.0.1:2222-:22"), CWD))
                .isInstanceOf(QemuOption.RefusedException.class)
                .hasMessage("the QEMU command line: expected -net nic with one -net user (QEMU's hub 0 with two ports, replayed as"
                        + " -netdev user and a -device), actual 1 -net nic and 2 -net user (give each NIC its -netdev and -device)");
    }

    @Test
    void countsEveryAnonymousDeviceDisksIncluded() {
        // The anonymous balloon after an anonymous disk is /machine/peripheral-anon/device[1]: a count without the disk would ask
        // for device[0] (the disk) and find a virtio-blk-pci there.
        ForeignCommandLine c = ForeignCommandLine.parse(line("-drive", "file=d.img,if=none,id=d1,format=raw",
                "-device", "virtio-blk-pci,drive=d1", "-device", "virtio-balloon-pci"), CWD);
        Facts qemu = new Facts().device("/machine/peripheral-anon/device[0]", "virtio-blk-pci", 4 << 3, null, "")
                .device("/machine/peripheral-anon/device[1]", "virtio-balloon-pci", 5 << 3, null, "");
        assertThat(c.replayedArgs(qemu, List.of("04.0"))).containsExactly("-device", "virtio-balloon-pci,addr=05.0");
    }

    @Test
    void replaysTheNicShorthandsAsANetdevAndADeviceWhereQemuPutThem() {
        // -nic's NICs come first, then -net nic's, whatever the order on the command line (QEMU's net_init_clients); a -nic's
        // virtio NIC has no MSI-X vectors (QEMU 7.2 leaves them 0), kept.
        ForeignCommandLine c = ForeignCommandLine.parse(line("-net", "nic,model=e1000,macaddr=52:54:00:AA:BB:CC", "-net",
                "user,hostfwd=tcp:127.0.0.1:2222-:22", "-nic", "user,model=virtio,hostfwd=tcp:127.0.0.1:8080-:80", "-boot", "c"), CWD);
        Facts qemu = new Facts().device("/machine/unattached/device[21]", "virtio-net-pci", 3 << 3, "52:54:00:12:34:56", "")
                .device("/machine/unattached/device[22]", "e1000", 4 << 3, "52:54:00:aa:bb:cc", "");
        assertThat(c.replayedArgs(qemu, List.of())).containsExactly("-boot", "order=c",
                "-netdev", "user,id=thaw-nic0,hostfwd=tcp:127.0.0.1:8080-:80", "-device", "virtio-net-pci,netdev=thaw-nic0,vectors=0,addr=03.0,mac=52:54:00:12:34:56",
                "-netdev", "user,id=thaw-nic1,hostfwd=tcp:127.0.0.1:2222-:22", "-device", "e1000,netdev=thaw-nic1,mac=52:54:00:aa:bb:cc,addr=04.0");
        assertThatThrownBy(() -> c.replayedArgs(new Facts().device("/machine/unattached/device[21]", "e1000", 3 << 3, "52:54:00:12:34:56", "")
                .device("/machine/unattached/device[22]", "e1000", 4 << 3, "52:54:00:aa:bb:cc", ""), List.of()))
                .hasMessage("argument 30 (-nic user,model=virtio,hostfwd=tcp:127.0.0.1:8080-:80): expected QEMU's NIC at"
                        + " /machine/unattached/device[21] to be virtio-net-pci, actual 'e1000'");
        assertThatThrownBy(() -> c.replayedArgs(new Facts().device("/machine/unattached/device[21]", "virtio-net-pci", 3 << 3, "52:54:00:12:34:56", ""), List.of()))
                .hasMessageStartingWith("the NICs QEMU created from -nic, -net nic or its default network: expected 2 (argument 30 (-nic")
                .hasMessageEndingWith("actual 1 [/machine/unattached/device[21]]");
        assertThatThrownBy(() -> c.replayedArgs(new Facts().device("/machine/unattached/device[21]", "virtio-net-pci", 3 << 3, "52:54:00:12:34:56", "")
                .device("/machine/unattached/device[22]", "e1000", 4 << 3, "52:54:00:12:34:57", ""), List.of()))
                .hasMessage("argument 26 (-net nic,model=e1000,macaddr=52:54:00:AA:BB:CC) with argument 28 (-net user,hostfwd=tcp:127.0.0.1:2222-:22):"
                        + " expected QEMU's NIC at /machine/unattached/device[22] to have mac 52:54:00:aa:bb:cc, actual 52:54:00:12:34:57");

        // Without -nodefaults and without a network option, QEMU's default NIC (e1000 on pc) on its user network, made explicit.
        List<String> defaults = new ArrayList<>(line());
        defaults.remove("-nodefaults");
        Facts pc = new Facts().device("/machine/unattached/device[21]", "e1000", 3 << 3, "52:54:00:12:34:56", "");
        assertThat(ForeignCommandLine.parse(defaults, CWD).replayedArgs(pc, List.of())).containsExactly("-netdev", "user,id=thaw-nic0",
                "-device", "e1000,netdev=thaw-nic0,addr=03.0,mac=52:54:00:12:34:56");
        // No network at all: the restore's QEMU must not add the default NIC either. An id Thaw would take is left to its owner.
        defaults.addAll(List.of("-net", "none"));
        assertThat(ForeignCommandLine.parse(defaults, CWD).replayedArgs(UNASKED, List.of())).containsExactly("-nic", "none");
        assertThat(ForeignCommandLine.parse(line("-netdev", "user,id=thaw-nic0", "-nic", "user,id=mine,mac=52:54:00:00:00:09,model=e1000e"), CWD)
                .replayedArgs(new Facts().device("/machine/unattached/device[3]", "e1000e", 2 << 3, "52:54:00:00:00:09", ""), List.of()))
                .containsExactly("-netdev", "user,id=thaw-nic0", "-netdev", "user,id=thaw-nic1",
                        "-device", "e1000e,netdev=thaw-nic1,mac=52:54:00:00:00:09,addr=02.0");
    }

    @Test
    void refusesTheNicShorthandsThatCannotBeReplayedSaying() {
        record Case(List<String> argv, String message) {}
        List<Case> cases = List.of(
                new Case(line("-nic", "tap,script=/etc/qemu-ifup"), "(-nic tap,script=/etc/qemu-ifup) cannot be replayed: expected user or"
                        + " none as its type (a tap's, bridge's or socket's host side is not recreated from an image), actual 'tap'"),
                new Case(line("-nic", "user,model=rtl8139"), "cannot be replayed: expected model= one of [e1000, e1000e, virtio,"
                        + " virtio-net-pci] (the NICs Thaw replays), actual 'rtl8139'"),
                new Case(line("-nic", "user,hostfwd=tcp::2222-:22"), "(-nic user,hostfwd=tcp::2222-:22) cannot be replayed: expected"
                        + " hostfwd to match"),
                new Case(line("-nic", "user,smb=/srv"), "(-nic user,smb=/srv) cannot be replayed: expected key=value with a key among"
                        + " [hostfwd, id]"),
                new Case(line("-net", "nic"), "expected -net nic with one -net user (QEMU's hub 0 with two ports, replayed as -netdev"
                        + " user and a -device), actual 1 -net nic and 0 -net user"),
                new Case(line("-net", "nic", "-net", "nic", "-net", "user"), "actual 2 -net nic and 1 -net user"),
                new Case(line("-net", "nic,vectors=4", "-net", "user"), "(-net nic,vectors=4) cannot be replayed: expected key=value with a"
                        + " key among [addr, macaddr, model, name], actual 'vectors=4'"),
                new Case(line("-net", "socket,listen=:1234"), "expected nic, user or none as its type"),
                new Case(line("-net", "none,x=1"), "expected none without properties"),
                new Case(line("-nic", "none,model=e1000"), "(-nic none,model=e1000) cannot be replayed"),
                new Case(line("-nic", "user,mac=01:02"), "expected mac to match"));
        for (Case c : cases) {
            assertThatThrownBy(() -> ForeignCommandLine.parse(c.argv(), CWD)).as(c.message()).isInstanceOf(QemuOption.RefusedException.class)
                    .hasMessageContaining(c.message());
        }
    }

    @Test
    void replaysBootAsGivenAndRefusesASplashPicture() {
        assertThat(ForeignCommandLine.parse(line("-boot", "order=cdn,once=d,menu=on,strict=on,splash-time=500,reboot-timeout=-1"), CWD)
                .replayedArgs(UNASKED, List.of())).containsExactly("-boot", "order=cdn,once=d,menu=on,strict=on,splash-time=500,reboot-timeout=-1");
        assertThat(ForeignCommandLine.parse(line("-boot", "dc,menu=off"), CWD).replayedArgs(UNASKED, List.of())).containsExactly("-boot", "order=dc,menu=off");
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-boot", "menu=on,splash=/srv/logo.jpg"), CWD))
                .hasMessageContaining("(-boot menu=on,splash=/srv/logo.jpg) cannot be replayed: expected no splash= (the splash picture"
                        + " is a host file the image does not carry), actual 'splash=/srv/logo.jpg'");
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-boot", "order=cc"), CWD)).hasMessageContaining("expected order to match");
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-boot", "order=x"), CWD)).hasMessageContaining("expected order to match");
        assertThatThrownBy(() -> ForeignCommandLine.parse(line("-boot", "c", "-boot", "d"), CWD)).hasMessageContaining("expected one -boot, actual a second");
        // -L: where QEMU looked for firmware first, resolved against its working directory (ForeignGuest resolves -bios through it).
        assertThat(ForeignCommandLine.parse(firmwareLine("-L", "fw", "-L", "/opt/fw", "-bios", "OVMF.fd"), CWD).firmwareDirectories())
                .containsExactly(Path.of("/srv/vm/fw"), Path.of("/opt/fw"));
    }
}
