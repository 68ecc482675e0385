/**
 * Property test of history and point-in-time reads against an oracle written here from DESIGN.md's
 * rules (not from src/): the state of a key is what folding each distinct event once, in
 * (event_time, id) order (the larger id winning a tie, ids compared as strings), produces, where
 * an upsert replaces the value, a patch merges its fields into it (into {} when there is none) and
 * a delete leaves nothing.
 *
 * Each case (a fixed seed) makes random events on a few keys of one dataset: upserts and patches of
 * random subsets of fields, deletes, many ties on event_time, ids shared between keys (ids are per
 * key). They are delivered through the real queue handler in shuffled order, in messages of a few
 * events, batches of a few messages, some batches run concurrently, some redelivered, some events
 * sent again in other messages, and a few batches sent through the import route instead. At a
 * random point midway and at the end it checks:
 *   (a) GET .../records/:key?as_of= and POST /v1/lookup with as_of answer the fold of the events
 *       delivered so far with event_time <= as_of, at every instant of interest (each event_time,
 *       1 ms before and after it, before the first, now);
 *   (b) GET .../records/:key/history lists exactly the states of that in-order fold, paged with a
 *       random limit, and a since/until window of it;
 *   (c) the current record (GET, lookup and D1's row) is the fold of all of them.
 * After every step, D1's row of each key is checked against the fold of what was delivered so far.
 *
 * A failure names the seed and prints the case's events in delivery order.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, d1Record, EVENTS_QUEUE, eventsBody, expectJson, expectProblem, message, type QueueEvent, runQueue, uniqueName } from "./helpers";

// ---------------------------------------------------------------- seeded randomness

/** mulberry32: a small, fast PRNG with a 32-bit state; the same seed gives the same case. */
function prng(seed: number) {
	let s = seed >>> 0;
	const next = () => {
		s = (s + 0x6d2b79f5) >>> 0;
		let t = s;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
	const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)] as T;
	const chance = (p: number) => next() < p;
	const shuffle = <T>(xs: T[]): T[] => {
		for (let i = xs.length - 1; i > 0; i--) {
			const j = int(0, i);
			[xs[i], xs[j]] = [xs[j] as T, xs[i] as T];
		}
		return xs;
	};
	/** Splits xs into consecutive chunks of lo..hi items. */
	const chunks = <T>(xs: readonly T[], lo: number, hi: number): T[][] => {
		const out: T[][] = [];
		for (let i = 0; i < xs.length; ) {
			const n = int(lo, hi);
			out.push(xs.slice(i, i + n));
			i += n;
		}
		return out;
	};
	return { next, int, pick, chance, shuffle, chunks };
}
type Rng = ReturnType<typeof prng>;

// ---------------------------------------------------------------- the oracle (from DESIGN.md, not src/)

type Value = Record<string, unknown>;
interface Ev {
	key: string;
	id: string;
	op: "upsert" | "patch" | "delete";
	time: number;
	value?: Value;
}

