package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class VmConfigTest {
    private static VmConfig config(String machine) {
        return new VmConfig("vm1", machine, Accel.TCG, 512, 1, Path.of("/k"), Path.of("/i"), "console=ttyS0", false, false,
                List.of("-device", "virtio-balloon-pci"));
    }

    @Test
    void rejectsMachineTypeAliases() {
        for (String alias : List.of("pc", "q35", "pc-i440fx", "")) {
            assertThatThrownBy(() -> config(alias)).hasMessageContaining("expected a versioned type").hasMessageContaining("'" + alias + "'");
        }
        assertThat(config("pc-q35-10.0").machineType()).isEqualTo("pc-q35-10.0");
    }

    @Test
    void commandLineHasTheVersionedMachineQmpAndBothSerialPorts() {
        List<String> args = config("pc-i440fx-7.2").qemuArguments("qemu", Path.of("/r/qmp.sock"), Path.of("/r/c.sock"));
        assertThat(args).containsSubsequence("-machine", "pc-i440fx-7.2");
        assertThat(args).containsSubsequence("-accel", "tcg");
        assertThat(args).containsSubsequence("-m", "512M");
        assertThat(args).contains("socket,id=qmp,path=/r/qmp.sock,server=on,wait=off", "socket,id=control,path=/r/c.sock,server=on,wait=off");
        assertThat(args).containsSubsequence("-device", "virtio-balloon-pci");
        assertThat(args).doesNotContain("-incoming", "-S");
    }

    @Test
    void incomingConfigurationDiffersOnlyByIncomingDefer() {
        VmConfig saved = config("pc-i440fx-7.2");
        VmConfig incoming = saved.asIncoming("vm1-restore");
        List<String> a = saved.qemuArguments("qemu", Path.of("/q"), Path.of("/c"));
        List<String> b = incoming.qemuArguments("qemu", Path.of("/q"), Path.of("/c"));
        assertThat(b.subList(b.size() - 2, b.size())).containsExactly("-incoming", "defer");
        assertThat(b.subList(3, b.size() - 2)).isEqualTo(a.subList(3, a.size())); // all but -name
    }

    @Test
    void aGuestItsFirmwareBootsHasNoKernelOnItsCommandLineAndItsBiosFromTheConfiguration() {
        VmConfig disk = new VmConfig("vm1", "pc-i440fx-7.2", Accel.TCG, 512, 1, null, null, "", false, false, List.of(), List.of());
        List<String> args = disk.asIncoming("r").qemuArguments("qemu", Path.of("/q"), Path.of("/c"));
        assertThat(args).doesNotContain("-kernel", "-initrd", "-append", "-bios");
        assertThat(disk.guestFiles()).isEmpty();
        VmConfig bios = new VmConfig("vm1", "pc-i440fx-7.2", Accel.TCG, 512, 1, null, null, "", false, false, List.of(), List.of(),
                Path.of("/fw/bios.bin"));
        assertThat(bios.asIncoming("r").qemuArguments("qemu", Path.of("/q"), Path.of("/c"))).containsSubsequence("-bios", "/fw/bios.bin");
        assertThat(bios.guestFiles()).extracting(java.util.Map.Entry::getKey).containsExactly("firmware");
        VmConfig flash = new VmConfig("vm1", "pc-i440fx-7.2", Accel.TCG, 512, 1, null, null, "", false, false, List.of(), List.of(),
                null, List.of(new VmConfig.Flash(0, Path.of("/fw/code.fd"), true), new VmConfig.Flash(1, Path.of("/fw/vars.fd"), false)));
        assertThat(flash.qemuArguments("qemu", Path.of("/q"), Path.of("/c"))).containsSubsequence(
                "-drive", "if=pflash,format=raw,unit=0,file=/fw/code.fd,readonly=on", "-drive", "if=pflash,format=raw,unit=1,file=/fw/vars.fd");
        assertThat(flash.guestFiles()).extracting(java.util.Map.Entry::getKey).containsExactly("flash0", "flash1");
        assertThat(flash.withGuestFile("flash1", Path.of("/r/vars.fd")).flash().get(1)).isEqualTo(new VmConfig.Flash(1, Path.of("/r/vars.fd"), false));
        assertThat(bios.withGuestFile("firmware", Path.of("/img/guest/firmware")).firmware()).isEqualTo(Path.of("/img/guest/firmware"));
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, 512, 1, null, null, "", false, false, null, null,
                Path.of("/b.bin"), List.of(new VmConfig.Flash(0, Path.of("/fw/code.fd"), true))))
                .hasMessageContaining("firmware: expected -bios or pflash, actual both");
        assertThatThrownBy(() -> new VmConfig.Flash(2, Path.of("/f"), false)).hasMessage("pflash unit: expected 0 or 1, actual 2");
        assertThat(config("pc-i440fx-7.2").qemuArguments("qemu", Path.of("/q"), Path.of("/c")))
                .containsSubsequence("-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0").doesNotContain("-bios");
    }

    @Test
    void refusesHalfADirectBootAndARelativeFirmware() {
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, 512, 1, Path.of("/k"), null, "", false, false, null))
                .hasMessage("guest kernel and initrd: expected both (QEMU boots the kernel) or neither (the firmware boots a disk),"
                        + " actual a kernel without an initrd");
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, 512, 1, null, null, "console=ttyS0", false, false, null))
                .hasMessageContaining("kernel command line: expected none without a kernel").hasMessageContaining("actual 'console=ttyS0'");
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, 512, 1, null, null, "", false, false, null, null,
                Path.of("bios.bin"))).hasMessage("guest firmware: expected an absolute path, actual 'bios.bin'");
    }

    /** A vm.json as a recorded configuration without a firmware field, with the kernel and initrd given as JSON values. */
    private static Path vmJson(Path dir, String kernelJson, String initrdJson) throws java.io.IOException {
        Path file = dir.resolve("vm.json");
        java.nio.file.Files.writeString(file, "{\"name\":\"vm1\",\"machineType\":\"pc-i440fx-7.2\",\"accel\":\"TCG\",\"memoryMiB\":512,"
                + "\"cpuCount\":1,\"kernel\":" + kernelJson + ",\"initrd\":" + initrdJson + ",\"kernelCommandLine\":\"\",\"incomingDefer\":false,"
                + "\"startPaused\":false,\"extraArgs\":[]}");
        return file;
    }

    @Test
    void aRecordedConfigurationWithoutFirmwareReadsAsBefore(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        // A manifest written before -bios was replayed has no firmware field; one of a firmware-booted guest has no kernel.
        Path file = vmJson(dir, "null", "null");
        VmConfig read = VmConfig.read(file);
        assertThat(read.kernel()).isNull();
        assertThat(read.firmware()).isNull();
        assertThat(new com.fasterxml.jackson.databind.ObjectMapper().findAndRegisterModules().writeValueAsString(read))
                .as("no firmware field when there is none").doesNotContain("firmware");
        // Found by the vm-config fuzz target once a seed had null values: a file of the literal null read as no configuration.
        java.nio.file.Files.writeString(file, "null");
        assertThatThrownBy(() -> VmConfig.read(file)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage(file + ": expected a VM configuration (a JSON object), actual null");
    }

    @Test
    void rejectsBadNamesAndSizes() {
        assertThatThrownBy(() -> new VmConfig("a,b", "pc-i440fx-7.2", Accel.TCG, 512, 1, Path.of("/k"), Path.of("/i"), "", false, false, null))
                .hasMessageContaining("actual 'a,b'");
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, 8, 1, Path.of("/k"), Path.of("/i"), "", false, false, null))
                .hasMessageContaining("actual 8 MiB");
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, (1L << 20) + 1, 1, Path.of("/k"), Path.of("/i"), "", false, false, null))
                .hasMessageContaining("expected 64 to 1048576 MiB, actual 1048577 MiB");
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, 512, 256, Path.of("/k"), Path.of("/i"), "", false, false, null))
                .hasMessageContaining("cpu count: expected 1 to 255, actual 256");
    }

    /**
     * Found by the vm-config fuzz target: a vm.json whose kernel was "" (or relative) was taken, and recorded into the
     * image's manifest resolved against the saving Thaw's working directory: a restore would have launched another file.
     */
    @Test
    void aRelativeOrEmptyGuestFilePathInAConfigurationFileIsRefusedNamingTheFile(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path file = vmJson(dir, "\"\"", "\"/i\"");
        assertThatThrownBy(() -> VmConfig.read(file)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(file + ": expected a VM configuration").hasMessageContaining("guest kernel: expected an absolute path, actual ''");
        assertThatThrownBy(() -> new VmConfig("a", "pc-i440fx-7.2", Accel.TCG, 512, 1, Path.of("/k"), Path.of("initrd.cpio"), "", false, false, null))
                .hasMessageContaining("guest initrd: expected an absolute path, actual 'initrd.cpio'");
    }

    @Test
    void disksAreABlockdevAndAVirtioBlkDeviceAtTheirAddressAndSurviveJson() throws Exception {
        VmConfig c = config("pc-i440fx-7.2").withDisks(List.of(new VmConfig.Disk("disk0", "qcow2", Path.of("/v/o.qcow2"), false, "02.0", 0),
                new VmConfig.Disk("disk1", "raw", Path.of("/v/ro.img"), true, "05.0")));
        List<String> args = c.asIncoming("vm1-restore").qemuArguments("qemu", Path.of("/q"), Path.of("/c"));
        assertThat(args).as("the first disk keeps its bootindex=").containsSubsequence("-blockdev", "driver=qcow2,node-name=disk0,file.driver=file,file.filename=/v/o.qcow2",
                "-device", "virtio-blk-pci,drive=disk0,addr=02.0,bootindex=0", "-blockdev",
                "driver=raw,node-name=disk1,read-only=on,file.driver=file,file.filename=/v/ro.img", "-device",
                "virtio-blk-pci,drive=disk1,addr=05.0");
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper().findAndRegisterModules();
        assertThat(json.readValue(json.writeValueAsString(c), VmConfig.class)).isEqualTo(c);
        // A configuration written before disks existed reads as one without disks.
        com.fasterxml.jackson.databind.node.ObjectNode old = json.valueToTree(config("pc-i440fx-7.2"));
        old.remove("disks");
        assertThat(json.treeToValue(old, VmConfig.class).disks()).isEmpty();

        assertThatThrownBy(() -> new VmConfig.Disk("disk0", "qcow2", Path.of("/v/a,b.qcow2"), false, "02.0"))
                .hasMessageContaining("without commas").hasMessageContaining("actual '/v/a,b.qcow2'");
        assertThatThrownBy(() -> new VmConfig.Disk("disk0", "qcow2", Path.of("v.qcow2"), false, "02.0")).hasMessageContaining("absolute");
        assertThat(c.disks().getFirst().on(Path.of("/v/overlay.qcow2"), "qcow2", false).bootIndex()).as("an overlay keeps it").isEqualTo(0);
        assertThatThrownBy(() -> new VmConfig.Disk("disk0", "raw", Path.of("/v.img"), false, "02.0", -1))
                .hasMessage("disk disk0 boot index: expected 0-999, actual -1");
        assertThatThrownBy(() -> new VmConfig.Disk("disk0", "vmdk", Path.of("/v.vmdk"), false, "02.0"))
                .hasMessageContaining("expected raw or qcow2, actual 'vmdk'");
        assertThatThrownBy(() -> new VmConfig.Disk("disk0", "raw", Path.of("/v.img"), false, "2"))
                .hasMessageContaining("expected SS.F in hex");
        assertThatThrownBy(() -> c.withDisks(List.of(c.disks().getFirst(), c.disks().getFirst())))
                .hasMessageContaining("expected distinct node names and PCI addresses");
    }
}
