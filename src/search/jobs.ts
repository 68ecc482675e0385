/**
 * Keeping the index in step with D1, and building it. Everything slow runs through the events queue
 * as `{v: 1, search: ...}` messages (read by src/ingest/producer.ts, handed here by the consumer):
 *
 * - a build (`{job}`): a spec whose search part changed gets a new generation, filled from D1 a
 *   page of keys at a time with its progress in the catalogue, then swapped in for queries;
 * - a refresh (`{refresh}`): keys whose index write failed after D1 committed, indexed again from
 *   D1's state, as the caches' refresh messages do.
 *
 * Why a build cannot miss a write: writers decide whether a dataset is searchable by its spec in
 * the isolate's registry, which is at most CONTROL_CHECK_MS behind. A build's first page is read
 * from D1 only after that delay, so any write its pages do not see (committed after the page was
 * read) comes from a writer that already sees the spec, and so the build's generation in the
 * catalogue.
 */
import { HotpathError } from "../errors";
import { log } from "../observability/log";
import type { DatasetSpec } from "../registry/spec";
import type { Services } from "../services";
import { recordCacheKey } from "../storage/cached-record";
import { countRecords, listRecords, readRecords } from "../storage/records";
import { createStatements, dropStatements, isMissingTable, layoutOf, sameLayout, tablesOf } from "./layout";
import { claimGeneration, clearMeta, failBuild, finishBuild, forgetMeta, type IndexMeta, pageProgressStatement, readMeta, registerBuild } from "./meta";
import { forgetVectors } from "./vectors";
import { docStatements, type IndexDoc, indexDocs, searchDb } from "./writer";

/** D1 keys per build page. */
export const BUILD_PAGE_KEYS = 500;
/** How long one build message works before it hands on to the next message: it shares its batch with events. */
const BUILD_BUDGET_MS = 1000;
/** Keys per refresh message: 200 keys of up to 400 bytes fit a queue message with room to spare. */
const REFRESH_KEYS = 200;
/** Attempts before a build is marked failed (the events queue's max_retries). */
const BUILD_ATTEMPTS = 5;

export type SearchMessage = { job: { dataset: string; job: string } } | { refresh: { dataset: string; keys: string[] } };

/** Reads the `search` member of a queue message body, or null when it is not a search message. */
export function readSearchMessage(body: unknown): SearchMessage | null {
	if (body === null || typeof body !== "object") return null;
	const b = body as { v?: unknown; search?: { job?: { dataset?: unknown; job?: unknown }; refresh?: { dataset?: unknown; keys?: unknown } } };
	if (b.v !== 1 || b.search === null || typeof b.search !== "object") return null;
	const { job, refresh } = b.search;
	if (job && typeof job.dataset === "string" && typeof job.job === "string") return { job: { dataset: job.dataset, job: job.job } };
	if (refresh && typeof refresh.dataset === "string" && Array.isArray(refresh.keys) && refresh.keys.every((k) => typeof k === "string"))
		return { refresh: { dataset: refresh.dataset, keys: refresh.keys as string[] } };
	return null;
}

/** The dataset a search message is for (what limited keys may see of it as a dead letter). */
export const searchMessageDataset = (m: SearchMessage): string => ("job" in m ? m.job.dataset : m.refresh.dataset);

const send = (queue: Queue<unknown>, message: SearchMessage, delaySeconds?: number) =>
	queue.send(JSON.stringify({ v: 1, search: message }), { contentType: "text", ...(delaySeconds ? { delaySeconds } : {}) });

// ---------------------------------------------------------------- the ingest path's hook

/**
 * Indexes D1's state of keys a batch, an import or a rebuild page applied. When SEARCH_DB refuses,
 * the keys go into refresh messages instead (indexed from D1 later); throws only when the queue
 * refuses those too (the caller retries its batch).
 */