/** (event_time, id) order; ids compare as strings, so of two events at one time the larger id comes last (wins). */
const byClock = (a: Ev, b: Ev) => (a.time !== b.time ? a.time - b.time : a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** One event applied to a state, in order: an upsert replaces, a patch merges fields, a delete leaves nothing. */
function step(state: Value | null, e: Ev): Value | null {
	if (e.op === "upsert") return { ...e.value };
	if (e.op === "patch") return { ...(state ?? {}), ...e.value };
	return null;
}

/** The states after each event of a key, folded in (event_time, id) order. */
function statesInOrder(events: readonly Ev[]): { event: Ev; state: Value | null }[] {
	let state: Value | null = null;
	return [...events].sort(byClock).map((event) => {
		state = step(state, event);
		return { event, state };
	});
}

/** A key's state as of `t` (all its events with event_time <= t) and the time of the event that made it; null when there is none. */
function stateAsOf(events: readonly Ev[], t: number): { value: Value; time: number } | null {
	const states = statesInOrder(events.filter((e) => e.time <= t));
	const last = states[states.length - 1];
	return last?.state ? { value: last.state, time: last.event.time } : null;
}

// ---------------------------------------------------------------- the random cases

const FIELDS = ["a", "b", "c", "tags"] as const;

function randomField(rng: Rng, f: (typeof FIELDS)[number]): unknown {
	if (rng.chance(0.12)) return null;
	switch (f) {
		case "a":
			return rng.int(-3, 9);
		case "b":
			return rng.pick(["x", "y", "zz", "", "é"]);
		case "c":
			return rng.pick([0.5, 1.25, -2, 3]);
		default:
			return Array.from({ length: rng.int(0, 2) }, () => rng.pick(["t1", "t2", "t3"]));
	}
}

function randomValue(rng: Rng, min: number): Value {
	const fields = rng.shuffle([...FIELDS]).slice(0, rng.int(min, FIELDS.length));
	return Object.fromEntries(fields.map((f) => [f, randomField(rng, f)]));
}

// Ids: short ASCII strings whose order is not their creation order (prefixes, digits, upper and lower case).
const ASCII_IDS = ["a", "b", "ab", "aB", "B", "A", "0", "9", "a0", "b-1", "b_1", "e10", "e2", "e9", "z", "Z", "zz", "~", "k:1", "h:f"];
// Ids beyond ASCII. Their order as JS strings (UTF-16 code units) differs from their order as UTF-8 bytes
// (code points) where a supplementary character (a surrogate pair) meets one in U+E000..U+FFFF.
const UNICODE_IDS = ["é", "e\u0301", "中", "\uff61", "\ufb01", "\u{1f600}", "\u{10000}", "x\u{1f600}", "x\uff61", "x\uffff", "x\u{10ffff}", "ß"];

interface Case {
	seed: number;
	keys: string[];
	events: Ev[];
	t0: number;
}

function makeCase(seed: number, rng: Rng, unicode: boolean): Case {
	const t0 = Math.floor((Date.now() - 30 * 60_000) / 1000) * 1000;
	const nKeys = rng.int(2, 3);
	const keys = Array.from({ length: nKeys }, (_, i) => `${uniqueName("hp")}_${seed}_${i}`);
	const pool = unicode ? [...ASCII_IDS.slice(0, 8), ...UNICODE_IDS] : ASCII_IDS;
	const events: Ev[] = [];
	for (const key of keys) {
		const n = rng.int(3, 12);
		const slots = rng.int(2, Math.max(2, Math.ceil(n / 2))); // few distinct seconds: many ties
		const ids = rng.shuffle([...pool]).slice(0, n);
		for (const id of ids) {
			const op = rng.pick(["upsert", "upsert", "patch", "patch", "patch", "delete"] as const);
			const time = t0 + rng.int(0, slots) * 1000 + rng.pick([0, 0, 0, 1, 2]);
			events.push(op === "delete" ? { key, id, op, time } : { key, id, op, time, value: randomValue(rng, op === "patch" ? 1 : 0) });
		}
	}
	return { seed, keys, events, t0 };
}

// ---------------------------------------------------------------- delivery

interface Batch {
	via: "queue" | "import";
	/** Queue messages, each a list of events. */
	messages: Ev[][];
}

/**
 * A delivery plan: every event at least once (some again, in other messages), shuffled, in messages
 * of 1-4 events and batches of 1-3 messages; steps of 1-3 batches run concurrently; some batches
 * delivered again in a later step (a redelivery).
 */
function plan(rng: Rng, events: readonly Ev[]): Batch[][] {
	const copies = events.flatMap((e) => (rng.chance(0.25) ? [e, e] : rng.chance(0.05) ? [e, e, e] : [e]));
	const messages = rng.chunks(rng.shuffle(copies), 1, 4);
	const batches: Batch[] = rng.chunks(messages, 1, 3).map((m) => ({ via: rng.chance(0.12) ? "import" : "queue", messages: m }));
	const steps = rng.chunks(batches, 1, 3);
	for (let i = 0; i < steps.length; i++) {
		if (rng.chance(0.3)) {
			const again = rng.pick(steps.slice(0, i + 1).flat());
			const later = rng.int(i, steps.length - 1);
			steps[later]?.push({ via: "queue", messages: again.messages });
		}
	}
	return steps;
}

const toQueueEvent = (ds: string, e: Ev): QueueEvent => ({ id: e.id, dataset: ds, key: e.key, op: e.op, time: e.time, ...(e.value ? { value: e.value } : {}) });

const toImportRow = (e: Ev): Value => ({ ...(e.value ?? {}), id: e.key, _id: e.id, _op: e.op, _event_time: e.time });

interface Stats {
	messages: number;
	retries: number;
	imports: number;
	concurrentSteps: number;
}

/** Delivers one batch through the queue handler; a message handed back for retry is delivered again, as the queue would. */
async function deliverQueue(ds: string, batch: Batch, stats: Stats): Promise<void> {
	let pending = batch.messages.map((m) => message(eventsBody(m.map((e) => toQueueEvent(ds, e)))));
	for (let attempt = 1; pending.length; attempt++) {
		if (attempt > 6) throw new Error(`messages still retried after ${attempt - 1} deliveries`);
		stats.messages += pending.length;
		const result = await runQueue(EVENTS_QUEUE, pending);
		const retried = new Set(result.retryMessages.map((r) => r.msgId));
		for (const m of pending) if (!retried.has(m.id)) expect(result.explicitAcks, "a message neither acked nor retried").toContain(m.id);
		stats.retries += retried.size;
		pending = pending.filter((m) => retried.has(m.id)).map((m) => ({ ...m, attempts: m.attempts + 1 }));
	}
}

async function deliverImport(ds: string, batch: Batch, stats: Stats): Promise<void> {
	stats.imports++;
	const rows = batch.messages.flat().map(toImportRow);
	const body = await expectJson<{ imported: number; unchanged: number; rejected: unknown[] }>(
		await call("POST", `/v1/datasets/${ds}/import`, { json: rows }),
		200,
	);
	expect(body.rejected).toEqual([]);
}

// ---------------------------------------------------------------- checks

interface RecordBody {
	key: string;
	status: string;
	value: Value | null;
	event_time: string | null;
	age_ms: number | null;
}
interface Versions {
	versions: { event_time: string; event_id: string; op: string; value: Value | null }[];
	next_cursor: string | null;
}

const iso = (t: number) => new Date(t).toISOString();

const recordUrl = (ds: string, key: string, q = "") => `/v1/datasets/${ds}/records/${encodeURIComponent(key)}${q}`;

/** What an as-of read must answer for a key at t. */
function expectedView(events: readonly Ev[], key: string, t: number): RecordBody {
	const s = stateAsOf(events, t);
	return s
		? { key, status: "present", value: s.value, event_time: iso(s.time), age_ms: t - s.time }
		: { key, status: "not_found", value: null, event_time: null, age_ms: null };
}

function expectedVersions(events: readonly Ev[]): Versions["versions"] {
	return statesInOrder(events).map(({ event, state }) => ({ event_time: iso(event.time), event_id: event.id, op: event.op, value: state }));
}

/** Reads every page of a key's history with `limit`, within the query `extra`. */
async function allVersions(ds: string, key: string, limit: number, extra = ""): Promise<{ versions: Versions["versions"]; pages: number }> {
	const versions: Versions["versions"] = [];
	let cursor: string | null = null;
	let pages = 0;
	do {
		const q: string = `?limit=${limit}${extra}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
		const page: Versions = await expectJson<Versions>(await call("GET", `${recordUrl(ds, key)}/history${q}`), 200);
		expect(page.versions.length, "a page holds at most limit versions").toBeLessThanOrEqual(limit);
		versions.push(...page.versions);
		cursor = page.next_cursor;
		if (++pages > 200) throw new Error("history paging does not end");
	} while (cursor);
	return { versions, pages };
}

/**
 * (a), (b) and (c) for the events delivered so far. `getsPerKey` bounds the GETs with as_of per key (a
 * random sample of its instants; all of them when absent): the lookup asks every key at every instant anyway.
 */
async function checkAll(ds: string, c: Case, delivered: readonly Ev[], rng: Rng, where: string, getsPerKey = Number.POSITIVE_INFINITY): Promise<void> {
	const of = (key: string) => delivered.filter((e) => e.key === key);
	const times = [...new Set(delivered.map((e) => e.time))].sort((x, y) => x - y);
	const now = Date.now();
	const instants = [...new Set([c.t0 - 1000, ...times.flatMap((t) => [t - 1, t, t + 1]), now])].sort((x, y) => x - y);

	// (a) GET with as_of, alternating epoch ms and RFC 3339, at the instants around the key's own events (the
	// lookup below asks every key at every instant).
	for (const key of c.keys) {
		const own = new Set([c.t0 - 1000, ...of(key).flatMap((e) => [e.time - 1, e.time, e.time + 1]), now]);
		const mine = instants.filter((x) => own.has(x));
		const sample = mine.length <= getsPerKey ? mine : rng.shuffle(mine).slice(0, getsPerKey);
		for (const [i, t] of sample.entries()) {
			const expected = expectedView(of(key), key, t);
			const asOf = i % 2 ? String(t) : encodeURIComponent(iso(t));
			const res = await call("GET", recordUrl(ds, key, `?as_of=${asOf}`));
			const what = `${where}: GET ${key} as_of ${iso(t)}`;
			if (expected.status === "not_found") {
				const p = await expectProblem(res, 404);
				expect(p.type, what).toMatch(/record-not-found/);
			} else {
				const body = await expectJson<RecordBody & { dataset: string }>(res, 200);
				expect(body, what).toEqual({ dataset: ds, ...expected });
			}
		}
	}
	// (a) POST /v1/lookup: one request per instant (each with its own as_of), one taking the top-level as_of, and one of
	// current values (as_of: null); each with a key never written.
	const never = `${c.keys[0]}_never`;
	const lookup = await expectJson<{ results: { dataset: string; records: RecordBody[] }[] }>(
		await call("POST", "/v1/lookup", {
			json: {
				as_of: iso(instants[1] as number),
				requests: [
					...instants.map((t) => ({ dataset: ds, keys: [...c.keys, never], as_of: t })),
					{ dataset: ds, keys: [never, ...c.keys].reverse() },
					{ dataset: ds, keys: c.keys, as_of: null },
				],
			},
		}),
		200,
	);
	instants.forEach((t, i) => {
		expect(lookup.results[i]?.records, `${where}: lookup as_of ${iso(t)}`).toEqual([
			...c.keys.map((key) => expectedView(of(key), key, t)),
			expectedView([], never, t),
		]);
	});
	const top = instants[1] as number;
	expect(lookup.results[instants.length]?.records, `${where}: lookup with the top-level as_of ${iso(top)}`).toEqual(
		[never, ...c.keys].reverse().map((key) => expectedView(of(key), key, top)),
	);

	for (const key of c.keys) {
		const events = of(key);
		// (b) history: every page with a random limit; then a since/until window of it.
		const expected = expectedVersions(events);
		const limit = rng.int(1, 5);
		const { versions, pages } = await allVersions(ds, key, limit);
		expect(versions, `${where}: history of ${key} with limit ${limit}`).toEqual(expected);
		expect(pages, `${where}: pages of ${key}'s history with limit ${limit}`).toBe(Math.max(1, Math.ceil(expected.length / limit)));
		if (times.length) {
			const since = rng.pick(instants);
			const until = rng.pick(instants.filter((t) => t >= since));
			const wlimit = rng.int(1, 4);
			const window = await allVersions(ds, key, wlimit, `&since=${encodeURIComponent(iso(since))}&until=${until}`);
			expect(window.versions, `${where}: history of ${key} since ${iso(since)} until ${iso(until)}, limit ${wlimit}`).toEqual(
				expected.filter((v) => Date.parse(v.event_time) >= since && Date.parse(v.event_time) <= until),
			);
		}

		// (c) the current record: D1's row, a GET through the tiers, and a current lookup.
		const current = stateAsOf(events, Number.MAX_SAFE_INTEGER);
		const row = await d1Record(ds, key);
		const what = `${where}: current ${key}`;
		if (!events.length) expect(row, what).toBeNull();
		else {
			expect(row?.value == null ? null : JSON.parse(row.value), `${what} (D1)`).toEqual(current?.value ?? null);
			if (current) expect(row?.event_time, `${what} (D1 event_time)`).toBe(current.time);
		}
		const res = await call("GET", recordUrl(ds, key));
		if (!current) await expectProblem(res, 404);
		else {
			const body = await expectJson<RecordBody>(res, 200);
			expect({ status: body.status, value: body.value, event_time: body.event_time }, `${what} (GET)`).toEqual({
				status: "present",
				value: current.value,
				event_time: iso(current.time),
			});
		}
		const rec = lookup.results[instants.length + 1]?.records.find((r) => r.key === key);
		expect(rec && { status: rec.status, value: rec.value, event_time: rec.event_time }, `${what} (lookup)`).toEqual(
			current ? { status: "present", value: current.value, event_time: iso(current.time) } : { status: "not_found", value: null, event_time: null },
		);
	}
}

/** D1's row of each key equals the fold of what was delivered so far: checked after every step. */
async function checkD1(ds: string, c: Case, delivered: readonly Ev[], where: string): Promise<void> {
	for (const key of c.keys) {
		const events = delivered.filter((e) => e.key === key);
		const row = await d1Record(ds, key);
		if (!events.length) {
			expect(row, `${where}: ${key} has no events yet`).toBeNull();
			continue;
		}
		const current = stateAsOf(events, Number.MAX_SAFE_INTEGER);
		expect(row?.value == null ? null : JSON.parse(row.value), `${where}: D1 ${key}`).toEqual(current?.value ?? null);
	}
}

// ---------------------------------------------------------------- the cases

/** Seeds 1..32: every fourth case draws ids beyond ASCII as well. */
const SEEDS = Array.from({ length: 32 }, (_, i) => i + 1);

let ds = "";
beforeAll(async () => {
	ds = await createDataset({ key: "id", fields: { a: "int", b: "string", c: "float", tags: "string[]" }, ttl_seconds: 86_400 });
});

const totals: Stats & { events: number; cases: number } = { messages: 0, retries: 0, imports: 0, concurrentSteps: 0, events: 0, cases: 0 };

describe("history and as_of equal the in-order fold of the distinct events (property)", () => {
	it.each(SEEDS)("seed %i", async (seed) => {
		const rng = prng(seed);
		const c = makeCase(seed, rng, seed % 4 === 0);
		const steps = plan(rng, c.events);
		const checkpoint = rng.int(0, steps.length - 1);
		const stats: Stats = { messages: 0, retries: 0, imports: 0, concurrentSteps: 0 };
		const delivered = new Map<string, Ev>();
		const log: string[] = [];
		try {
			for (const [i, batches] of steps.entries()) {
				if (batches.length > 1) stats.concurrentSteps++;
				log.push(
					`step ${i}: ${batches
						.map((b) => `${b.via}[${b.messages.map((m) => m.map((e) => `${e.key.slice(-1)}:${e.op[0]}:${e.id}@${e.time - c.t0}`).join(" ")).join(" | ")}]`)
						.join("  ||  ")}`,
				);
				await Promise.all(batches.map((b) => (b.via === "import" ? deliverImport(ds, b, stats) : deliverQueue(ds, b, stats))));
				for (const e of batches.flatMap((b) => b.messages.flat())) delivered.set(`${e.key}\u0000${e.id}`, e);
				await checkD1(ds, c, [...delivered.values()], `seed ${seed} after step ${i}`);
				if (i === checkpoint && i < steps.length - 1) await checkAll(ds, c, [...delivered.values()], rng, `seed ${seed} midway (after step ${i})`, 4);
			}
			expect(delivered.size).toBe(c.events.length);
			await checkAll(ds, c, c.events, rng, `seed ${seed} at the end`);
		} catch (e) {
			console.error(
				`history property failed for seed ${seed}. Keys ${c.keys.join(", ")}; t0 ${iso(c.t0)}; events (key:op:id@ms after t0, value):\n${c.events
					.map((x) => `  ${x.key.slice(-1)}:${x.op}:${JSON.stringify(x.id)}@${x.time - c.t0} ${JSON.stringify(x.value ?? null)}`)
					.join("\n")}\ndelivery:\n  ${log.join("\n  ")}`,
			);
			throw e;
		}
		totals.cases++;
		totals.events += c.events.length;
		for (const k of ["messages", "retries", "imports", "concurrentSteps"] as const) totals[k] += stats[k];
	});

	it("regression (found by seed 16): history orders ids as the merge does, so states and pages follow (event_time, id) with ids beyond U+FFFF", async () => {
		// As JS strings "\u{1f600}" (a surrogate pair, 0xD83D...) < "\uff61"; as UTF-8 bytes, which D1 sorts by, it is the other way.
		const key = uniqueName("hp_bmp");
		const t = Date.now() - 60_000;
		await deliverQueue(
			ds,
			{
				via: "queue",
				messages: [
					[
						{ key, id: "\uff61", op: "patch", time: t, value: { a: 8 } },
						{ key, id: "\u{1f600}", op: "patch", time: t, value: { a: 2 } },
					],
				],
			},
			{ messages: 0, retries: 0, imports: 0, concurrentSteps: 0 },
		);
		const expected = [
			{ event_time: iso(t), event_id: "\u{1f600}", op: "patch", value: { a: 2 } },
			{ event_time: iso(t), event_id: "\uff61", op: "patch", value: { a: 8 } },
		];
		expect((await expectJson<RecordBody>(await call("GET", recordUrl(ds, key)), 200)).value).toEqual({ a: 8 });
		expect((await allVersions(ds, key, 10)).versions).toEqual(expected);
		// Before the fix: one page listed the larger id first, and pages of 1 lost the second version.
		expect((await allVersions(ds, key, 1)).versions).toEqual(expected);
	});

	it("ran every case", () => {
		expect(totals.cases).toBe(SEEDS.length);
		console.log(`history property: ${JSON.stringify(totals)}`);
	});
});
