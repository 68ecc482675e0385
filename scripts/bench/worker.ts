// Builds the worker the way `wrangler deploy` would, and runs that bundle in workerd through
// Miniflare's API, with KV, D1 and Queues configured from wrangler.toml. No `wrangler dev`.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { unstable_readConfig } from "wrangler";

const require = createRequire(import.meta.url);

export interface Bundle {
	path: string;
	bytes: number;
	gzipBytes: number;
}

/** `wrangler deploy --dry-run --minify --outdir DIR`: the exact bundle a deploy would upload. */
export async function buildWorker(root: string, outdir: string): Promise<Bundle> {
	rmSync(outdir, { recursive: true, force: true });
	// The package's bin, found from its resolvable entry (bin/ is not in its "exports").
	const pkgDir = path.dirname(path.dirname(require.resolve("wrangler")));
	const bin = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).bin.wrangler as string;
	const wrangler = path.join(pkgDir, bin);
	await new Promise<void>((resolve, reject) => {
		const child = spawn(process.execPath, [wrangler, "deploy", "--dry-run", "--minify", "--outdir", outdir], {
			cwd: root,
			stdio: ["ignore", "pipe", "pipe"],
			env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1", FORCE_COLOR: "0" },
		});
		let out = "";
		child.stdout.on("data", (c: Buffer) => (out += c));
		child.stderr.on("data", (c: Buffer) => (out += c));
		child.on("error", reject);
		child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`wrangler build failed (exit ${code}):\n${out}`))));
	});
	const main = readdirSync(outdir).find((f) => f.endsWith(".js"));
	if (!main) throw new Error(`wrangler wrote no .js bundle to ${outdir}`);
	const file = path.join(outdir, main);
	return { path: file, bytes: statSync(file).size, gzipBytes: gzipSync(readFileSync(file), { level: 9 }).length };
}

export interface WorkerConfig {
	name: string;
	compatibilityDate: string;
	compatibilityFlags: string[];
	vars: Record<string, string>;
	migrationsDir: string;
	v4: {
		kvNamespaces: Record<string, string>;
		d1Databases: Record<string, string>;
		queueProducers: Record<string, { queueName: string }>;
		queueConsumers: Record<string, { maxBatchSize?: number; maxBatchTimeout?: number; maxRetries?: number; retryDelay?: number; deadLetterQueue?: string }>;
	};
}

/** Reads wrangler.toml with wrangler's own parser, so the bench binds exactly what a deploy binds. */
export function readWorkerConfig(root: string): WorkerConfig {
	const c = unstable_readConfig({ config: path.join(root, "wrangler.toml") });
	const vars: Record<string, string> = {};
	for (const [k, v] of Object.entries(c.vars ?? {})) vars[k] = typeof v === "string" ? v : JSON.stringify(v);
	const kvNamespaces: Record<string, string> = {};
	for (const kv of c.kv_namespaces ?? []) kvNamespaces[kv.binding] = `bench-${kv.binding}`;
	const d1Databases: Record<string, string> = {};
	let migrationsDir = path.join(root, "migrations");
	for (const d of c.d1_databases ?? []) {
		d1Databases[d.binding] = `bench-${d.database_name ?? d.binding}`;
		if (d.migrations_dir) migrationsDir = path.resolve(root, d.migrations_dir);
	}
	const queueProducers: WorkerConfig["v4"]["queueProducers"] = {};
	for (const p of c.queues?.producers ?? []) queueProducers[p.binding] = { queueName: p.queue };
	const queueConsumers: WorkerConfig["v4"]["queueConsumers"] = {};
	for (const q of c.queues?.consumers ?? []) {
		queueConsumers[q.queue] = {
			maxBatchSize: q.max_batch_size,
			maxBatchTimeout: q.max_batch_timeout,
			maxRetries: q.max_retries,
			retryDelay: q.retry_delay,
			deadLetterQueue: q.dead_letter_queue,
		};
	}
	return {
		name: c.name ?? "hotpath",
		compatibilityDate: c.compatibility_date ?? "2026-11-01",
		compatibilityFlags: c.compatibility_flags ?? [],
		vars,
		migrationsDir,
		v4: { kvNamespaces, d1Databases, queueProducers, queueConsumers },
	};
}