export async function indexApplied(services: Services, docs: readonly IndexDoc[]): Promise<void> {
	try {
		await indexDocs(services, docs);
	} catch (e) {
		log.warn("search index write failed; queueing a refresh from D1", { error: String(e), keys: docs.length });
		const byDataset = new Map<string, string[]>();
		for (const d of docs) {
			const keys = byDataset.get(d.dataset);
			if (keys) keys.push(d.key);
			else byDataset.set(d.dataset, [d.key]);
		}
		for (const [dataset, keys] of byDataset) {
			for (let i = 0; i < keys.length; i += REFRESH_KEYS)
				await send(services.env.EVENTS_QUEUE, { refresh: { dataset, keys: keys.slice(i, i + REFRESH_KEYS) } }, 2);
		}
	}
}

// ---------------------------------------------------------------- builds

/** Seconds before a build reads its first page: the registry's propagation delay, and a second more. */
const buildDelaySeconds = (services: Services) => Math.ceil(services.settings.CONTROL_CHECK_MS / 1000) + 1;

function requireDb(services: Services): D1Database {
	const db = searchDb(services);
	if (!db) throw new HotpathError("unavailable", "search is not configured: the worker has no SEARCH_DB binding (wrangler.toml)", { retryAfterSeconds: 60 });
	return db;
}

/** Forgets what this isolate cached of a dataset's index (the catalogue row, vector sets). */
function forgetIndex(dataset: string): void {
	forgetMeta(dataset);
	forgetVectors(dataset);
}

async function dropGeneration(db: D1Database, dataset: string, gen: number): Promise<void> {
	await db.batch(dropStatements(dataset, gen).map((s) => db.prepare(s)));
}

/**
 * Brings the index in line with the spec (the hook of PUT /v1/datasets/:name): starts a build when
 * the spec's search part differs from what the index holds or is being built to hold (or when the
 * last build failed, or when the spec it replaces, `previous`, had no search: writes made meanwhile
 * were not indexed, and an index whose drop failed then is not current), drops the index when the
 * spec has no search. Returns the catalogue row.
 */
export async function ensureSearchIndex(services: Services, spec: DatasetSpec, previous?: DatasetSpec): Promise<IndexMeta | undefined> {
	const layout = layoutOf(spec);
	const db = searchDb(services);
	if (!db) {
		if (layout) requireDb(services);
		return undefined;
	}
	if (!layout) {
		// A dataset without search must not depend on SEARCH_DB: an index left behind is unused (writers and queries go by the spec).
		try {
			const meta = await readMeta(db, spec.name);
			if (meta && (meta.gen !== null || meta.buildGen !== null)) await dropSearchIndex(services, spec.name);
		} catch (e) {
			log.warn("dropping a search index failed; it stays unused until the next PUT", { dataset: spec.name, error: String(e) });
		}
		return undefined;
	}
	try {
		const meta = await readMeta(db, spec.name);
		const target = meta?.buildGen != null ? meta.buildLayout : meta?.layout;
		const followedWrites = previous !== undefined && layoutOf(previous) !== null;
		if (meta && target && sameLayout(target, layout) && meta.status !== "failed" && followedWrites) return meta;
		return await startIndexBuild(services, spec);
	} catch (e) {
		if (e instanceof HotpathError) throw e;
		throw new HotpathError(
			"unavailable",
			`the spec of "${spec.name}" is saved, but its search index build could not start (${String(e)}); POST /v1/datasets/${spec.name}/search/reindex starts it`,
			{ retryAfterSeconds: 1 },
		);
	}
}

