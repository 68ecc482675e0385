// Seeding: the dataset spec through the admin API, the records straight into D1 in bulk, and
// copies in Redis and KV written directly in the cached-record format the worker itself uses
// (src/storage/cached-record.ts), so each slice of keys sits in exactly the tiers a scenario needs.
import type { Redis } from "ioredis";
import type { Miniflare } from "miniflare";
import { encodeRecord, recordCacheKey } from "../../src/storage/cached-record.ts";
import { DATASET, keyOf, makeValue, rng, SPEC } from "./common.ts";
import { prefixedKey, versionRows } from "./time-data.ts";
import { probeKvPut } from "./worker.ts";

export interface Progress {
	start(total: number, label: string): void;
	update(done: number): void;
	stop(): void;
}

/** A progress bar on a terminal (cli-progress), a few plain lines otherwise. */
export async function progress(): Promise<Progress> {
	if (process.stderr.isTTY) {
		const { default: cliProgress } = await import("cli-progress");
		const bar = new cliProgress.SingleBar(
			{ stream: process.stderr, format: "  {label} [{bar}] {percentage}% {value}/{total} {eta_formatted}", hideCursor: true },
			cliProgress.Presets.shades_classic,
		);
		return {
			start: (total, label) => bar.start(total, 0, { label }),
			update: (done) => bar.update(done),
			stop: () => bar.stop(),
		};
	}
	let total = 0;
	let label = "";
	let next = 0;
	const t0 = { t: 0 };
	return {
		start(t, l) {
			total = t;
			label = l;
			next = 0.25;
			t0.t = performance.now();
		},
		update(done) {
			if (done / total >= next) {
				process.stderr.write(`  ${label}: ${done}/${total} (${((performance.now() - t0.t) / 1000).toFixed(1)} s)\n`);
				while (done / total >= next) next += 0.25;
			}
		},
		stop() {},
	};
}