const PROBE_WORKER = "bench-probe";
const PROBE_SCRIPT = `export default {
	async fetch(request, env) {
		const url = new URL(request.url);
		if (url.pathname === "/kv") {
			// [[key, value], ...] into the worker's KV namespace, all at once.
			const pairs = await request.json();
			await Promise.all(pairs.map(([k, v]) => env.KV.put(k, v)));
			return Response.json({ put: pairs.length });
		}
		if (url.pathname === "/kv-missing") {
			// Which of [key, ...] the worker's KV namespace does not hold (bulk gets of 100).
			const keys = await request.json();
			const missing = [];
			for (let i = 0; i < keys.length; i += 100) {
				const got = await env.KV.get(keys.slice(i, i + 100), "text");
				for (const [k, v] of got) if (v === null) missing.push(k);
			}
			return Response.json({ missing });
		}
		if (url.pathname === "/calibrate") {
			// What Miniflare's local simulators cost on this machine, measured from inside workerd.
			const n = Number(url.searchParams.get("n") ?? 300);
			const value = "x".repeat(1300);
			let t = Date.now();
			await Promise.all(Array.from({ length: n }, (_, i) => env.KV.put("calibrate:" + i, value)));
			const kvPutMs = Date.now() - t;
			t = Date.now();
			for (let j = 0; j < n; j += 100) await env.KV.get(Array.from({ length: Math.min(100, n - j) }, (_, i) => "calibrate:" + (j + i)), "text");
			const kvGetMs = Date.now() - t;
			t = Date.now();
			await Promise.all(Array.from({ length: n }, (_, i) => env.KV.get("calibrate:" + i, "text")));
			const kvGet1Ms = Date.now() - t;
			await Promise.all(Array.from({ length: n }, (_, i) => env.KV.delete("calibrate:" + i)));
			t = Date.now();
			for (let i = 0; i < n; i++) await env.DB.prepare("SELECT 1").first();
			const d1SerialMs = Date.now() - t;
			return Response.json({ n, kv_put_per_s: n / (kvPutMs / 1000), kv_bulk_get_keys_per_s: n / (kvGetMs / 1000), kv_get_per_s: n / (kvGet1Ms / 1000), d1_queries_per_s: n / (d1SerialMs / 1000) });
		}
		if (url.pathname === "/d1-floor") {
			// Runs each chunk (one JSON parameter) through the statements, one batch per chunk, "lanes"
			// in flight, timed here: what D1 alone costs, without Miniflare's binding proxy in Node.
			const { statements, chunks, lanes } = await request.json();
			const now = Date.now();
			let next = 0;
			const t = Date.now();
			const lane = async () => {
				while (next < chunks.length) {
					const chunk = chunks[next++];
					await env.DB.batch(statements.map((sql) => env.DB.prepare(sql).bind(chunk, now)));
				}
			};
			await Promise.all(Array.from({ length: lanes }, lane));
			return Response.json({ ms: Date.now() - t });
		}
		const { sql, params } = await request.json();
		const row = await env.DB.prepare(sql).bind(...(params ?? [])).first();
		return Response.json(row);
	},
};`;

/** Writes KV entries through the probe worker (in workerd, without Miniflare's binding proxy). */
export async function probeKvPut(w: { probeUrl: URL }, pairs: [string, string][]): Promise<void> {
	const res = await fetch(new URL("/kv", w.probeUrl), { method: "POST", body: JSON.stringify(pairs) });
	if (!res.ok) throw new Error(`probe KV put failed: ${res.status} ${await res.text()}`);
	await res.arrayBuffer();
}

export interface Calibration {
	n: number;
	kv_put_per_s: number;
	kv_bulk_get_keys_per_s: number;
	kv_get_per_s: number;
	d1_queries_per_s: number;
}

export async function calibrate(w: { probeUrl: URL }, n = 300): Promise<Calibration> {
	const res = await fetch(new URL(`/calibrate?n=${n}`, w.probeUrl));
	if (!res.ok) throw new Error(`calibration failed: ${res.status} ${await res.text()}`);
	return (await res.json()) as Calibration;
}

/** Runs every chunk through `statements` (each bound to the chunk and a time), `lanes` chunks in flight, in the probe worker; the milliseconds D1 took, timed inside workerd. */
export async function probeD1Floor(w: { probeUrl: URL }, statements: string[], chunks: string[], lanes: number): Promise<number> {
	const res = await fetch(new URL("/d1-floor", w.probeUrl), { method: "POST", body: JSON.stringify({ statements, chunks, lanes }) });
	if (!res.ok) throw new Error(`probe D1 floor failed: ${res.status} ${await res.text()}`);
	return ((await res.json()) as { ms: number }).ms;
}

/** The `keys` the worker's KV namespace does not hold, through the probe worker. */
export async function probeKvMissing(w: { probeUrl: URL }, keys: string[]): Promise<string[]> {
	const res = await fetch(new URL("/kv-missing", w.probeUrl), { method: "POST", body: JSON.stringify(keys) });
	if (!res.ok) throw new Error(`probe KV check failed: ${res.status} ${await res.text()}`);
	return ((await res.json()) as { missing: string[] }).missing;
}