/** Starts a build of the spec's index into a new generation (replacing a build under way), and queues its first page. */
export async function startIndexBuild(services: Services, spec: DatasetSpec, now = Date.now()): Promise<IndexMeta> {
	const db = requireDb(services);
	const layout = layoutOf(spec);
	if (!layout) throw new HotpathError("bad_request", `dataset "${spec.name}" has no search spec to index`);
	for (let attempt = 0; attempt < 5; attempt++) {
		const seen = await readMeta(db, spec.name);
		const gen = await claimGeneration(db, spec.name);
		await db.batch(createStatements(spec.name, gen, layout).map((s) => db.prepare(s)));
		const job = crypto.randomUUID();
		const total = await countRecords(services.env.DB, spec.name);
		const registered = await registerBuild(db, {
			dataset: spec.name,
			gen,
			layout,
			job,
			total,
			now,
			seenGen: seen?.gen ?? null,
			seenBuild: seen?.buildGen ?? null,
		});
		if (!registered) {
			// Another start got in first: this generation is nobody's.
			await dropGeneration(db, spec.name, gen);
			continue;
		}
		// A build this one replaces will never finish: its tables go, unless queries use them (a first build).
		if (seen?.buildGen != null && seen.buildGen !== seen.gen) await dropGeneration(db, spec.name, seen.buildGen);
		try {
			await send(services.env.EVENTS_QUEUE, { job: { dataset: spec.name, job } }, buildDelaySeconds(services));
		} catch (e) {
			await failBuild(db, spec.name, job, `the queue refused the build's first page: ${String(e)}`, Date.now());
			throw new HotpathError("unavailable", `the search index build of "${spec.name}" could not be queued; send the request again`, {
				retryAfterSeconds: 1,
			});
		}
		forgetIndex(spec.name);
		return (await readMeta(db, spec.name)) as IndexMeta;
	}
	throw new HotpathError("conflict", `the search index of "${spec.name}" kept changing under concurrent builds; try again`);
}

/** Drops a dataset's index: the catalogue first (writers stop), then the tables. */
export async function dropSearchIndex(services: Services, dataset: string): Promise<void> {
	const db = requireDb(services);
	const meta = await readMeta(db, dataset);
	if (!meta) return;
	await clearMeta(db, dataset);
	for (const gen of new Set([meta.gen, meta.buildGen])) if (gen !== null) await dropGeneration(db, dataset, gen);
	forgetIndex(dataset);
}

/**
 * Works a build for up to `budgetMs`: pages of D1 keys (tombstones included, so a deleted key's
 * doc is a tombstone too) into the build's generation, progress recorded in the same transaction;
 * the last page swaps the generation in and drops the one it replaces. Returns whether more is left.
 */
async function runBuild(services: Services, dataset: string, job: string, budgetMs: number): Promise<boolean> {
	const db = requireDb(services);
	const until = Date.now() + budgetMs;
	for (;;) {
		const meta = await readMeta(db, dataset);
		if (!meta || meta.job !== job || meta.status !== "building" || meta.buildGen === null || !meta.buildLayout) return false; // replaced
		// The spec moved on since this build started (a PUT whose own start failed): build what it asks for now.
		const spec = await services.registry.get(dataset);
		if (!spec || !sameLayout(layoutOf(spec), meta.buildLayout)) {
			if (spec?.search) await startIndexBuild(services, spec);
			else await dropSearchIndex(services, dataset);
			return false;
		}
		const records = await listRecords(services.env.DB, dataset, meta.afterKey, BUILD_PAGE_KEYS, true);
		const last = records[records.length - 1]?.key ?? meta.afterKey;
		const docs = records.map((r) => ({ dataset, key: r.key, rec: r.rec }));
		let results: D1Result[];
		try {
			results = await db.batch([
				...docStatements(db, dataset, meta.buildGen, meta.buildLayout, docs),
				pageProgressStatement(db, dataset, job, meta.afterKey, last, records.length),
			]);
		} catch (e) {
			if (isMissingTable(e)) return false; // the generation was dropped: this build was replaced
			throw e;
		}
		// Another delivery of this job's message got to this page first: read where it got to.
		if (!results[results.length - 1]?.results.length) continue;
		if (records.length < BUILD_PAGE_KEYS) {
			if (await finishBuild(db, dataset, job, Date.now())) {
				if (meta.gen !== null && meta.gen !== meta.buildGen) await dropGeneration(db, dataset, meta.gen);
				forgetIndex(dataset);
				if (meta.indexed + records.length >= ANALYZE_MIN_DOCS) await analyze(db, dataset, meta.buildGen);
				log.info("search index built", { dataset, gen: meta.buildGen, docs: meta.indexed + records.length });
			}
			return false;
		}
		if (Date.now() >= until) return true;
	}
}

/** Docs a built generation must hold before its statistics are gathered (an empty table's would mislead the planner later). */
const ANALYZE_MIN_DOCS = 1000;

