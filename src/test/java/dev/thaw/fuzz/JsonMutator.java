package dev.thaw.fuzz;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Mutations of a JSON document by its tree: a value replaced by null, another type, an extreme number, a path that
 * leaves its directory, or another value of the document; a field removed or added; an array element repeated or
 * dropped. Byte-level mutations alone mostly break the syntax and stop at the parser's first error, while these
 * reach what reads the parsed values. A document that does not parse is mutated as bytes.
 */
public final class JsonMutator {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    private static final JsonNode[] REPLACEMENTS = {
            F.nullNode(), F.textNode(""), F.textNode("../../etc/passwd"), F.textNode("/"), F.textNode("x".repeat(300)),
            F.textNode("not-a-uuid"), F.textNode("00000000-0000-0000-0000-000000000000"), F.textNode("zstd"), F.textNode("PAGE_MAP"),
            F.numberNode(0), F.numberNode(-1), F.numberNode(1), F.numberNode(Integer.MAX_VALUE), F.numberNode(Integer.MIN_VALUE),
            F.numberNode(Long.MAX_VALUE), F.numberNode(Long.MIN_VALUE), F.numberNode(1L << 40), F.numberNode(4096), F.numberNode(1e308),
            F.numberNode(-0.5), F.booleanNode(true), F.arrayNode(), F.objectNode(), F.textNode("2026-13-45T99:99:99Z"),
            F.arrayNode().add(-1).add(Integer.MAX_VALUE), F.arrayNode().add(0), F.arrayNode().add(0).add(0).add(0).add(0)};

    private JsonMutator() {}

    /** A copy: the constants are mutable nodes, and one put into a document may later be mutated in it, even into itself. */
    private static JsonNode replacement(Random random) {
        return REPLACEMENTS[random.nextInt(REPLACEMENTS.length)].deepCopy();
    }

    public static byte[] mutate(byte[] input, List<byte[]> corpus, Random random) {
        JsonNode root;
        try {
            root = JSON.readTree(input);
        } catch (IOException e) {
            root = null;
        }
        if (root == null || !root.isContainerNode() || random.nextInt(5) == 0) return Mutator.mutate(input, corpus, random);
        int rounds = 1 + (random.nextInt(3) == 0 ? random.nextInt(3) : 0);
        for (int i = 0; i < rounds; i++) once(root, random);
        try {
            return JSON.writeValueAsBytes(root);
        } catch (IOException e) { // values copied into themselves nest past Jackson's write limit: mutate the bytes instead
            return Mutator.mutate(input, corpus, random);
        }
    }

    /** A place in the tree: a field of an object or an element of an array. */
    private record Slot(JsonNode parent, String field, int index) {}

    private static void once(JsonNode root, Random random) {
        List<Slot> slots = new ArrayList<>();
        List<JsonNode> values = new ArrayList<>();
        collect(root, slots, values, 0);
        if (slots.isEmpty()) return;
        Slot s = slots.get(random.nextInt(slots.size()));
        int choice = random.nextInt(10);
        JsonNode replacement = switch (choice) {
            case 0, 1, 2, 3, 4 -> replacement(random);
            case 5 -> values.get(random.nextInt(values.size())).deepCopy();
            case 6 -> nudged(current(s), random);
            default -> null;
        };
        if (replacement != null) {
            set(s, replacement);
        } else if (s.parent() instanceof ObjectNode o) {
            if (choice == 7) o.remove(s.field());
            else o.set("unknown" + random.nextInt(3), replacement(random));
        } else if (s.parent() instanceof ArrayNode a) {
            if (choice == 7) a.remove(s.index());
            else a.insert(s.index(), a.get(s.index()).deepCopy());
        }
    }

    private static JsonNode current(Slot s) {
        return s.parent() instanceof ObjectNode o ? o.get(s.field()) : s.parent().get(s.index());
    }

    /** A number moved by a little (off by one page, one block), a string with a character changed. */
    private static JsonNode nudged(JsonNode v, Random random) {
        if (v.isIntegralNumber()) return F.numberNode(v.asLong() + (random.nextBoolean() ? 1 : -1) * (random.nextBoolean() ? 1 : 4096));
        if (v.isTextual() && !v.asText().isEmpty()) {
            char[] c = v.asText().toCharArray();
            c[random.nextInt(c.length)] = (char) ('!' + random.nextInt(90));
            return F.textNode(new String(c));
        }
        return replacement(random);
    }

    private static void set(Slot s, JsonNode value) {
        if (s.parent() instanceof ObjectNode o) o.set(s.field(), value);
        else ((ArrayNode) s.parent()).set(s.index(), value);
    }

    /** Values copied into themselves nest deeper each time: places below this depth are not mutated (nor recursed into). */
    private static final int MAX_DEPTH = 64;

    private static void collect(JsonNode node, List<Slot> slots, List<JsonNode> values, int depth) {
        if (depth > MAX_DEPTH) return;
        if (node instanceof ObjectNode o) {
            for (var it = o.fieldNames(); it.hasNext(); ) {
                String name = it.next();
                slots.add(new Slot(o, name, -1));
                values.add(o.get(name));
                collect(o.get(name), slots, values, depth + 1);
            }
        } else if (node instanceof ArrayNode a) {
            for (int i = 0; i < a.size(); i++) {
                slots.add(new Slot(a, null, i));
                values.add(a.get(i));
                collect(a.get(i), slots, values, depth + 1);
            }
        }
    }
}