/** One read-only query through the probe worker. */
export async function probeQuery<T>(w: { probeUrl: URL }, sql: string, params: unknown[] = []): Promise<T> {
	const res = await fetch(w.probeUrl, { method: "POST", body: JSON.stringify({ sql, params }) });
	if (!res.ok) throw new Error(`probe query failed: ${res.status} ${await res.text()}`);
	return (await res.json()) as T;
}

export interface RunningWorker {
	mf: Miniflare;
	url: URL;
	/** workerd's pid, for CPU accounting; null when it cannot be found. */
	workerdPid: number | null;
	/** Counts of the worker's console output by level, and the first few messages of each. */
	logs: LogTally;
	inspectorUrl: URL | null;
	/** The bench's probe worker: POST {sql, params} -> first row, run against the same D1 database. */
	probeUrl: URL;
	dispose(): Promise<void>;
}

export class LogTally {
	readonly counts = new Map<string, number>();
	readonly firstByMessage = new Map<string, { level: string; n: number }>();
	/** Called with every line workerd prints (e.g. V8's --trace-gc lines, which arrive as level "log"). */
	readonly listeners: ((level: string, message: string) => void)[] = [];

	add(level: string, message: string): void {
		for (const l of this.listeners) l(level, message);
		// V8's --trace-gc lines: counted, but kept out of the message shapes (they would fill them).
		if (level === "log" && message.startsWith("[") && message.includes(" ms: ")) {
			this.counts.set("gc-trace", (this.counts.get("gc-trace") ?? 0) + 1);
			return;
		}
		this.counts.set(level, (this.counts.get(level) ?? 0) + 1);
		// Group by message shape: JSON logs without their variable parts.
		const shape = message.replace(/\d+(\.\d+)?/g, "N").slice(0, 200);
		const e = this.firstByMessage.get(shape);
		if (e) e.n++;
		else if (this.firstByMessage.size < 50) this.firstByMessage.set(shape, { level, n: 1 });
	}

	snapshot(): Record<string, number> {
		return Object.fromEntries(this.counts);
	}
}

/** Where the floor worker answers: requests reach it through Miniflare's entry router, like the worker's own. */
export const FLOOR_PATH = "/bench-floor/record";

/** Where the pipeline floor worker takes events (POST, the body /v1/events takes), and the dataset its rows go to. */
export const PIPELINE_FLOOR_PATH = "/bench-pipeline/events";
export const PIPELINE_FLOOR_DATASET = "bench_pipeline_floor";
const PIPELINE_FLOOR_QUEUE = "bench-pipeline-floor";

/**
 * The ingest pipeline with nothing of Hotpath in it: the fetch handler parses the body and
 * serialises each event again into queue messages of up to 110 KB (sendBatch of up to 100 messages
 * and 240 KB), and the consumer parses each message and writes every event as a records row and a
 * log row, in json_each INSERTs of 500 rows, one transaction per batch, as Hotpath's consumer does
 * (each value a JSON string in its row, which \`->>\` hands to SQLite as is).
 * No auth, validation, ids, merge, reads of stored state, or caches. What this harness's Queues
 * and D1 let any ingest of these events reach: the floor for ingest's end-to-end rate.
 */