/**
 * Gathers the planner's statistics of a built generation: with them SQLite picks, say, a scan of
 * the key index over an index search and a sort for an `in` filter (20 ms to 4 ms on 100,000 docs).
 * Not fatal: the index works without them.
 */
async function analyze(db: D1Database, dataset: string, gen: number): Promise<void> {
	try {
		await db.prepare(`ANALYZE ${tablesOf(dataset, gen).docs}`).run();
	} catch (e) {
		log.warn("ANALYZE of a search index generation failed; queries work, with the planner's defaults", { dataset, gen, error: String(e) });
	}
}

async function refreshKeys(services: Services, dataset: string, keys: string[]): Promise<void> {
	const states = await readRecords(
		services.env.DB,
		keys.map((key) => ({ dataset, key })),
	);
	const docs: IndexDoc[] = [];
	for (const key of keys) {
		const rec = states.get(recordCacheKey(dataset, key));
		if (rec) docs.push({ dataset, key, rec });
	}
	await indexDocs(services, docs);
}

/** Handles one search message of an events batch: acks it when done, retries it when it failed. */
export async function consumeSearchMessage(services: Services, msg: Message<unknown>, message: SearchMessage): Promise<void> {
	const delay = Math.min(60, 2 ** msg.attempts);
	try {
		if ("refresh" in message) await refreshKeys(services, message.refresh.dataset, message.refresh.keys);
		else if (await runBuild(services, message.job.dataset, message.job.job, BUILD_BUDGET_MS)) await send(services.env.EVENTS_QUEUE, message);
		msg.ack();
	} catch (e) {
		// Acked only once the build is marked failed: otherwise the message goes back (and to the
		// dead-letter queue at last, where it can be replayed), rather than away with the index "building".
		if (
			"job" in message &&
			msg.attempts >= BUILD_ATTEMPTS &&
			(await failBuild(requireDb(services), message.job.dataset, message.job.job, String(e), Date.now()).then(
				() => true,
				() => false,
			))
		) {
			log.error("search index build kept failing; marked failed", { dataset: message.job.dataset, error: String(e) });
			msg.ack();
		} else msg.retry({ delaySeconds: delay });
	}
}

// ---------------------------------------------------------------- status

export interface SearchIndexStatus {
	dataset: string;
	/** none: the dataset is not searchable, or its index was never started; building: a build is under way (queries use the previous generation, or the one filling up). */
	status: "none" | "building" | "ready" | "failed";
	/** Live docs in the generation queries use. */
	docs: number;
	/** D1 records (tombstones included) the latest build has gone through, of `total` when it started. */
	indexed: number;
	total: number;
	started_at: string | null;
	finished_at: string | null;
	error?: string;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The index's status, read now (not from the queries' cache). */
export async function searchIndexStatus(services: Services, spec: DatasetSpec): Promise<SearchIndexStatus> {
	const db = searchDb(services);
	let meta: IndexMeta | undefined;
	try {
		meta = db ? await readMeta(db, spec.name) : undefined;
	} catch (e) {
		throw new HotpathError("unavailable", `the search index of "${spec.name}" could not be read (${String(e)})`, { retryAfterSeconds: 1 });
	}
	if (!db || !meta || meta.gen === null) {
		return { dataset: spec.name, status: "none", docs: 0, indexed: 0, total: 0, started_at: null, finished_at: null };
	}
	const { docs } = tablesOf(spec.name, meta.gen);
	let count = 0;
	try {
		count = (await db.prepare(`SELECT count(*) AS n FROM ${docs} WHERE live = 1`).first<{ n: number }>())?.n ?? 0;
	} catch (e) {
		if (!isMissingTable(e)) throw e; // swapped out this very moment: the next read shows the new one
	}
	return {
		dataset: spec.name,
		status: meta.status,
		docs: count,
		indexed: meta.indexed,
		total: meta.total,
		started_at: iso(meta.startedAt),
		finished_at: iso(meta.finishedAt),
		...(meta.error ? { error: meta.error } : {}),
	};
}
