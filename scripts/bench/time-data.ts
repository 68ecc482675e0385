// Data of the import, as-of, aggregate and GraphQL scenarios, shared by the orchestrator (run.ts)
// and the load child (load.ts): import rows, the versions of as-of keys, the aggregate dataset and
// its facts, and the GraphQL batch query. Deterministic, so every run sends the same shapes.
import { DATASET, makeValue, SPEC } from "./common.ts";

/** Keys of the scenarios' own key spaces: `${prefix}${i}`, fixed width so ranges sort like numbers. */
export const prefixedKey = (prefix: string, i: number): string => `${prefix}${String(i).padStart(7, "0")}`;

// ---- import ---------------------------------------------------------------------------------

/**
 * One import row as `hotpath load` sends it (cli/load/rows.ts): `_id` and `_event_time` first, then
 * the value with the dataset's key field. `valueText` is the value's JSON without its braces.
 */
export const importRow = (key: string, eventTime: number, valueText: string): string =>
	`{"_id":"${key}","_event_time":${eventTime},"${SPEC.key}":"${key}",${valueText}}`;

/** The values import rows carry, built once per load process: row j carries value j % n. */
export function importValues(n: number): string[] {
	return Array.from({ length: n }, (_, j) => JSON.stringify(makeValue(j, 42)).slice(1, -1));
}

// ---- as-of: keys with VERSIONS versions each --------------------------------------------------

export const VERSIONS = 20;
/** Versions of one key are a minute apart, starting this long before the seeding. */
export const VERSIONS_START_AGO_MS = 2 * 3_600_000;
export const VERSION_STEP_MS = 60_000;

/**
 * The rows (for the import route) of key i's versions: the first an upsert of a whole value, then
 * VERSIONS - 1 patches of three fields, as a feature pipeline updating a few features would send.
 * Each row has its own _id and _event_time, so re-seeding changes nothing.
 */
export function versionRows(key: string, i: number, start: number): Record<string, unknown>[] {
	const rows: Record<string, unknown>[] = [];
	for (let v = 0; v < VERSIONS; v++) {
		const meta = { _id: `${key}-v${v}`, _event_time: start + v * VERSION_STEP_MS, [SPEC.key]: key };
		if (v === 0) rows.push({ ...meta, ...makeValue(i, 5) });
		else rows.push({ ...meta, _op: "patch", visits_30d: v, churn_score: Number((v / VERSIONS).toFixed(4)), label: `version-${v}` });
	}
	return rows;
}

// ---- aggregates -----------------------------------------------------------------------------

export const AGG_DATASET = "bench_clicks";

/** A dataset of click facts with one aggregate of every fn, over windows from an hour to 7 days. */
export const AGG_SPEC = {
	key: "user_id",
	ttl_seconds: 86_400,
	description: "benchmark dataset: click facts with 7 windowed aggregates",
	// 8 days: every fact of the last 7 days is in the history, and history_days covers the 7d windows.
	history_days: 8,
	fields: { item: "string", category: "string", price: "float", qty: "int" },
	aggregates: {
		clicks_1h: { fn: "count", window: "1h" },
		spend_24h: { fn: "sum", of: "price", window: "24h" },
		avg_price_6h: { fn: "mean", of: "price", window: "6h" },
		min_price_7d: { fn: "min", of: "price", window: "7d" },
		max_qty_7d: { fn: "max", of: "qty", window: "7d" },
		last_items: { fn: "last_n", of: "item", n: 5, window: "7d" },
		categories_7d: { fn: "distinct", of: "category", window: "7d" },
	},
} as const;

export const FACTS_PER_KEY = 10_000;
/** Facts lie in (end - FACT_SPAN_MS, end]: 7 days less 10 minutes, so every one is inside the 8-day history. */
export const FACT_SPAN_MS = 7 * 86_400_000 - 10 * 60_000;

const ITEMS = Array.from({ length: 200 }, (_, i) => `item-${i}`);
const CATEGORIES = ["shoes", "laptops", "phones", "toys", "groceries", "furniture", "beauty", "outdoor", "video", "audio", "garden", "books"];

/**
 * Fact j of a run: its key (facts go round-robin over `keys` keys) and its event_time, spread
 * evenly over the span in a scrambled order (a multiplicative permutation of the fact indices), so
 * facts arrive out of time order, as late facts do.
 */
export function fact(j: number, total: number, keys: number, end: number): { keyIndex: number; time: number; value: string } {
	// 7919 is prime, and total is a multiple of neither 7919 nor a divisor of it in practice.
	const slot = (j * 7919) % total;
	const time = end - FACT_SPAN_MS + Math.floor(((slot + 1) * FACT_SPAN_MS) / total);
	const value = `{"item":"${ITEMS[j % ITEMS.length]}","category":"${CATEGORIES[(j >> 3) % CATEGORIES.length]}","price":${((j * 37) % 20_000) / 100},"qty":${1 + (j % 7)}}`;
	return { keyIndex: j % keys, time, value };
}

// ---- GraphQL --------------------------------------------------------------------------------

/** The root field of the bench dataset (src/graphql/names.ts: a dataset's records field is its name). */
export const GRAPHQL_ROOT = DATASET;

/** A batch read of every field of the bench spec: what lookup-batch-100 returns, through GraphQL. */
export const GRAPHQL_BATCH_QUERY = `query Batch($keys: [String!]!) { ${GRAPHQL_ROOT}(keys: $keys) { key status event_time age_ms value { ${Object.keys(SPEC.fields).join(" ")} } } }`;
