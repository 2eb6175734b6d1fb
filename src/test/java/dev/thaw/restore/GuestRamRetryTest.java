package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.qemu.QemuVm;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** When a restore whose QEMU did not start goes again in 4 KiB pages: only when it chose 2 MiB pages itself. No QEMU. */
class GuestRamRetryTest {
    private static final QemuVm.QemuLaunchException FAILED = new QemuVm.QemuLaunchException("QEMU for r did not come up: "
            + "unable to map backing store for guest RAM: Cannot allocate memory", null);

    @Test
    void onlyTwoMegabytePagesThisRestoreChoseAreGivenUp() {
        GuestRamChoice.Choice huge = new GuestRamChoice.Choice(PostcopyRestore.GuestRam.HUGETLB, "the pool holds the guest");
        GuestRamChoice.Choice small = new GuestRamChoice.Choice(PostcopyRestore.GuestRam.DEFAULT, "a scattered estimate");
        assertThat(Restorer.retriesInSmallPages(true, Optional.of(huge), FAILED)).as("auto chose 2 MiB pages").isTrue();
        assertThat(Restorer.retriesInSmallPages(false, Optional.of(GuestRamChoice.Choice.asked(PostcopyRestore.GuestRam.HUGETLB)), FAILED))
                .as("--guest-ram hugetlb: fails as asked").isFalse();
        assertThat(Restorer.retriesInSmallPages(true, Optional.of(small), FAILED)).as("4 KiB pages already").isFalse();
        assertThat(Restorer.retriesInSmallPages(true, Optional.empty(), FAILED)).as("no choice made (eager, mapped)").isFalse();
    }
}
