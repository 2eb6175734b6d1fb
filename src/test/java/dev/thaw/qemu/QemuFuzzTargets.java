package dev.thaw.qemu;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.fuzz.FuzzTarget;
import dev.thaw.fuzz.JsonMutator;
import dev.thaw.fuzz.Mutator;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * What Thaw reads from QEMU's side that it did not write in this run: a VM's launch configuration ({@code vm.json} beside a
 * QMP socket, {@code save --vm-config}), and what QEMU sends on a QMP connection (greeting, events, answers).
 */
public final class QemuFuzzTargets {
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    private QemuFuzzTargets() {}

    /**
     * {@code vm.json} read as {@code thaw save} and an attaching restore read it ({@link VmConfig#read}), recorded into a
     * manifest and read back as a restore does (it must read back the same), checked as a restore checks its files, and
     * rendered into QEMU's command line.
     */
    public static FuzzTarget vmConfig(Path work) throws IOException {
        Path guest = Files.createDirectories(work.resolve("guest-files"));
        Path kernel = Files.write(guest.resolve("vmlinuz"), new byte[] {1});
        Path initrd = Files.write(guest.resolve("initrd.cpio"), new byte[] {2});
        VmConfig plain = new VmConfig("thaw-guest", "pc-i440fx-7.2", Accel.TCG, 512, 1, kernel, initrd, "console=ttyS0 quiet", false,
                false, List.of());
        VmConfig redis = new VmConfig("redis-1", "pc-q35-7.2", Accel.TCG, 1024, 2, kernel, initrd, "thaw.app=redis", false, false,
                List.of("-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:0-:6379", "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56",
                        "-device", "virtio-balloon-pci"));
        // A guest its firmware boots from a disk: no kernel, the firmware in flash (code and variables).
        VmConfig flash = new VmConfig("disk-1", "pc-i440fx-7.2", Accel.TCG, 256, 2, null, null, "", false, false, List.of(), List.of(), null,
                List.of(new VmConfig.Flash(0, Files.write(guest.resolve("code.fd"), new byte[] {3}), true),
                        new VmConfig.Flash(1, Files.write(guest.resolve("vars.fd"), new byte[] {4}), false)));
        Path file = work.resolve("vm.json");
        return new FuzzTarget("vm-config", List.of(JSON.writeValueAsBytes(plain), JSON.writeValueAsBytes(redis), JSON.writeValueAsBytes(flash)),
                JsonMutator::mutate, input -> {
            Files.write(file, input);
            VmConfig config = VmConfig.read(file);
            VmConfig recorded = JSON.treeToValue(JSON.valueToTree(config), VmConfig.class);
            if (!recorded.equals(config)) throw new AssertionError("recorded into a manifest, " + config + " reads back as " + recorded);
            config.requireGuestFilesIn(List.of(guest)).requireClusterSocketsIn(List.of(work));
            config.qemuArguments(QemuVm.QEMU_BINARY, work.resolve("qmp.sock"), work.resolve("qmp-extra.sock"), work.resolve("control.sock"));
        }, List.of(IllegalArgumentException.class));
    }

    /**
     * Lines QEMU sends on QMP, each taken as {@link QmpClient}'s reader takes it ({@link QmpMessage#parse}): a greeting checked
     * as the handshake checks it, an event's fields read, an answer's value or error taken as a call takes it and read as
     * the typed calls read theirs.
     */
    public static FuzzTarget qmpAnswers() {
        String session = String.join("\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"Debian\"}, \"capabilities\": [\"oob\"]}}",
                "{\"return\": {}, \"id\": 1}",
                "{\"timestamp\": {\"seconds\": 1764390000, \"microseconds\": 123456}, \"event\": \"STOP\"}",
                "{\"return\": {\"status\": \"paused\", \"singlestep\": false, \"running\": false}, \"id\": 2}",
                "{\"timestamp\": {\"seconds\": 1764390001, \"microseconds\": 5}, \"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}",
                "{\"return\": {\"status\": \"completed\", \"downtime\": 12, \"ram\": {\"transferred\": 4096, \"remaining\": 0}}, \"id\": 3}",
                "{\"id\": 4, \"error\": {\"class\": \"GenericError\", \"desc\": \"There's a migration process in progress\"}}",
                "{\"return\": [{\"capability\": \"xbzrle\", \"state\": false}, {\"capability\": \"postcopy-ram\", \"state\": true}], \"id\": 5}",
                "{\"return\": {\"status\": \"failed\", \"error-desc\": \"Unable to write to socket: Broken pipe\"}, \"id\": 6}", "");
        return new FuzzTarget("qmp-answers", List.of(session.getBytes(StandardCharsets.UTF_8)), QemuFuzzTargets::mutateLines, input -> {
            for (String line : lines(input)) {
                String text = line.strip();
                if (text.isEmpty()) continue;
                switch (QmpMessage.parse(text, 0)) {
                    case QmpMessage.Greeting g -> QmpMessage.offersOob("fuzz", g.message());
                    case QmpMessage.Event e -> e.event().dataText("status");
                    case QmpMessage.Answer a -> {
                        JsonNode value;
                        try {
                            value = QmpMessage.value("fuzz", "query-migrate", a.message());
                        } catch (QmpException.CommandFailed e) {
                            // QEMU's error answer: what the call throws to its caller, whose message names it
                            if (e.errorClass() == null || e.description() == null) throw new AssertionError("an error answer read as " + e);
                            continue;
                        }
                        QmpClient.RunState.of(value);
                        QmpClient.MigrationInfo info = QmpClient.MigrationInfo.of(value);
                        info.errorDescription();
                        info.raw().path("ram").path("transferred").asLong();
                        for (JsonNode c : value) c.path("capability").asText(); // query-migrate-capabilities, as a save reads it
                    }
                    case QmpMessage.Unusable u -> {
                        if (u.why().isBlank()) throw new AssertionError("an unusable line without a reason: " + text);
                    }
                }
            }
        }, List.of(QmpException.class));
    }

    /** The reader's framing: lines cut at '\n', each decoded as UTF-8. */
    private static List<String> lines(byte[] input) {
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i <= input.length; i++) {
            if (i == input.length || input[i] == '\n') {
                out.add(new String(input, start, i - start, StandardCharsets.UTF_8));
                start = i + 1;
            }
        }
        return out;
    }

    /** A line's JSON mutated by its tree half the time (reaching what reads the values), the bytes otherwise. */
    private static byte[] mutateLines(byte[] input, List<byte[]> corpus, Random random) {
        if (random.nextBoolean()) return Mutator.mutate(input, corpus, random);
        List<String> lines = lines(input);
        int i = random.nextInt(lines.size());
        lines.set(i, new String(JsonMutator.mutate(lines.get(i).getBytes(StandardCharsets.UTF_8), corpus, random), StandardCharsets.UTF_8)
                .replace('\n', ' '));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(String.join("\n", lines).getBytes(StandardCharsets.UTF_8));
        return out.toByteArray();
    }
}