/** One call to the worker's API. `json` is the parsed body (or the text when it is not JSON); callers say what they expect. */
export async function api<T = unknown>(
	base: URL,
	key: string,
	method: string,
	path: string,
	body?: unknown,
): Promise<{ status: number; headers: Headers; json: T }> {
	const res = await fetch(new URL(path, base), {
		method,
		headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const text = await res.text();
	let json: unknown = text;
	try {
		json = JSON.parse(text);
	} catch {
		// not JSON: keep the text
	}
	return { status: res.status, headers: res.headers, json: json as T };
}

export async function putSpec(base: URL, adminKey: string, name: string = DATASET, spec: unknown = SPEC): Promise<void> {
	const r = await api(base, adminKey, "PUT", `/v1/datasets/${name}`, spec);
	if (r.status !== 200 && r.status !== 201) throw new Error(`PUT dataset spec ${name}: ${r.status} ${JSON.stringify(r.json)}`);
}

/**
 * Writes `keys` keys of VERSIONS versions each (time-data.ts versionRows) through the import route,
 * which applies them to D1 and its event log exactly as the queue consumer does (src/ingest/apply.ts):
 * 100 keys (2,000 rows) per request, two requests in flight. Returns the rows imported and the time taken.
 */
export async function seedVersions(base: URL, writeKey: string, prefix: string, keys: number, start: number): Promise<{ rows: number; ms: number }> {
	const t0 = performance.now();
	let next = 0;
	let rows = 0;
	const worker = async () => {
		while (next < keys) {
			const from = next;
			next = Math.min(keys, from + 100);
			const body: Record<string, unknown>[] = [];
			for (let i = from; i < next; i++) body.push(...versionRows(prefixedKey(prefix, i), i, start));
			const r = await api<{ imported: number; unchanged: number; rejected: unknown[] }>(base, writeKey, "POST", `/v1/datasets/${DATASET}/import`, body);
			if (r.status !== 200 || r.json.rejected.length) throw new Error(`seeding versions: ${r.status} ${JSON.stringify(r.json).slice(0, 500)}`);
			rows += r.json.imported + r.json.unchanged;
		}
	};
	await Promise.all([worker(), worker()]);
	return { rows, ms: performance.now() - t0 };
}

export async function createKey(base: URL, adminKey: string, name: string, scopes: string[], datasets: string[] = [DATASET]): Promise<string> {
	const r = await api<{ key: string }>(base, adminKey, "POST", "/v1/keys", { name, scopes, datasets });
	if (r.status !== 201) throw new Error(`create key: ${r.status} ${JSON.stringify(r.json)}`);
	return r.json.key;
}

// One statement per chunk: the rows travel as one JSON parameter and json_each unpacks them,
// so a chunk is one bound parameter set whatever its size (D1 allows 100 per statement).
const INSERT_FROM_JSON = `INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at)
SELECT ?1, j.value ->> '$.k', j.value ->> '$.v', j.value ->> '$.t', j.value ->> '$.i', 0, '{}', j.value ->> '$.t', j.value ->> '$.i', 1, ?2
FROM json_each(?3) AS j`;

export interface Seeded {
	ms: number;
	bytes: number;
	/** event_time of each record, for writing tier copies identical to what D1 holds. */
	times: Float64Array;
}

/**
 * Writes records 0..n-1 of the dataset (by default the bench dataset, values makeValue(i)) straight
 * into D1, in the format the consumer writes.
 */
export async function seedD1(
	mf: Miniflare,
	n: number,
	bar: Progress,
	{ dataset = DATASET, value = makeValue, chunk = 1000 }: { dataset?: string; value?: (i: number) => Record<string, unknown>; chunk?: number } = {},
): Promise<Seeded> {
	const db = await mf.getD1Database("DB");
	const now = Date.now();
	const r = rng(12345);
	const times = new Float64Array(n);
	const stmt = db.prepare(INSERT_FROM_JSON);
	const t0 = performance.now();
	let bytes = 0;
	let done = 0;
	bar.start(n, `seeding D1 (${dataset})`);
	// Two statements in flight: Node builds the next chunk while D1 writes the previous one.
	const inflight: Promise<unknown>[] = [];
	for (let start = 0; start < n; start += chunk) {
		const rows = [];
		for (let i = start; i < Math.min(n, start + chunk); i++) {
			// Event times within the last hour: fresh under the dataset's 1-day ttl.
			times[i] = now - Math.floor(r() * 3_600_000);
			rows.push({ k: keyOf(i), v: value(i), t: times[i], i: `seed-${i}` });
		}
		const json = JSON.stringify(rows);
		bytes += json.length;
		const count = rows.length;
		inflight.push(
			stmt
				.bind(dataset, now, json)
				.run()
				.then(() => {
					done += count;
					bar.update(done);
				}),
		);
		if (inflight.length >= 2) await inflight.shift();
	}
	await Promise.all(inflight);
	bar.stop();
	const row = await db.prepare("SELECT count(*) AS n FROM records WHERE dataset = ?1").bind(dataset).first<{ n: number }>();
	if (row?.n !== n) throw new Error(`seeded ${row?.n} records, expected ${n}`);
	return { ms: performance.now() - t0, bytes, times };
}

/** The copy of record i a cache tier holds: what D1 holds, at revision 1. */
const cachedCopy = (i: number, times: Float64Array): [string, string] => [
	recordCacheKey(DATASET, keyOf(i)),
	encodeRecord({ v: makeValue(i), t: times[i] as number, i: `seed-${i}`, r: 1 }),
];

/** Puts copies of records [start, end) into Redis, with the TTL the worker's fills use (at most REDIS_MAX_TTL_SECONDS). */
export async function seedRedis(redis: Redis, start: number, end: number, times: Float64Array, ttlSeconds: number): Promise<number> {
	for (let from = start; from < end; from += 1000) {
		const p = redis.pipeline();
		for (let i = from; i < Math.min(end, from + 1000); i++) {
			const [k, v] = cachedCopy(i, times);
			p.set(k, v, "EX", ttlSeconds);
		}
		await p.exec();
	}
	return end - start;
}

/** Puts copies of the records `indices` into Redis (the keys a fill left out). */
export async function seedRedisKeys(redis: Redis, indices: number[], times: Float64Array, ttlSeconds: number): Promise<void> {
	for (let from = 0; from < indices.length; from += 1000) {
		const p = redis.pipeline();
		for (const i of indices.slice(from, from + 1000)) {
			const [k, v] = cachedCopy(i, times);
			p.set(k, v, "EX", ttlSeconds);
		}
		await p.exec();
	}
}

/** Puts copies of the records `indices` into KV through the probe worker (the keys a fill left out). */
export async function seedKvKeys(w: { probeUrl: URL }, indices: number[], times: Float64Array): Promise<void> {
	for (let from = 0; from < indices.length; from += 100)
		await probeKvPut(
			w,
			indices.slice(from, from + 100).map((i) => cachedCopy(i, times)),
		);
}

/** Puts copies of records [start, end) into KV through the probe worker. Miniflare's KV simulator makes this the slow part of the setup. */
export async function seedKv(w: { probeUrl: URL }, start: number, end: number, times: Float64Array, bar: Progress, label: string): Promise<void> {
	let next = start;
	let done = 0;
	bar.start(end - start, label);
	const worker = async () => {
		while (next < end) {
			const from = next;
			const to = Math.min(end, from + 100);
			next = to;
			const pairs: [string, string][] = [];
			for (let i = from; i < to; i++) pairs.push(cachedCopy(i, times));
			await probeKvPut(w, pairs);
			done += to - from;
			bar.update(done);
		}
	};
	await Promise.all(Array.from({ length: 4 }, worker));
	bar.stop();
}
