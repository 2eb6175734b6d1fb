package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.schedule.SchedulePolicy;
import dev.thaw.util.ThreadPriority;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The one vocabulary of restore methods: its names on the command line and in the tables, Thaw's modes, and what each
 * method's working set and options are; without QEMU.
 */
class RestoreMethodTest {
    @Test
    void everyKeyParsesBackAndThawsMethodsMapToTheirMode() {
        for (RestoreMethod m : RestoreMethod.values()) {
            assertThat(RestoreMethod.parse(m.key())).isEqualTo(m);
            assertThat(m.thawMode().isPresent()).as(m.label()).isEqualTo(m.label().startsWith("Thaw"));
        }
        assertThat(RestoreMethod.WS_LEARNED.thawMode()).contains(Restorer.Mode.WS);
        assertThat(RestoreMethod.THAW_LAZY_ADDRESS_ORDER.thawMode()).contains(Restorer.Mode.LAZY);
        assertThat(RestoreMethod.defaults()).doesNotContain(RestoreMethod.THAW_LAZY_ADDRESS_ORDER).contains(RestoreMethod.WS_TRACE_MAPPED).hasSize(9);
        assertThat(RestoreMethod.WS_TRACE_MAPPED.thawMode()).contains(Restorer.Mode.MAPPED);
        assertThat(RestoreMethod.WS_TRACE_MAPPED.estimate()).isEqualTo(RestoreMethod.WS_TRACE);
        assertThat(RestoreMethod.values()).filteredOn(RestoreMethod::mapsRamFile)
                .containsExactlyInAnyOrder(RestoreMethod.MAPPED_FILE, RestoreMethod.WS_DIRTY_MAPPED, RestoreMethod.WS_TRACE_MAPPED);
    }

    @Test
    void theDemoNamesThawsMethodsByTheirMode() {
        assertThat(RestoreMethod.THAW_EAGER.shortName()).isEqualTo(Restorer.Mode.EAGER.label());
        assertThat(RestoreMethod.THAW_LAZY.shortName()).isEqualTo(Restorer.Mode.LAZY.label());
        assertThat(RestoreMethod.WS_TRACE.shortName()).as("the demo's ws: the image's dirty,trace estimate").isEqualTo(Restorer.Mode.WS.label());
        assertThat(RestoreMethod.WS_TRACE_MAPPED.shortName()).as("the image's dirty,trace estimate, mapped").isEqualTo(Restorer.Mode.MAPPED.label());
        assertThat(RestoreMethod.MAPPED_FILE.shortName()).isEqualTo("mapped-file");
    }

    /**
     * The ws restores' options before a method changes them: a prefetch and a queue after it, the busy pace on, guest RAM as
     * {@code thaw restore} chooses it (every method's unless it fixes it: below).
     */
    private static final PostcopyRestore.Options WS = PostcopyRestore.Options.ws("t", List.of(new PageRef(0, 1)), List.of(new PageRef(0, 2)))
            .withGuestRam(PostcopyRestore.GuestRam.AUTO);

    @Test
    void everyMethodTakesTheImagesOwnWorkingSetAndTheTrialsFixHowMuchOfIt() {
        // What the bench chose for each method before the methods said it themselves: {fraction, pages}; the rest elastic.
        Map<RestoreMethod, OptionalDouble> fractions = Map.of(RestoreMethod.WS_DIRTY_WHOLE, OptionalDouble.of(1), RestoreMethod.WS_DIRTY_QUIET,
                OptionalDouble.of(1), RestoreMethod.WS_TRACE_QUIET, OptionalDouble.of(1), RestoreMethod.WS_DIRTY_HALF, OptionalDouble.of(0.5),
                RestoreMethod.WS_TRACE_QUARTER, OptionalDouble.of(0.25), RestoreMethod.WS_TRACE_WHOLE, OptionalDouble.of(1),
                RestoreMethod.WS_TRACE_HUGETLB_WHOLE, OptionalDouble.of(1));
        for (RestoreMethod m : RestoreMethod.values()) {
            WorkingSetChoice choice = m.workingSetChoice();
            assertThat(choice.source()).as(m.label() + ": the image's section, never a trace beside it").isEqualTo(WorkingSetChoice.Source.IMAGE);
            assertThat(choice.fraction()).as(m.label()).isEqualTo(fractions.getOrDefault(m, OptionalDouble.empty()));
            assertThat(choice.pages()).as(m.label()).isEqualTo(m == RestoreMethod.WS_TRACE_STREAMED ? OptionalInt.of(0) : OptionalInt.empty());
        }
    }