const PIPELINE_FLOOR_SCRIPT = `
const RECORDS = \`INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at)
SELECT '${PIPELINE_FLOOR_DATASET}', w.value ->> 0, w.value ->> 1, w.value ->> 2, w.value ->> 3, 0, '{}', w.value ->> 2, w.value ->> 3, 1, ?2 FROM json_each(?1) AS w\`;
const LOG = \`INSERT INTO event_log (dataset, key, event_time, event_id, op, value, applied_at)
SELECT '${PIPELINE_FLOOR_DATASET}', w.value ->> 0, w.value ->> 2, w.value ->> 3, 'upsert', w.value ->> 1, ?2 FROM json_each(?1) AS w\`;
const MESSAGE_BYTES = 110 * 1024, BATCH_BYTES = 240 * 1024;
const enc = new TextEncoder();
export default {
	async fetch(request, env) {
		const events = JSON.parse(await request.text());
		const now = Date.now();
		const messages = [];
		let parts = [], bytes = 0;
		const flush = () => { if (parts.length) messages.push({ body: '{"events":[' + parts.join(",") + "]}", bytes }); parts = []; bytes = 0; };
		for (const e of events) {
			const json = JSON.stringify({ id: e.id, dataset: e.dataset, key: e.key, op: e.op, time: e.event_time ?? now, value: e.value });
			const n = enc.encode(json).length;
			if (parts.length && bytes + n > MESSAGE_BYTES) flush();
			parts.push(json);
			bytes += n + 1;
		}
		flush();
		for (let i = 0; i < messages.length; ) {
			const batch = [];
			let size = 0;
			while (i < messages.length && batch.length < 100 && (!batch.length || size + messages[i].bytes <= BATCH_BYTES)) { size += messages[i].bytes; batch.push({ body: messages[i++].body, contentType: "text" }); }
			await env.Q.sendBatch(batch);
		}
		return Response.json({ accepted: events.length }, { status: 202 });
	},
	async queue(batch, env) {
		const rows = [];
		for (const m of batch.messages) for (const e of JSON.parse(m.body).events) rows.push("[" + JSON.stringify(e.key) + "," + JSON.stringify(JSON.stringify(e.value)) + "," + e.time + "," + JSON.stringify(e.id) + "]");
		const now = Date.now();
		const stmts = [];
		for (const sql of [RECORDS, LOG]) for (let i = 0; i < rows.length; i += 500) stmts.push(env.DB.prepare(sql).bind("[" + rows.slice(i, i + 500).join(",") + "]", now));
		await env.DB.batch(stmts);
		batch.ackAll();
	},
};`;

/**
 * The floor worker: it answers every GET with one constant response, the runtime's cost of sending
 * a response of that size and headers with no routing, auth or lookup. Compared with read-l0-hit,
 * it shows how much of an L0 hit is the response itself. The bench POSTs {body, headers} of a real
 * L0 answer to it first (run.ts, mirrorL0Answer), so the floor is always the response the lane
 * sends, whatever the records route adds to it; until then it answers 503.
 */
const FLOOR_SCRIPT = `let BODY = "the floor has no L0 answer to copy yet";
let HEADERS = {}, STATUS = 503;
async function mirror(request) {
	({ body: BODY, headers: HEADERS } = await request.json());
	STATUS = 200;
	return new Response(null, { status: 204 });
}
// GET answers without a promise, as the L0 fast lane does; its method check is the lane's too.
export default { fetch(request) { return request.method === "POST" ? mirror(request) : new Response(BODY, { status: STATUS, headers: HEADERS }); } };`;

export async function startWorker(opts: {
	bundle: Bundle;
	config: WorkerConfig;
	bindings: Record<string, string>;
	verbose?: boolean;
	/** Open workerd's DevTools inspector (for --cpu-prof). */
	inspector?: boolean;
}): Promise<RunningWorker> {
	const { bundle, config } = opts;
	const logs = new LogTally();
	const dbBinding = Object.keys(config.v4.d1Databases)[0] ?? "DB";
	const v5 = convertV4MiniflareOptions({
		host: "127.0.0.1",
		port: 0,
		...(opts.inspector ? { inspectorPort: 0 } : {}),
		workers: [
			{
				name: config.name,
				modules: true,
				scriptPath: bundle.path,
				compatibilityDate: config.compatibilityDate,
				compatibilityFlags: config.compatibilityFlags,
				bindings: { ...config.vars, ...opts.bindings },
				...config.v4,
			},
			{
				// The bench's own eyes on D1 while the worker is under load: plain HTTP on its own
				// socket. (Queries through Miniflare's binding proxy make synchronous round trips,
				// which would stall this process whenever workerd is busy.)
				name: PROBE_WORKER,
				modules: true,
				script: PROBE_SCRIPT,
				compatibilityDate: config.compatibilityDate,
				d1Databases: { DB: config.v4.d1Databases[dbBinding] as string },
				kvNamespaces: { KV: Object.values(config.v4.kvNamespaces)[0] as string },
				unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
			},
			{
				name: "bench-pipeline-floor",
				modules: true,
				script: PIPELINE_FLOOR_SCRIPT,
				compatibilityDate: config.compatibilityDate,
				routes: [`*${PIPELINE_FLOOR_PATH}`],
				d1Databases: { DB: config.v4.d1Databases[dbBinding] as string },
				queueProducers: { Q: { queueName: PIPELINE_FLOOR_QUEUE } },
				queueConsumers: { [PIPELINE_FLOOR_QUEUE]: { maxBatchSize: 100, maxBatchTimeout: 0, maxRetries: 0 } },
			},
			{
				name: "bench-floor",
				modules: true,
				script: FLOOR_SCRIPT,
				compatibilityDate: config.compatibilityDate,
				routes: [`*${FLOOR_PATH}`],
			},
		],
	});
	// Per-request logging would cost more than the routes being measured.
	const mfOptions = {
		...v5,
		logRequests: false,
		handleStructuredLogs: ({ level, message }: { level: string; message: string }) => {
			logs.add(level, message);
			if (opts.verbose || level === "error") process.stderr.write(`[workerd ${level}] ${message.trimEnd()}\n`);
		},
	};
	const before = new Set(childPids(process.pid));
	const mf = new Miniflare(mfOptions);
	const url = await mf.ready;
	const workerdPid = findWorkerd(before);
	const inspectorUrl = opts.inspector ? await mf.getInspectorURL() : null;
	const probeUrl = await mf.unsafeGetDirectURL(PROBE_WORKER);
	return { mf, url, workerdPid, logs, inspectorUrl, probeUrl, dispose: () => mf.dispose() };
}

