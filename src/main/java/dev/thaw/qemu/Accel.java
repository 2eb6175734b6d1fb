package dev.thaw.qemu;

/** How QEMU runs guest code. TCG is the default; KVM only where a probe found it usable. */
public enum Accel {
    TCG("tcg"),
    KVM("kvm");

    private final String qemuName;

    Accel(String qemuName) {
        this.qemuName = qemuName;
    }

    /** The name {@code -accel} takes. */
    public String qemuName() {
        return qemuName;
    }
}