    @Test
    void theTrialsPlansPrefetchWhatTheirDocSays() {
        List<PageRef> pages = new ArrayList<>();
        for (int i = 0; i < 1000; i++) pages.add(new PageRef(0, i * 512)); // one page per 2 MiB region: scattered, prefetched whole
        WorkingSet queue = WorkingSet.of(Estimator.TRACE, pages, 800, "test");
        Map<RestoreMethod, Integer> prefetched = Map.of(RestoreMethod.WS_TRACE, 800, RestoreMethod.WS_DIRTY_WHOLE, 800,
                RestoreMethod.WS_DIRTY_HALF, 400, RestoreMethod.WS_TRACE_QUARTER, 200, RestoreMethod.WS_TRACE_STREAMED, 0);
        prefetched.forEach((m, n) -> {
            Restorer.Plan plan = Restorer.plan(queue, m.workingSetChoice());
            assertThat(plan.prefetch()).as(m.label() + ": the head of the queue").isEqualTo(pages.subList(0, n));
            assertThat(plan.backgroundFirst()).as(m.label() + ": the rest of the queue first in the background").isEqualTo(pages.subList(n, 1000));
        });
    }

    @Test
    void theAblationsAndTrialsChangeTheOptionsTheirDocNamesAndNothingElse() {
        PostcopyRestore.Options lazy = PostcopyRestore.Options.lazy("t").withGuestRam(PostcopyRestore.GuestRam.AUTO);
        PostcopyRestore.Options addressOrder = RestoreMethod.THAW_LAZY_ADDRESS_ORDER.tuned(lazy);
        assertThat(addressOrder.policy().faultRegionPages()).as("no fault regions").isZero();
        assertThat(addressOrder.withPolicy(lazy.policy())).isEqualTo(lazy);

        PostcopyRestore.Options normal = RestoreMethod.WS_DIRTY_NORMAL_PRIORITY.tuned(WS);
        assertThat(normal.backgroundPriority()).isEqualTo(ThreadPriority.Policy.NORMAL);
        assertThat(WS.backgroundPriority()).as("what it ablates").isEqualTo(ThreadPriority.Policy.IDLE);
        assertThat(normal.withBackgroundPriority(WS.backgroundPriority())).isEqualTo(WS);

        PostcopyRestore.Options preempt = RestoreMethod.WS_DIRTY_PREEMPT.tuned(WS);
        assertThat(preempt.transport().preempt()).isTrue();
        assertThat(preempt.withTransport(WS.transport())).isEqualTo(WS);

        for (RestoreMethod m : List.of(RestoreMethod.WS_DIRTY_HUGETLB, RestoreMethod.WS_TRACE_HUGETLB, RestoreMethod.WS_TRACE_HUGETLB_WHOLE)) {
            PostcopyRestore.Options hugetlb = m.tuned(WS);
            assertThat(hugetlb.guestRam()).as(m.label()).isEqualTo(PostcopyRestore.GuestRam.HUGETLB);
            assertThat(hugetlb.withGuestRam(WS.guestRam())).isEqualTo(WS);
        }
        PostcopyRestore.Options lazyHugetlb = RestoreMethod.THAW_LAZY_HUGETLB.tuned(lazy);
        assertThat(lazyHugetlb.guestRam()).isEqualTo(PostcopyRestore.GuestRam.HUGETLB);
        assertThat(lazyHugetlb.withGuestRam(lazy.guestRam())).isEqualTo(lazy);
        assertThat(RestoreMethod.WS_TRACE_HUGETLB.estimate()).isEqualTo(RestoreMethod.WS_TRACE);
        assertThat(RestoreMethod.THAW_LAZY_HUGETLB.thawMode()).contains(Restorer.Mode.LAZY);

        PostcopyRestore.Options unpaced = RestoreMethod.WS_TRACE_UNPACED.tuned(WS);
        assertThat(WS.policy().busyBackgroundBytesPerSecond()).as("what it ablates")
                .isEqualTo(SchedulePolicy.DEFAULT_WS_BUSY_BACKGROUND_BYTES_PER_SECOND);
        assertThat(unpaced.policy().busyBackgroundBytesPerSecond()).as("--busy-background-mbps 0").isZero();
        assertThat(unpaced.withPolicy(WS.policy())).isEqualTo(WS);

        PostcopyRestore.Options whole = RestoreMethod.WS_TRACE_WHOLE_REGIONS.tuned(WS);
        assertThat(WS.policy().wholeRegionPrefetch()).as("what it tries").isFalse();
        assertThat(whole.policy().wholeRegionPrefetch()).as("--whole-regions").isTrue();
        assertThat(whole.guestRam()).as("shaped for 4 KiB pages").isEqualTo(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(whole.withPolicy(WS.policy()).withGuestRam(WS.guestRam())).isEqualTo(WS);

        PostcopyRestore.Options placed = RestoreMethod.WS_TRACE_PLACED.tuned(WS);
        assertThat(WS.transport().placedPrefetch()).as("what it tries").isFalse();
        assertThat(placed.transport().placedPrefetch()).as("--placed-prefetch").isTrue();
        assertThat(placed.guestRam()).as("shaped for 4 KiB pages").isEqualTo(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(placed.withTransport(WS.transport()).withGuestRam(WS.guestRam())).isEqualTo(WS);

        PostcopyRestore.Options small = RestoreMethod.WS_TRACE_SMALL_PAGES.tuned(WS);
        assertThat(small.guestRam()).as("4 KiB pages whatever the host").isEqualTo(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(small.withGuestRam(WS.guestRam())).isEqualTo(WS);
        PostcopyRestore.Options asked4k = WS.withGuestRam(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(RestoreMethod.WS_TRACE.tuned(asked4k).guestRam()).as("Thaw's ws chooses, as thaw restore does")
                .isEqualTo(PostcopyRestore.GuestRam.AUTO);

        for (RestoreMethod quiet : List.of(RestoreMethod.WS_DIRTY_QUIET, RestoreMethod.WS_TRACE_QUIET)) {
            PostcopyRestore.Options o = quiet.tuned(WS);
            assertThat(o.policy().backgroundBytesPerSecond()).as(quiet.label()).isEqualTo(16_000_000L);
            assertThat(o.policy().withBackgroundBytesPerSecond(0)).isEqualTo(WS.policy());
            assertThat(o.withPolicy(WS.policy())).isEqualTo(WS);
        }

        PostcopyRestore.Options clonesNormal = WS.withBackgroundPriority(dev.thaw.util.ThreadPriority.Policy.NORMAL); // as clones filling the host get
        PostcopyRestore.Options idle = RestoreMethod.WS_TRACE_IDLE_PRIORITY.tuned(clonesNormal);
        assertThat(idle.backgroundPriority()).as("SCHED_IDLE over the clones' normal").isEqualTo(dev.thaw.util.ThreadPriority.Policy.IDLE);
        assertThat(idle.withBackgroundPriority(dev.thaw.util.ThreadPriority.Policy.NORMAL)).isEqualTo(clonesNormal);

        Set<RestoreMethod> changing = EnumSet.of(RestoreMethod.THAW_LAZY_ADDRESS_ORDER, RestoreMethod.WS_DIRTY_NORMAL_PRIORITY,
                RestoreMethod.WS_DIRTY_PREEMPT, RestoreMethod.WS_DIRTY_HUGETLB, RestoreMethod.WS_TRACE_UNPACED, RestoreMethod.WS_DIRTY_QUIET,
                RestoreMethod.WS_TRACE_QUIET, RestoreMethod.WS_TRACE_WHOLE_REGIONS, RestoreMethod.WS_TRACE_IDLE_PRIORITY,
                RestoreMethod.WS_TRACE_HUGETLB, RestoreMethod.THAW_LAZY_HUGETLB, RestoreMethod.WS_TRACE_PLACED, RestoreMethod.WS_TRACE_SMALL_PAGES,
                RestoreMethod.WS_TRACE_HUGETLB_WHOLE);
        for (RestoreMethod m : EnumSet.complementOf(EnumSet.copyOf(changing))) {
            assertThat(m.tuned(WS)).as(m.label() + ": its mode's own options").isSameAs(WS);
            assertThat(m.tuned(lazy)).as(m.label()).isSameAs(lazy);
        }
    }

    @Test
    void theDemosMethodsRestoreAsThawRestoreDoesWithTheImagesWorkingSet() {
        WorkingSetChoice demo = new WorkingSetChoice(WorkingSetChoice.Source.IMAGE, OptionalInt.empty(), WorkingSetChoice.defaults().fraction());
        for (RestoreMethod m : Demo.METHODS) {
            assertThat(m.workingSetChoice()).as(m.label()).isEqualTo(demo);
            assertThat(m.tuned(WS)).as(m.label() + ": only the command line's tuning").isSameAs(WS);
        }
    }

    @Test
    void anUnknownKeyNamesTheKnownOnes() {
        assertThatThrownBy(() -> RestoreMethod.parse("thaw-lazzy")).hasMessageContaining("expected one of")
                .hasMessageContaining("ws-trace").hasMessageContaining("actual 'thaw-lazzy'");
    }
}