/**
 * A wrapper that runs workerd (the binary Miniflare would run) with line-buffered stdout, for
 * Miniflare's MINIFLARE_WORKERD_PATH: V8's --trace-gc lines then arrive as they are printed.
 */
export function lineBufferedWorkerd(root: string): string {
	// The workerd Miniflare itself would resolve (it may have its own copy).
	const fromMiniflare = createRequire(require.resolve("miniflare"));
	const bin = (fromMiniflare("workerd") as { default: string }).default;
	const wrapper = path.join(root, ".bench", "workerd-line-buffered.sh");
	mkdirSync(path.dirname(wrapper), { recursive: true });
	writeFileSync(wrapper, `#!/bin/sh\nexec stdbuf -oL ${JSON.stringify(bin)} "$@"\n`, { mode: 0o755 });
	return wrapper;
}

/** Applies migrations/*.sql in order through the D1 binding, split on drizzle's statement breakpoints. */
export async function applyMigrations(mf: Miniflare, dir: string, binding = "DB"): Promise<number> {
	const db = await mf.getD1Database(binding);
	const files = readdirSync(dir)
		.filter((f) => f.endsWith(".sql"))
		.sort();
	let n = 0;
	for (const f of files) {
		const statements = readFileSync(path.join(dir, f), "utf8")
			.split("--> statement-breakpoint")
			.map((s) => s.trim())
			.filter(Boolean);
		await db.batch(statements.map((s) => db.prepare(s)));
		n += statements.length;
	}
	return n;
}

// ---- process CPU accounting from /proc ------------------------------------------------------

let clkTck = 0;
function ticksPerSecond(): number {
	if (!clkTck) {
		try {
			clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
		} catch {
			clkTck = 100;
		}
	}
	return clkTck;
}

function readStat(pid: number): { ppid: number; comm: string; cpuMs: number } | null {
	try {
		const s = readFileSync(`/proc/${pid}/stat`, "utf8");
		const close = s.lastIndexOf(")");
		const comm = s.slice(s.indexOf("(") + 1, close);
		const f = s.slice(close + 2).split(" ");
		// After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
		const ppid = Number(f[1]);
		const ticks = Number(f[11]) + Number(f[12]);
		return { ppid, comm, cpuMs: (ticks * 1000) / ticksPerSecond() };
	} catch {
		return null;
	}
}

/** user+system CPU of a process (all its threads) in ms, or null when unreadable. */
export function processCpuMs(pid: number | null): number | null {
	return pid === null ? null : (readStat(pid)?.cpuMs ?? null);
}

function allPids(): number[] {
	try {
		return readdirSync("/proc")
			.filter((d) => /^\d+$/.test(d))
			.map(Number);
	} catch {
		return [];
	}
}

/** Direct and indirect children of `root`. */
export function childPids(root: number): number[] {
	const parents = new Map<number, number[]>();
	for (const pid of allPids()) {
		const st = readStat(pid);
		if (!st) continue;
		const list = parents.get(st.ppid);
		if (list) list.push(pid);
		else parents.set(st.ppid, [pid]);
	}
	const out: number[] = [];
	const stack = [root];
	while (stack.length) {
		for (const c of parents.get(stack.pop() as number) ?? []) {
			out.push(c);
			stack.push(c);
		}
	}
	return out;
}

/** The pid of the workerd started after `before` was taken, among this process's descendants. */
export function findWorkerd(before: Set<number>): number | null {
	const fresh = childPids(process.pid).filter((p) => !before.has(p));
	const named = fresh.filter((p) => readStat(p)?.comm.includes("workerd"));
	return named[0] ?? null;
}

export function findChildByName(name: string): number | null {
	return childPids(process.pid).find((p) => readStat(p)?.comm.includes(name)) ?? null;
}
