package dev.thaw.qemu;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What a guest's virtio balloon does with the memory the guest frees (QEMU 7.2's {@code virtio-balloon-pci} properties).
 *
 * <p>{@code free-page-reporting=on}: the guest kernel ({@code CONFIG_PAGE_REPORTING}, with the {@code virtio_balloon} driver)
 * reports free 2 MiB blocks a few seconds after they are freed, and QEMU discards them ({@code hw/virtio/virtio-balloon.c},
 * {@code virtio_balloon_handle_report}: {@code ram_block_discard_range}), so they read as zero and a save elides them.
 *
 * <p>{@code free-page-hint=on} (needs an iothread): while a migration runs with the guest running, the guest hints its free
 * pages and QEMU clears them from the migration's dirty bitmap ({@code migration/ram.c}, {@code qemu_guest_free_page_hint}),
 * so the stream never carries them. QEMU starts hinting only after a bitmap sync with the guest running
 * ({@code virtio_balloon_free_page_hint_notify}, PRECOPY_NOTIFY_AFTER_BITMAP_SYNC) and never with postcopy-ram on, so a
 * save of a stopped guest, which is how every image is taken, sends every page: hinting changes only the dirty-bit
 * estimator's live probe, which stores no page.
 *
 * @param balloon   the guest has a {@code virtio-balloon-pci} device
 * @param reporting with {@code free-page-reporting=on}
 * @param hint      with {@code free-page-hint=on}
 */
public record FreePages(boolean balloon, boolean reporting, boolean hint) {
    public static final FreePages NONE = new FreePages(false, false, false);
    public static final FreePages REPORTING = new FreePages(true, true, false);
    public static final FreePages REPORTING_AND_HINT = new FreePages(true, true, true);
    /** The iothread QEMU's free-page hinting runs in (QEMU refuses {@code free-page-hint=on} without one). */
    static final String HINT_IOTHREAD = "thaw-balloon-io";
    private static final String BALLOON = "virtio-balloon-pci";

    public FreePages {
        if ((reporting || hint) && !balloon) {
            throw new IllegalArgumentException("free pages: expected a balloon for reporting or hinting, actual reporting=" + reporting
                    + " hint=" + hint + " without one");
        }
    }

    /** The choices Thaw's own guests take: {@code none}, {@code report}, {@code report,hint}. */
    public static FreePages parse(String key) {
        return switch (key.trim().toLowerCase(Locale.ROOT)) {
            case "none" -> NONE;
            case "report" -> REPORTING;
            case "report,hint", "hint,report" -> REPORTING_AND_HINT;
            default -> throw new IllegalArgumentException("free pages: expected none, report or report,hint, actual '" + key + "'");
        };
    }

    /** The QEMU arguments of Thaw's own guests for this choice, in the form {@link QemuOption} admits (empty for none). */
    public List<String> arguments() {
        if (!balloon) return List.of();
        List<String> args = new ArrayList<>();
        if (hint) args.addAll(List.of("-object", "iothread,id=" + HINT_IOTHREAD));
        StringBuilder device = new StringBuilder(BALLOON);
        if (reporting) device.append(",free-page-reporting=on");
        if (hint) device.append(",free-page-hint=on,iothread=").append(HINT_IOTHREAD);
        args.addAll(List.of("-device", device.toString()));
        return List.copyOf(args);
    }

    /** What the checked options of a configuration ({@link VmConfig#extraArgs()}) give the guest. */
    public static FreePages of(List<QemuOption> options) {
        return options.stream().filter(o -> o.isDevice(BALLOON)).findFirst()
                .map(b -> new FreePages(true, on(b, "free-page-reporting"), on(b, "free-page-hint")))
                .orElse(NONE);
    }

    /**
     * What a manifest's recorded launch configuration (its {@code vmConfig}: {@code extraArgs}) gives the guest; empty for an
     * image that records none, or options the allowlist refuses (a restore refuses those too).
     */
    public static java.util.Optional<FreePages> ofRecorded(com.fasterxml.jackson.databind.JsonNode vmConfig) {
        if (vmConfig == null || !vmConfig.isObject()) return java.util.Optional.empty();
        List<String> args = new ArrayList<>();
        for (com.fasterxml.jackson.databind.JsonNode a : vmConfig.path("extraArgs")) {
            if (!a.isTextual()) return java.util.Optional.empty();
            args.add(a.asText());
        }
        try {
            return java.util.Optional.of(of(QemuOption.parse(args)));
        } catch (QemuOption.RefusedException e) {
            return java.util.Optional.empty();
        }
    }

    private static boolean on(QemuOption balloon, String property) {
        return balloon.property(property).map("on"::equals).orElse(false);
    }

    /** For people: {@code no balloon}, {@code balloon without free-page reporting or hinting}, {@code free-page reporting, hinting}. */
    public String describe() {
        if (!balloon) return "no balloon";
        if (!reporting && !hint) return "balloon without free-page reporting or hinting";
        return reporting && hint ? "free-page reporting and hinting" : reporting ? "free-page reporting" : "free-page hinting";
    }
}
