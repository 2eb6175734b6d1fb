package dev.thaw.cluster;

/**
 * The restore protocol's messages (HotRestore §4.3) between the coordinator and the cohort of each
 * member: LOAD (coordinator: load this many pages of the working set), LOAD_FIN (cohort: loaded,
 * streaming the rest in the background), START (coordinator: run the guest), START_FIN (cohort: it
 * runs), RESTORE_FIN (cohort: every page is in).
 */
public sealed interface CohortMessage {
    /** The member the message is for or from. */
    String member();

    /** The message's type, from its record: a message cannot carry a type that contradicts it. */
    default Type type() {
        return switch (this) {
            case Load _ -> Type.LOAD;
            case LoadFin _ -> Type.LOAD_FIN;
            case Start _ -> Type.START;
            case StartFin _ -> Type.START_FIN;
            case RestoreFin _ -> Type.RESTORE_FIN;
        };
    }

    /** The message types as they go on the wire; 0 is invalid, so a zeroed message never decodes. */
    enum Type {
        INVALID(0), LOAD(1), LOAD_FIN(2), START(3), START_FIN(4), RESTORE_FIN(5);

        private final int code;

        Type(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }

        /** The type of a wire code; 0 and unknown codes are rejected. */
        public static Type of(int code) {
            for (Type t : values()) {
                if (t.code == code && t != INVALID) return t;
            }
            throw new IllegalArgumentException("cohort message type: expected a code in 1.." + (values().length - 1) + ", actual " + code);
        }
    }

    /** Coordinator to cohort: load the first {@code workingSetPages} pages of the working set (the revised size). */
    record Load(String member, long workingSetPages) implements CohortMessage {
        public Load {
            Traffic.requireName("LOAD", member);
            if (workingSetPages < 0) throw new IllegalArgumentException("LOAD " + member + ": expected workingSetPages >= 0, actual " + workingSetPages);
        }
    }

    /** Cohort to coordinator: the working set is loaded; the rest streams in the background until START. */
    record LoadFin(String member) implements CohortMessage {
        public LoadFin {
            Traffic.requireName("LOAD_FIN", member);
        }
    }

    /** Coordinator to cohort: run the guest now. */
    record Start(String member) implements CohortMessage {
        public Start {
            Traffic.requireName("START", member);
        }
    }

    /** Cohort to coordinator: the guest runs. */
    record StartFin(String member) implements CohortMessage {
        public StartFin {
            Traffic.requireName("START_FIN", member);
        }
    }

    /** Cohort to coordinator: every page is loaded; the member's restore is complete. */
    record RestoreFin(String member) implements CohortMessage {
        public RestoreFin {
            Traffic.requireName("RESTORE_FIN", member);
        }
    }
}
