// `npm run bench [-- --quick] [--json FILE] [--update-docs]`
//
// Builds the worker as a deploy would, runs it in workerd through Miniflare's API (local KV, D1,
// Queues from wrangler.toml; Redis through the local Upstash endpoint on a private redis-server),
// seeds a dataset, and measures each scenario with autocannon from a separate process. Every
// figure is also given as a ratio against baseline-hello measured in the same run, because the
// machine is shared and noisy.
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startRedisServer } from "../lib/redis-server.ts";
import { spawnUpstashLocal } from "../lib/upstash-process.ts";
import { DATASET, keyOf, percentiles, SPEC, sleep } from "./common.ts";
import { fixedLoadScenario, GcTrace } from "./fixed-load.ts";
import { type FixedLoadResult, fixedLoadTarget, fixedLoadText } from "./fixed-load-report.ts";
import type { Gen, Job, LoadResult } from "./load.ts";
import { Profiler, type ProfileSummary, Summariser, writeProfiles } from "./profile.ts";
import { markdownReport, type PacedPhase, type ScenarioResult, type Target, textReport, updateDocs, withRatios } from "./report.ts";
import { BASELINE_ROUTES, FULL, layout, QUICK, type ReadScenario, readScenarios, type SearchSetup, type TimeKeys } from "./scenarios.ts";
import {
	SEARCH_DATASET,
	SEARCH_SCENARIOS,
	SEARCH_SELECTORS,
	SEARCH_SPEC,
	SEARCH_SPEC_PLAIN,
	SEARCH_VECTORS,
	searchBodies,
	searchValue,
} from "./search-data.ts";
import { api, createKey, progress, putSpec, seedD1, seedKv, seedKvKeys, seedRedis, seedRedisKeys, seedVersions } from "./seed.ts";
import { AGG_DATASET, AGG_SPEC, FACTS_PER_KEY, importValues, VERSION_STEP_MS, VERSIONS, VERSIONS_START_AGO_MS } from "./time-data.ts";
import {
	applyMigrations,
	buildWorker,
	calibrate,
	childPids,
	FLOOR_PATH,
	findChildByName,
	lineBufferedWorkerd,
	PIPELINE_FLOOR_DATASET,
	PIPELINE_FLOOR_PATH,
	probeD1Floor,
	probeQuery,
	processCpuMs,
	type RunningWorker,
	readWorkerConfig,
	startWorker,
} from "./worker.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const LOAD_SCRIPT = path.join(import.meta.dirname, "load.ts");
const MIB = 1024 * 1024;

const { values: args } = parseArgs({
	options: {
		quick: { type: "boolean", default: false },
		json: { type: "string" },
		"update-docs": { type: "boolean", default: false },
		keys: { type: "string", default: "100000" },
		concurrency: { type: "string", default: "32" },
		only: { type: "string" },
		var: { type: "string", multiple: true, default: [] },
		"cpu-prof": { type: "string" },
		"fixed-load-s": { type: "string" },
		"fixed-load-rates": { type: "string" },
		"fixed-load-probe": { type: "string" },
		samples: { type: "string" },
		"import-rows": { type: "string", default: "2000" },
		"search-concurrency": { type: "string", default: "1" },
		"trace-gc": { type: "boolean", default: false },
		verbose: { type: "boolean", default: false },
		help: { type: "boolean", short: "h", default: false },
	},
});

if (args.help) {
	console.log(`Usage: npm run bench -- [--quick] [--json FILE] [--update-docs] [--keys N] [--concurrency N] [--only a,b]
  --quick        short warm-ups and windows: the whole run in about 3 minutes
  --json FILE    write {"scenarios":[{name,rps,p50_ms,p99_ms,cpu_ms_per_req,...}]} and run metadata
  --update-docs  replace the results section of docs/BENCHMARKS.md with this run
  --keys N       dataset size (default 100000)
  --concurrency  connections for the read scenarios (default 32)
  --only         comma-separated scenario names (baseline-hello always runs)
  --var K=V      override a worker var (repeatable), e.g. --var REDIS_TIMEOUT_MS=100
  --cpu-prof DIR write V8 CPU profiles of the worker and of Miniflare's simulators per scenario
                 (through workerd's inspector; adds overhead, so figures of such a run are not comparable)
  --fixed-load-s S  fixed-load: measured seconds per rate for /ping and for reads, in blocks taking turns (default 8 quick, 30 full)
  --fixed-load-rates R1,R2  fixed-load: offered rates in requests/s (default 500,1000)
  --fixed-load-probe SHARE  fixed-load: also send /ping inside the reads at SHARE of the rate (e.g. 0.1),
                    the runtime's latency at the same moments as the reads (diagnostic: adds load)
  --samples FILE    fixed-load: write every request (due time, lateness, latency, tier, Server-Timing)
                    and the /proc samples of workerd, upstash-local and redis-server to FILE (JSON)
  --trace-gc        run workerd with V8's --trace-gc and set GC pauses against slow requests
  --import-rows N   import: rows per request (default 2000, as hotpath load sends them; the route takes
                    at most 5,000 rows and 5 MiB, about 3,800 of the bench's rows)
  --search-concurrency N  connections of the search scenarios and their /ping reference (default 1:
                    the latency of one query, not of a queue behind workerd's one thread)`);
	process.exit(0);
}

const timing = { ...(args.quick ? QUICK : FULL) };
if (args["fixed-load-s"]) timing.fixedLoadS = timing.fixedLoadWarmupS = Number(args["fixed-load-s"]);
const N = Number(args.keys);
const CONNECTIONS = Number(args.concurrency);
/** What a scenario's target compares it with runs with it. */
const COMPANIONS: Record<string, string[]> = { "as-of": ["read-d1-miss"], aggregate: ["read-d1-miss"], "graphql-batch-100": ["lookup-batch-100"] };
const only = args.only ? new Set(["baseline-hello", ...args.only.split(",").flatMap((n) => [n, ...(COMPANIONS[n] ?? [])])]) : null;
const wanted = (name: string) => !only || only.has(name);
/** A scenario runs when --only names it or one of its groups. */
const selected = (s: { name: string; groups?: string[] }) => !only || [s.name, ...(s.groups ?? [])].some((n) => only.has(n));
const wantSearch = !only || [...SEARCH_SELECTORS].some((n) => only.has(n));
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const runStarted = Date.now();
// The local Upstash endpoint is a Node process sharing 2 noisy cores with workerd and the load
// generator; the worker's 100 ms production default makes the breaker trip on local jitter (the
// vitest config raises it the same way). Override with --var REDIS_TIMEOUT_MS=100.
const benchVars: Record<string, string> = { REDIS_TIMEOUT_MS: "1000" };
for (const kv of args.var ?? []) {
	const i = kv.indexOf("=");
	if (i < 1) throw new Error(`--var ${kv}: expected NAME=VALUE`);
	benchVars[kv.slice(0, i)] = kv.slice(i + 1);
}
/** A number for the log; NaN (no successful response) and null (NaN after IPC) print as a dash. */
const fmt = (x: number | null | undefined, digits = 2) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "—");
const fmtMicros = (ms: number | undefined) => fmt(ms === undefined ? undefined : ms * 1000, 1);
interface PipelineFloor {
	events: number;
	events_per_s: number;
	drained: boolean;
	accept_events_per_s: number;
}

const pipelineFloorText = (eventsPerS: number, f: PipelineFloor | undefined) =>
	f
		? `; the pipeline floor (the same burst parsed, queued and written as the same rows and log rows, nothing else): ${f.drained ? "" : ">= "}${Math.round(f.events_per_s)} events/s end to end (ingest = ${(eventsPerS / f.events_per_s).toFixed(2)}x that)`
		: "";

const floorText = (rowsPerS: number, what: string, f: D1Floor | undefined) =>
	f
		? `; D1 alone inside workerd, the same rows as json_each INSERTs (${f.rows_per_statement} per statement, ${f.in_flight} in flight): ${Math.round(f.records_rows_per_s)} rows/s for the records, ${Math.round(f.records_and_log_rows_per_s)} rows/s with their log rows (${what} = ${(rowsPerS / f.records_and_log_rows_per_s).toFixed(2)}x that)${smallText(f)}`
		: "";
const elapsed = () => `${((Date.now() - runStarted) / 1000).toFixed(0)}s`;

/** The commit the bundle was built from, and whether the worker's sources had uncommitted changes. */
function codeVersion(): { commit: string | null; dirty: string[] } {
	try {
		const git = (...a: string[]) => execFileSync("git", a, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
		const commit = git("rev-parse", "--short", "HEAD");
		const dirty = git("status", "--porcelain", "--", "src", "wrangler.toml", "package-lock.json")
			.split("\n")
			.filter(Boolean)
			.map((l) => l.slice(3));
		return { commit, dirty };
	} catch {
		return { commit: null, dirty: [] };
	}
}

function machine() {
	const cpuinfo = (() => {
		try {
			return readFileSync("/proc/cpuinfo", "utf8");
		} catch {
			return "";
		}
	})();
	const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
	return {
		nproc: os.availableParallelism(),
		cpu_model: model,
		mem_total_mib: Math.round(os.totalmem() / MIB),
		os: `${os.type()} ${os.release()} ${os.arch()}`,
		node: process.version,
		load_avg_at_start: os.loadavg().map((x) => Number(x.toFixed(2))),
	};
}

// ---- load child -------------------------------------------------------------------------

interface Sampled {
	load: LoadResult;
	workerdCpuMs: number | null;
	/** CPU of the local Upstash endpoint (a Node process). */
	upstashCpuMs: number | null;
	redisCpuMs: number | null;
	logs: Record<string, number>;
	profile?: ProfileSummary;
	/** Wall time between the two CPU samples. */
	wallMs: number;
}

/** Processes besides workerd whose CPU each window reports. */
const pids: { redis: number | null; upstash: number | null } = { redis: null, upstash: null };
let profiler: Profiler | null = null;
let summariser: Summariser | null = null;

/** Runs one job in a fresh load process. CPU counters are read right after its warm-up and right after its window. */
async function runLoad(job: Job, w: RunningWorker, during?: () => void, name?: string): Promise<Sampled> {
	const child: ChildProcess = fork(LOAD_SCRIPT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
	let cpu0 = { workerd: null as number | null, upstash: null as number | null, redis: null as number | null, at: 0 };
	let logs0 = w.logs.snapshot();
	const load = await new Promise<LoadResult>((resolve, reject) => {
		child.on("message", (m: { type: string; result?: LoadResult; error?: string }) => {
			if (m.type === "ready") child.send({ type: "run", job });
			else if (m.type === "warmed") {
				void (profiler ? profiler.start() : Promise.resolve()).then(() => {
					cpu0 = { workerd: processCpuMs(w.workerdPid), upstash: processCpuMs(pids.upstash), redis: processCpuMs(pids.redis), at: performance.now() };
					logs0 = w.logs.snapshot();
					child.send({ type: "go" });
					during?.();
				}, reject);
			} else if (m.type === "result" && m.result) resolve(m.result);
			else if (m.type === "error") reject(new Error(`load process failed: ${m.error}`));
		});
		child.on("exit", (code) => {
			if (code !== 0) reject(new Error(`load process exited with ${code}`));
		});
	});
	const workerd1 = processCpuMs(w.workerdPid);
	const redis1 = processCpuMs(pids.redis);
	const upstash1 = processCpuMs(pids.upstash);
	const wallMs = performance.now() - cpu0.at;
	let profile: ProfileSummary | undefined;
	if (profiler && summariser && args["cpu-prof"]) {
		const profiles = await profiler.stop();
		writeProfiles(args["cpu-prof"], name ?? "scenario", profiles);
		profile = summariser.summarise(profiles);
	}
	const logs1 = w.logs.snapshot();
	const logs: Record<string, number> = {};
	for (const [k, v] of Object.entries(logs1)) if (v - (logs0[k] ?? 0)) logs[k] = v - (logs0[k] ?? 0);
	return {
		load,
		workerdCpuMs: workerd1 !== null && cpu0.workerd !== null ? workerd1 - cpu0.workerd : null,
		upstashCpuMs: upstash1 !== null && cpu0.upstash !== null ? upstash1 - cpu0.upstash : null,
		redisCpuMs: redis1 !== null && cpu0.redis !== null ? redis1 - cpu0.redis : null,
		logs,
		profile,
		wallMs,
	};
}

/**
 * Waits until workerd's CPU use drops below 10% of a core for 600 ms, so one scenario's background
 * work (fills, revalidations, storage housekeeping) does not run in the next one's window.
 */
async function waitIdle(pid: number | null, maxMs = args.quick ? 10_000 : 30_000): Promise<number> {
	if (pid === null) return 0;
	const t0 = performance.now();
	let quiet = 0;
	let last = processCpuMs(pid) ?? 0;
	while (performance.now() - t0 < maxMs) {
		await sleep(200);
		const now = processCpuMs(pid) ?? 0;
		quiet = now - last <= 20 ? quiet + 200 : 0;
		last = now;
		if (quiet >= 600) break;
	}
	return performance.now() - t0;
}

type Stats = Record<string, { hits: number; misses: number; errors: number; skipped: number }>;

async function main() {
	const m = machine();
	log(`hotpath bench (${args.quick ? "quick" : "full"}): ${m.nproc} cpus (${m.cpu_model}), ${m.mem_total_mib} MiB, node ${m.node}`);

	// ---- build ------------------------------------------------------------------------------
	log(`[${elapsed()}] building with wrangler deploy --dry-run --minify`);
	const code = codeVersion();
	const bundle = await buildWorker(ROOT, path.join(ROOT, ".bench", "dist"));
	log(
		`  bundle ${bundle.bytes} bytes minified (${(bundle.bytes / MIB).toFixed(3)} MiB, ${bundle.bytes <= MIB ? "within" : "OVER"} 1 MiB), ${bundle.gzipBytes} bytes gzipped`,
	);
	const config = readWorkerConfig(ROOT);

	// ---- redis, upstash endpoint, worker ----------------------------------------------------
	const redis = await startRedisServer();
	pids.redis = findChildByName("redis-server");
	const token = randomBytes(24).toString("base64url");
	// Its own process (scripts/upstash-local.ts, startUpstashLocal), so that serving Redis traffic
	// neither delays this process's timing (D1 polls, IPC) nor hides in its CPU.
	const beforeUpstash = new Set(childPids(process.pid));
	const upstash = await spawnUpstashLocal({ redisUrl: redis.url, token });
	pids.upstash = childPids(process.pid).find((p) => !beforeUpstash.has(p)) ?? null;
	const redisClient = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
	const adminKey = `bench-admin-${randomBytes(18).toString("base64url")}`;
	// V8's GC trace from every isolate in workerd, through Miniflare's (undocumented) env switch; its
	// lines reach the structured-log handler as plain "log" lines.
	if (args["trace-gc"]) {
		process.env.MINIFLARE_WORKERD_V8_FLAGS = [process.env.MINIFLARE_WORKERD_V8_FLAGS, "--trace-gc"].filter(Boolean).join(" ");
		// V8 prints the trace with stdio, and workerd's stdout is a pipe, so it would arrive in 4 KB
		// blocks seconds late: run workerd line-buffered (stdbuf, through Miniflare's binary override).
		process.env.MINIFLARE_WORKERD_PATH = lineBufferedWorkerd(ROOT);
	}
	log(`[${elapsed()}] redis-server ${redis.url}, upstash-local ${upstash.url}; starting workerd through Miniflare`);
	const w = await startWorker({
		bundle,
		config,
		bindings: { HOTPATH_ADMIN_KEY: adminKey, UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: token, ...benchVars },
		verbose: args.verbose,
		// --trace-gc opens the inspector too, only to tell at the end which isolate each GC line is from.
		inspector: Boolean(args["cpu-prof"] || args["trace-gc"]),
	});
	const gc = args["trace-gc"] ? new GcTrace() : null;
	if (gc) w.logs.listeners.push((_level, message) => gc.line(message));
	if (args["cpu-prof"] && w.inspectorUrl) {
		mkdirSync(args["cpu-prof"], { recursive: true });
		profiler = new Profiler(w.inspectorUrl);
		summariser = new Summariser(bundle.path, ROOT, config.name);
	}
	let cleaned = false;
	const cleanup = async () => {
		if (cleaned) return;
		cleaned = true;
		await w.dispose().catch(() => {});
		redisClient.disconnect();
		await upstash.stop().catch(() => {});
		await redis.stop().catch(() => {});
	};
	process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));

	try {
		const base = w.url;
		const migrations = await applyMigrations(w.mf, config.migrationsDir);
		const health = await api<{ tiers?: Record<string, string> }>(base, adminKey, "GET", "/healthz");
		log(`  ${base.href} workerd pid ${w.workerdPid ?? "not found"}; ${migrations} migration statements; healthz ${JSON.stringify(health.json)}`);
		if (health.json?.tiers?.redis !== "up") log("  WARNING: the worker reports the Redis tier as not up; read-redis-hit cannot be answered by Redis");

		// ---- data -----------------------------------------------------------------------------
		await putSpec(base, adminKey);
		const readKey = await createKey(base, adminKey, "bench-read", ["read"]);
		const writeKey = await createKey(base, adminKey, "bench-write", ["write"]);
		// The aggregate scenario's own dataset, and keys limited to it (the others stay limited to bench_users).
		let aggKeys: { read: string; write: string } | null = null;
		if (wanted("aggregate")) {
			await putSpec(base, adminKey, AGG_DATASET, AGG_SPEC);
			aggKeys = {
				read: await createKey(base, adminKey, "bench-agg-read", ["read"], [AGG_DATASET]),
				write: await createKey(base, adminKey, "bench-agg-write", ["write"], [AGG_DATASET]),
			};
		}
		const bar = await progress();
		const calibration = await calibrate(w);
		log(
			`  Miniflare's local simulators here: KV put ${Math.round(calibration.kv_put_per_s)}/s, KV get ${Math.round(calibration.kv_get_per_s)}/s (bulk ${Math.round(calibration.kv_bulk_get_keys_per_s)} keys/s), D1 ${Math.round(calibration.d1_queries_per_s)} serial queries/s`,
		);
		log(`[${elapsed()}] seeding ${N} records`);
		const seeded = await seedD1(w.mf, N, bar);
		log(
			`  D1: ${N} records in ${(seeded.ms / 1000).toFixed(1)} s (${Math.round(N / (seeded.ms / 1000))}/s), ~${Math.round(seeded.bytes / N)} bytes of JSON per record`,
		);
		// search: the same values in a dataset of its own (search-data.ts), seeded straight into D1
		// like bench_users; then the spec gets its search part, which starts the index build from D1
		// through the queue. It runs while the tier copies are written, and is waited for below.
		let searchKey: string | null = null;
		let searchPut = 0;
		if (wantSearch) {
			await putSpec(base, adminKey, SEARCH_DATASET, SEARCH_SPEC_PLAIN);
			searchKey = await createKey(base, adminKey, "bench-search-read", ["read"], [SEARCH_DATASET]);
			const s = await seedD1(w.mf, N, bar, { dataset: SEARCH_DATASET, value: searchValue });
			log(`  D1: ${N} records of ${SEARCH_DATASET} in ${(s.ms / 1000).toFixed(1)} s, ${Math.min(N, SEARCH_VECTORS)} of them with their embedding`);
			searchPut = Date.now();
			await putSpec(base, adminKey, SEARCH_DATASET, SEARCH_SPEC);
			log(`[${elapsed()}] ${SEARCH_DATASET}: search spec applied (${JSON.stringify(SEARCH_SPEC.search)}); the index builds in the background`);
		}

		const L = layout(N, timing.slices);
		const redisTtl = Number(benchVars.REDIS_MAX_TTL_SECONDS ?? 3600);
		const wantTiers = ["read-kv-hit", "read-redis-hit", "read-zipf", "lookup-batch-1", "lookup-batch-10", "lookup-batch-100", "graphql-batch-100"].some(wanted);
		if (wantTiers) {
			log(
				`[${elapsed()}] tier copies: Redis [${L.redis[0]}, ${L.redis[1]}), KV [${L.kv[0]}, ${L.kv[1]}) and [${L.zipfKv[0]}, ${L.zipfKv[1]}), D1 only [${L.d1[0]}, ${L.d1[1]})`,
			);
			await seedRedis(redisClient, L.redis[0], L.redis[1], seeded.times, redisTtl);
			await seedKv(w, L.kv[0], L.kv[1], seeded.times, bar, "KV copies");
			await seedKv(w, L.zipfKv[0], L.zipfKv[1], seeded.times, bar, "KV copies (zipf)");
			log(`  redis keys ${await redisClient.dbsize()}`);
		}

		// The index must be complete before anything is measured: its build shares workerd and the queue.
		let searchIndex: SearchIndexBuild | null = null;
		if (wantSearch && searchKey) {
			searchIndex = await waitSearchIndex(base, searchKey, searchPut, N);
			if (searchIndex.ready) await checkSearch(base, searchKey, Math.min(N, SEARCH_VECTORS));
		}

		// ---- scenarios ------------------------------------------------------------------------
		const results: ScenarioResult[] = [];
		const run = randomBytes(3).toString("hex");
		const time: TimeKeys = {};
		// as-of: keys with VERSIONS versions each, through the import route (the consumer's applyEvents and event log).
		if (wanted("as-of")) {
			const count = timing.asOfKeys;
			const prefix = `asof_${run}_`;
			const start = Date.now() - VERSIONS_START_AGO_MS;
			log(`[${elapsed()}] as-of: writing ${count} keys of ${VERSIONS} versions each (an upsert, then patches a minute apart) through the import route`);
			const v = await seedVersions(base, writeKey, prefix, count, start);
			const logged = await countLog(w, DATASET, prefix);
			log(`  ${v.rows} versions in ${(v.ms / 1000).toFixed(1)} s (${Math.round(v.rows / (v.ms / 1000))} rows/s); the event log holds ${logged}`);
			if (logged !== count * VERSIONS) throw new Error(`as-of seeding: the event log holds ${logged} versions, expected ${count * VERSIONS}`);
			// A second after the last version: every read folds all of a key's versions.
			time.asOf = { prefix, count, asOf: start + (VERSIONS - 1) * VERSION_STEP_MS + 1000 };
		}
		// aggregate: its facts, posted as events, are the facts-ingest measurement as well as the read's data.
		if (wanted("aggregate") && aggKeys) {
			const count = timing.aggKeys;
			const prefix = `agg_${run}_`;
			await waitIdle(w.workerdPid);
			log(`[${elapsed()}] aggregate-facts: ${count * FACTS_PER_KEY} facts for ${count} keys of ${AGG_DATASET}, spread over 7 days, POSTed as events`);
			results.push(await factsScenario(w, aggKeys.write, prefix, count));
			time.aggregate = { prefix, count };
		}

		const getStats = async (): Promise<Stats> => (await api<{ tiers: Stats }>(base, adminKey, "GET", "/v1/stats")).json.tiers;

		// The bare route: the first of BASELINE_ROUTES the worker answers with a 200.
		let baselinePath = "/";
		for (const route of BASELINE_ROUTES) {
			const res = await fetch(new URL(route, base));
			await res.arrayBuffer();
			if (res.status === 200) {
				baselinePath = route;
				break;
			}
		}
		const searchSetup: SearchSetup | undefined = searchIndex?.ready
			? { connections: Number(args["search-concurrency"]), vectors: Math.min(N, SEARCH_VECTORS) }
			: undefined;
		const scenarios = readScenarios(L, timing, baselinePath, time, searchSetup);
		// The baseline again at the end: the machine is shared, and the two tell how much it drifted.
		const baseline = scenarios[0] as ReadScenario;
		scenarios.push({ ...baseline, name: "baseline-hello-end", note: `GET ${baselinePath} again, after the read scenarios: drift check` });
		const tokenOf = (s: ReadScenario) =>
			s.dataset === AGG_DATASET ? (aggKeys?.read ?? readKey) : s.dataset === SEARCH_DATASET ? (searchKey ?? readKey) : readKey;
		for (const s of scenarios) {
			if (!selected(s) && s.name !== "baseline-hello-end") continue;
			const idle = await waitIdle(w.workerdPid);
			log(`[${elapsed()}] ${s.name}: ${s.note}${idle > 1000 ? ` (waited ${(idle / 1000).toFixed(1)} s for workerd to go idle)` : ""}`);
			results.push(await readScenario(s, w, base, tokenOf(s), getStats));
			const r = results.at(-1) as ScenarioResult;
			log(
				`  ${Math.round(r.rps)} rps, p50 ${fmt(r.p50_ms)} ms, p99 ${fmt(r.p99_ms)} ms, cpu ${fmt(r.cpu_ms_per_req, 3)} ms/req, loadgen ${Math.round((r.loadgen_cpu_share ?? 0) * 100)}%, tiers ${JSON.stringify(r.tiers)}`,
			);
			if (r.note?.startsWith("WARNING")) log(`  ${r.note}`);
		}

		// The L0 target compares two figures that each move by ~10% between windows on this shared
		// machine, so it is judged on short back-to-back rounds (baseline, floor, read-l0-hit and the same reads through the app, in rotating order), by
		// the median of the rounds' ratios, rather than on two windows that ran a minute apart. The
		// floor is the same response (size and headers) from a worker that does nothing else.
		const pairs: L0Pair[] = [];
		if (wanted("read-l0-hit")) {
			const [baseS, l0S] = [scenarios[0], scenarios.find((x) => x.name === "read-l0-hit")] as [ReadScenario, ReadScenario];
			const floorS: ReadScenario = { ...baseS, name: "floor-record", gen: { kind: "fixed", method: "GET", path: FLOOR_PATH, auth: false } };
			// The same L0 hits with an empty query string, which the L0 fast lane leaves to the app
			// (src/routes/fast-read.ts): what the lane saves, measured in the same rounds.
			const appS: ReadScenario = { ...l0S, name: "read-l0-hit-app", gen: { ...(l0S.gen as Extract<Gen, { kind: "cycle" }>), query: "?" } };
			// The full run's 8 rounds put each of the four scenarios in each position twice.
			const rounds = args.quick ? 3 : 8;
			log(`[${elapsed()}] read-l0-hit vs baseline-hello: ${rounds} back-to-back rounds of ${PAIR_WINDOW_S} s windows, with the floor (${FLOOR_PATH})`);
			const mirrored = await mirrorL0Answer(w.url, readKey, keyOf(L.hot[0]));
			log(`  the floor answers a copy of a real L0 hit: ${mirrored.bytes}-byte body, headers ${mirrored.names.join(", ")}`);
			const measure = async (sc: ReadScenario) => {
				await waitIdle(w.workerdPid);
				return readScenario({ ...sc, warmupS: 1 }, w, base, readKey, getStats, PAIR_WINDOW_S);
			};
			for (let i = 0; i < rounds; i++) {
				// The order rotates from round to round, so that no scenario always runs first or last.
				const all = [baseS, floorS, l0S, appS];
				const measured = new Map<ReadScenario, ScenarioResult>();
				for (let j = 0; j < all.length; j++) {
					const sc = all[(i + j) % all.length] as ReadScenario;
					measured.set(sc, await measure(sc));
				}
				const [b, f, l, a] = all.map((sc) => measured.get(sc) as ScenarioResult) as [ScenarioResult, ScenarioResult, ScenarioResult, ScenarioResult];
				pairs.push({
					baseline_rps: b.rps,
					floor_rps: f.rps,
					l0_rps: l.rps,
					ratio: l.rps / b.rps,
					floor_ratio: f.rps / b.rps,
					baseline_cpu_ms: b.cpu_ms_per_req ?? null,
					floor_cpu_ms: f.cpu_ms_per_req ?? null,
					l0_cpu_ms: l.cpu_ms_per_req ?? null,
					floor_bytes: f.bytes_per_response ?? null,
					l0_bytes: l.bytes_per_response ?? null,
					app_rps: a.rps,
					app_ratio: a.rps / b.rps,
					app_cpu_ms: a.cpu_ms_per_req ?? null,
				});
				log(
					`  round ${i + 1}: baseline ${Math.round(b.rps)} rps, floor ${Math.round(f.rps)} rps = ${(f.rps / b.rps).toFixed(2)}x, read-l0-hit ${Math.round(l.rps)} rps = ${(l.rps / b.rps).toFixed(2)}x, the same through the app ${Math.round(a.rps)} rps = ${(a.rps / b.rps).toFixed(2)}x`,
				);
			}
		}

		// GraphQL against the same batch through REST, in back-to-back rounds (two windows a minute
		// apart differ by more than the 1.3x the target allows), alternating which goes first.
		const gqlPairs: BatchPair[] = [];
		if (wanted("graphql-batch-100")) {
			const lb = scenarios.find((x) => x.name === "lookup-batch-100") as ReadScenario;
			const gq = scenarios.find((x) => x.name === "graphql-batch-100") as ReadScenario;
			log(
				`[${elapsed()}] graphql-batch-100 vs lookup-batch-100: ${timing.pairRounds} back-to-back rounds of ${timing.pairWindowS} s windows, alternating which runs first`,
			);
			for (let i = 0; i < timing.pairRounds; i++) {
				// Each round draws other keys (another seed), the same for both.
				const withSeed = (sc: ReadScenario): ReadScenario => ({ ...sc, warmupS: 1, gen: { ...(sc.gen as Extract<Gen, { kind: "lookup" }>), seed: 5000 + i } });
				const order = i % 2 ? [gq, lb] : [lb, gq];
				const got = new Map<ReadScenario, ScenarioResult>();
				for (const sc of order) {
					await waitIdle(w.workerdPid);
					got.set(sc, await readScenario(withSeed(sc), w, base, readKey, getStats, timing.pairWindowS));
				}
				const [l, g] = [got.get(lb), got.get(gq)] as [ScenarioResult, ScenarioResult];
				gqlPairs.push({
					lookup_p99_ms: l.p99_ms,
					graphql_p99_ms: g.p99_ms,
					lookup_cpu_ms: l.cpu_ms_per_req ?? null,
					graphql_cpu_ms: g.cpu_ms_per_req ?? null,
					lookup_rps: l.rps,
					graphql_rps: g.rps,
					p99_ratio: g.p99_ms / l.p99_ms,
					cpu_ratio: g.cpu_ms_per_req && l.cpu_ms_per_req ? g.cpu_ms_per_req / l.cpu_ms_per_req : null,
					lookup_tiers: l.tiers ?? {},
					graphql_tiers: g.tiers ?? {},
				});
				const p = gqlPairs.at(-1) as BatchPair;
				log(
					`  round ${i + 1}: lookup-batch-100 ${Math.round(l.rps)} rps p99 ${fmt(l.p99_ms)} ms cpu ${fmt(l.cpu_ms_per_req, 3)} ms/req; graphql-batch-100 ${Math.round(g.rps)} rps p99 ${fmt(g.p99_ms)} ms cpu ${fmt(g.cpu_ms_per_req, 3)} ms/req: p99 ${fmt(p.p99_ratio)}x, cpu ${fmt(p.cpu_ratio)}x`,
				);
			}
		}

		// Read tails at a fixed offered load, against /ping's in the same schedule (scripts/bench/fixed-load.ts).
		let fixedLoad: FixedLoadResult | null = null;
		if (wanted("fixed-load")) {
			await waitIdle(w.workerdPid);
			const count = 10_000;
			const start = Math.max(0, N - count);
			// Only the tier scenarios need their slices untouched (fixed-load runs after them, and warms its keys).
			if (start < L.zipfKv[1] && wantTiers) log(`  WARNING fixed-load keys [${start}, ${N}) overlap the tier slices (--keys ${N} is small)`);
			const setting = (k: string, def: number) => Number(benchVars[k] ?? config.vars[k] ?? def);
			const l0 = { ttlS: setting("L0_TTL_SECONDS", 5), swrS: setting("L0_SWR_SECONDS", 10) };
			log(`[${elapsed()}] fixed-load: /ping and Zipf reads at a fixed offered load, open loop`);
			fixedLoad = await fixedLoadScenario(
				{
					w,
					base,
					readKey,
					adminKey,
					baselinePath,
					redis: redisClient,
					pids: { workerd: w.workerdPid, upstash: pids.upstash, redis: pids.redis },
					vars: benchVars,
					l0,
					waitIdle: () => waitIdle(w.workerdPid),
					log,
					gc,
					inspectorUrl: w.inspectorUrl,
					workerName: config.name,
					topUp: {
						redis: (indices) => seedRedisKeys(redisClient, indices, seeded.times, redisTtl),
						kv: (indices) => seedKvKeys(w, indices, seeded.times),
					},
					samplesFile: args.samples,
				},
				{
					rates: args["fixed-load-rates"] ? args["fixed-load-rates"].split(",").map(Number) : [500, 1000],
					windowS: timing.fixedLoadS,
					// Blocks of about 5 s (2 s in a quick run) per route, at least two each.
					blocks: Math.max(2, Math.round(timing.fixedLoadS / (args.quick ? 2 : 5))),
					// L0 reaches its steady state again within its fresh + stale-while-revalidate time.
					readsWarmupS: Math.min(timing.fixedLoadWarmupS, l0.ttlS + l0.swrS),
					pingWarmupS: 1,
					settleS: 0.5,
					probeShare: Number(args["fixed-load-probe"] ?? 0),
					connections: 20,
					keys: { start, count: Math.min(count, N) },
					zipfS: 1.0,
				},
			);
			for (const line of fixedLoadText(fixedLoad)) log(`  ${line}`);
		}

		if (wanted("ingest")) {
			await waitIdle(w.workerdPid);
			log(`[${elapsed()}] ingest`);
			results.push(await ingestScenario(w, writeKey, readKey));
		}

		if (wanted("import")) {
			await waitIdle(w.workerdPid);
			log(`[${elapsed()}] import`);
			results.push(await importScenario(w, writeKey, `imp_${run}_`));
		}

		// ---- report ---------------------------------------------------------------------------
		const rows = withRatios(results);
		const targets = evaluateTargets(rows, bundle.bytes, pairs, gqlPairs, wantSearch ? searchIndex : undefined);
		targets.splice(targets.length - 1, 0, fixedLoadTarget(fixedLoad));
		const header = [
			`run: ${new Date(runStarted).toISOString()}, \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\`, ${((Date.now() - runStarted) / 1000).toFixed(0)} s`,
			`machine: ${m.nproc} vCPU ${m.cpu_model}, ${m.mem_total_mib} MiB RAM, ${m.os}, node ${m.node}, load average at start ${m.load_avg_at_start.join(" ")}`,
			`code: ${code.commit === null ? "not a git checkout" : `commit ${code.commit}`}${code.dirty.length ? `, with uncommitted changes to ${code.dirty.length} file(s) of the worker (${code.dirty.slice(0, 5).join(", ")}${code.dirty.length > 5 ? ", ..." : ""})` : ""}`,
			`bundle: ${bundle.bytes} bytes minified (${bundle.bytes <= MIB ? "<=" : ">"} 1 MiB), ${bundle.gzipBytes} bytes gzipped`,
			`dataset: ${N} records, ${Object.keys(SPEC.fields).length} fields incl. a 64-float vector, ~${Math.round(seeded.bytes / N)} bytes of JSON each`,
			`Miniflare's local simulators on this machine (measured at start): KV put ${Math.round(calibration.kv_put_per_s)}/s, KV get ${Math.round(calibration.kv_get_per_s)}/s, D1 ${Math.round(calibration.d1_queries_per_s)} serial queries/s`,
			`worker vars set by the bench: ${
				Object.entries(benchVars)
					.map(([k, v]) => `${k}=${v}`)
					.join(", ") || "none"
			} (everything else as in wrangler.toml)`,
			`load: autocannon in a separate process, ${CONNECTIONS} connections, warm-up ${timing.warmupS} s (tier scenarios ${timing.tierWarmupS} s), window ${timing.durationS} s`,
			`ratios are against baseline-hello (GET ${baselinePath}) from this run${searchSetup ? ` (the search rows': against search-baseline, GET ${baselinePath} at their ${searchSetup.connections} connection(s))` : ""}; cpu is workerd's user+system time per request, workerd cores = that time over the window`,
		];
		if (pairs.length) {
			const ratios = (pick: (p: L0Pair) => number | null) =>
				pairs
					.map(pick)
					.map((r) => (r === null ? "n/a" : `${r.toFixed(2)}x`))
					.join(", ");
			const cpuRatio = (cpu: number | null, baseCpu: number | null) => (cpu && baseCpu ? cpu / baseCpu : null);
			header.push(
				`read-l0-hit / baseline-hello in ${pairs.length} back-to-back rounds of ${PAIR_WINDOW_S} s windows: ${ratios((p) => p.ratio)} (median ${median(pairs.map((p) => p.ratio)).toFixed(2)}x); the floor, a worker answering the same ${Math.round(pairs[0]?.floor_bytes ?? 0)}-byte response and headers with nothing else to do: ${ratios((p) => p.floor_ratio)} (median ${median(pairs.map((p) => p.floor_ratio)).toFixed(2)}x); workerd CPU per request, read-l0-hit / baseline-hello: ${ratios((p) => cpuRatio(p.l0_cpu_ms, p.baseline_cpu_ms))}; the same reads through the app instead of the L0 fast lane (an empty query string): ${ratios((p) => p.app_ratio)} (median ${median(pairs.map((p) => p.app_ratio)).toFixed(2)}x), CPU per request ${ratios((p) => cpuRatio(p.app_cpu_ms, p.baseline_cpu_ms))}`,
			);
		}
		if (gqlPairs.length) {
			const ratios = (pick: (p: BatchPair) => number | null) =>
				gqlPairs
					.map(pick)
					.map((r) => (r === null ? "n/a" : `${r.toFixed(2)}x`))
					.join(", ");
			header.push(
				`graphql-batch-100 / lookup-batch-100 in ${gqlPairs.length} back-to-back rounds of ${timing.pairWindowS} s windows: p99 ${ratios((p) => p.p99_ratio)} (median ${median(gqlPairs.map((p) => p.p99_ratio)).toFixed(2)}x); workerd CPU per request ${ratios((p) => p.cpu_ratio)} (median ${medianOrNaN(gqlPairs.map((p) => p.cpu_ratio)).toFixed(2)}x); rps ${ratios((p) => p.graphql_rps / p.lookup_rps)}`,
			);
		}
		if (searchIndex)
			header.push(
				searchIndex.ready
					? `search: ${SEARCH_DATASET}, the bench values (${N} records, ${Math.min(N, SEARCH_VECTORS)} with their 64-dim embedding), index built from D1 in ${(searchIndex.ms / 1000).toFixed(1)} s after the PUT of its search spec (${Math.round(searchIndex.docs / (searchIndex.ms / 1000))} docs/s, through the queue); search scenarios at ${args["search-concurrency"]} connection(s), p99 targets absolute (search-baseline: ${baselinePath} at the same load); workerd CPU per request includes Miniflare's D1 (SEARCH_DB) and router, so it is an upper bound of the worker's own`
					: `search: the index of ${SEARCH_DATASET} was not ready ${(searchIndex.ms / 1000).toFixed(0)} s after the PUT (${searchIndex.detail}); search scenarios not run`,
			);
		const b0 = rows.find((r) => r.name === "baseline-hello");
		const b1 = rows.find((r) => r.name === "baseline-hello-end");
		if (b0 && b1)
			header.push(
				`baseline drift over the run (baseline-hello-end / baseline-hello): rps ${(b1.rps / b0.rps).toFixed(2)}x, cpu per request ${((b1.cpu_ms_per_req ?? 0) / (b0.cpu_ms_per_req ?? 1)).toFixed(2)}x`,
			);
		const doc = { scenarios: rows, targets, header, fixed_load: fixedLoad };
		console.log(textReport(doc));
		if (args.json) {
			const out = {
				scenarios: rows,
				targets,
				header,
				l0_pairs: pairs,
				graphql_pairs: gqlPairs,
				search_index: searchIndex,
				fixed_load: fixedLoad,
				bundle: { bytes: bundle.bytes, gzip_bytes: bundle.gzipBytes, limit_bytes: MIB, within_limit: bundle.bytes <= MIB },
				machine: m,
				calibration,
				run: {
					started_at: new Date(runStarted).toISOString(),
					code,
					duration_s: (Date.now() - runStarted) / 1000,
					quick: args.quick,
					connections: CONNECTIONS,
					worker_vars: benchVars,
					timing,
					dataset: { name: DATASET, keys: N, layout: L, seed_ms: seeded.ms, json_bytes_per_record: seeded.bytes / N },
					worker_logs: Object.fromEntries([...w.logs.firstByMessage].map(([k, v]) => [k, v])),
				},
			};
			writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
			log(`wrote ${args.json}`);
		}
		if (args["update-docs"]) log(updateDocs(path.join(ROOT, "docs", "BENCHMARKS.md"), markdownReport(doc)));
	} finally {
		await cleanup();
	}
}

/**
 * Makes the floor worker answer what an L0 hit of `key` answers: the same body and the same
 * headers (names, and values of the same length), so the floor stays the cost of sending this
 * very response whatever the records route adds to it.
 */
async function mirrorL0Answer(url: URL, readKey: string, key: string): Promise<{ bytes: number; names: string[] }> {
	const recordUrl = new URL(`/v1/datasets/${DATASET}/records/${key}`, url);
	for (let i = 0; i < 20; i++) {
		// As the load generator asks: without Accept-Encoding (fetch asks for gzip by default).
		const res = await fetch(recordUrl, { headers: { authorization: `Bearer ${readKey}`, "accept-encoding": "identity" } });
		const body = await res.text();
		if (res.status === 200 && res.headers.get("x-hotpath-tier") === "l0") {
			const headers = Object.fromEntries(res.headers);
			// Added by Miniflare's entry router to every answer; the floor's answers get them there too.
			for (const h of ["content-length", "date", "transfer-encoding", "connection", "keep-alive"]) delete headers[h];
			if (headers["content-encoding"])
				throw new Error(`the L0 answer came ${headers["content-encoding"]}-encoded; the floor must copy what the load generator gets`);
			const put = await fetch(new URL(FLOOR_PATH, url), { method: "POST", body: JSON.stringify({ body, headers }) });
			if (put.status !== 204) throw new Error(`mirroring the L0 answer into the floor worker failed: ${put.status} ${await put.text()}`);
			return { bytes: Buffer.byteLength(body), names: Object.keys(headers) };
		}
		await sleep(50);
	}
	throw new Error(`no L0 answer for ${key} to mirror into the floor worker`);
}

interface L0Pair {
	baseline_rps: number;
	floor_rps: number;
	l0_rps: number;
	ratio: number;
	floor_ratio: number;
	baseline_cpu_ms: number | null;
	floor_cpu_ms: number | null;
	l0_cpu_ms: number | null;
	floor_bytes: number | null;
	l0_bytes: number | null;
	/** The same reads through the app instead of the L0 fast lane. */
	app_rps: number;
	app_ratio: number;
	app_cpu_ms: number | null;
}

const PAIR_WINDOW_S = 3;

/** One round of graphql-batch-100 against lookup-batch-100. */
interface BatchPair {
	lookup_p99_ms: number;
	graphql_p99_ms: number;
	lookup_cpu_ms: number | null;
	graphql_cpu_ms: number | null;
	lookup_rps: number;
	graphql_rps: number;
	p99_ratio: number;
	cpu_ratio: number | null;
	lookup_tiers: Record<string, number>;
	graphql_tiers: Record<string, number>;
}

const medianOrNaN = (xs: (number | null)[]): number => {
	const ok = xs.filter((x): x is number => x !== null && Number.isFinite(x));
	return ok.length ? median(ok) : Number.NaN;
};

function median(xs: number[]): number {
	const s = [...xs].sort((a, b) => a - b);
	const mid = Math.floor(s.length / 2);
	return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function readScenario(
	s: ReadScenario,
	w: RunningWorker,
	base: URL,
	readKey: string,
	getStats: () => Promise<Stats>,
	durationS = timing.durationS,
): Promise<ScenarioResult> {
	const stats0 = await getStats();
	const job: Job = {
		url: base.href,
		token: readKey,
		connections: s.connections ?? CONNECTIONS,
		warmupS: s.warmupS,
		durationS,
		gen: s.gen,
		...(s.warmupRequests ? { warmupRequests: s.warmupRequests } : {}),
		...(s.serverTiming ? { serverTiming: s.serverTiming } : {}),
	};
	const { load, workerdCpuMs, upstashCpuMs, redisCpuMs, logs, profile, wallMs } = await runLoad(job, w, undefined, s.name);
	if (profile) logProfile(profile, workerdCpuMs);
	const stats1 = await getStats();
	const delta: Stats = {};
	let looked = 0;
	for (const [tier, c] of Object.entries(stats1)) {
		const b = stats0[tier] ?? { hits: 0, misses: 0, errors: 0, skipped: 0 };
		delta[tier] = { hits: c.hits - b.hits, misses: c.misses - b.misses, errors: c.errors - b.errors, skipped: c.skipped - b.skipped };
	}
	// Every key looked up either hits L0 or misses it.
	looked = (delta.l0?.hits ?? 0) + (delta.l0?.misses ?? 0);
	const hitRatio: Record<string, number> = {};
	if (looked) for (const [tier, c] of Object.entries(delta)) hitRatio[tier] = c.hits / looked;
	const totalTier = Object.values(load.tiers).reduce((a, b) => a + b, 0);
	const expectedShare = s.expect ? (load.tiers[s.expect] ?? 0) / Math.max(1, totalTier) : undefined;
	const n = load.ok;
	const problems: string[] = [];
	if (!n) problems.push(`no successful response within the ${durationS} s window (${load.requests} requests completed)`);
	if (expectedShare !== undefined && expectedShare < 0.95) problems.push(`only ${(expectedShare * 100).toFixed(1)}% answered by ${s.expect}`);
	if (load.exhausted) problems.push(`key slice exhausted after ${load.keysUsed} keys: window cut to ${load.elapsedS.toFixed(1)} s`);
	const non2xx = Object.values(load.non2xx).reduce((a, b) => a + b, 0);
	if (non2xx || load.errors) problems.push(`${non2xx} non-2xx, ${load.errors} errors, first: ${(load.firstErrorBodies[0] ?? "").slice(0, 200)}`);
	return {
		name: s.name,
		rps: load.rps,
		// No successful response leaves no percentile (NaN, which IPC turns into null).
		p50_ms: load.latency.p50 ?? Number.NaN,
		p99_ms: load.latency.p99 ?? Number.NaN,
		...(workerdCpuMs !== null ? { cpu_ms_per_req: n ? workerdCpuMs / n : Number.NaN, workerd_cores: workerdCpuMs / wallMs } : {}),
		p90_ms: load.latency.p90,
		p999_ms: load.latency.p999,
		mean_ms: load.latency.mean,
		max_ms: load.latency.max,
		requests: n,
		duration_s: load.elapsedS,
		errors: load.errors,
		non2xx: load.non2xx,
		tiers: load.tiers,
		...(s.expect ? { expected_tier: s.expect, expected_tier_share: expectedShare } : {}),
		stats_delta: delta,
		hit_ratio: hitRatio,
		keys_per_request: s.keysPerRequest,
		connections: job.connections,
		...(s.ratioBase ? { ratio_base: s.ratioBase } : {}),
		keys_used: load.keysUsed,
		keys_exhausted: load.exhausted,
		loadgen_cpu_share: load.cpuShare,
		...(upstashCpuMs !== null ? { upstash_cpu_ms_per_req: upstashCpuMs / n } : {}),
		...(redisCpuMs !== null ? { redis_cpu_ms_per_req: redisCpuMs / n } : {}),
		bytes_per_response: load.bytesPerResponse,
		...(load.serverTiming ? { server_timing: load.serverTiming } : {}),
		worker_log_counts: logs,
		...(load.firstErrorBodies.length ? { error_samples: load.firstErrorBodies } : {}),
		...(profile ? { profile } : {}),
		note: problems.length ? `WARNING ${problems.join("; ")}` : s.note,
	};
}

function logProfile(p: ProfileSummary, workerdCpuMs: number | null): void {
	const js = Object.entries(p.isolates)
		.filter(([, ms]) => ms >= 1)
		.sort((a, b) => b[1] - a[1])
		.map(([id, ms]) => `${id} ${Math.round(ms)} ms`)
		.join(", ");
	log(`  profile: workerd cpu ${Math.round(workerdCpuMs ?? 0)} ms; JS per isolate: ${js}`);
	log(
		`  worker self time by area: ${p.byArea
			.slice(0, 10)
			.map((a) => `${a.area} ${(a.share * 100).toFixed(0)}%`)
			.join(", ")}`,
	);
	for (const t of p.top.slice(0, 12)) log(`    ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.fn}  ${t.at}`);
}

/** Counts records whose key starts with `prefix` (a primary-key range scan). */
async function countPrefix(w: RunningWorker, prefix: string, dataset = DATASET): Promise<number> {
	const row = await probeQuery<{ n: number } | null>(w, "SELECT count(*) AS n FROM records WHERE dataset = ?1 AND key >= ?2 AND key < ?3", [
		dataset,
		prefix,
		`${prefix}~`,
	]);
	return row?.n ?? 0;
}

interface Drain {
	/** Epoch ms when all accepted events were readable in D1, or null when the wait ran out. */
	at: number | null;
	/** Readable when the wait ended. */
	count: number;
	/** Epoch ms the wait ended. */
	endedAt: number;
}

/** How the search dataset's index build went (GET /v1/datasets/:name/search polled after the PUT). */
interface SearchIndexBuild {
	ready: boolean;
	/** From the PUT of the search spec until the status said ready with every doc. */
	ms: number;
	docs: number;
	detail: string;
}

/** Polls the search dataset's index status every 500 ms until it is ready with `expected` docs (or failed, or 10 minutes). */
async function waitSearchIndex(base: URL, key: string, putAt: number, expected: number): Promise<SearchIndexBuild> {
	type Status = { status: string; docs: number; indexed: number; total: number; error?: string };
	let lastLog = Date.now();
	for (;;) {
		const r = await api<Status>(base, key, "GET", `/v1/datasets/${SEARCH_DATASET}/search`);
		const ms = Date.now() - putAt;
		const st = r.json;
		const detail =
			r.status === 200
				? `status ${st.status}, ${st.docs} docs, ${st.indexed} of ${st.total} indexed${st.error ? `, error ${st.error}` : ""}`
				: `GET status ${r.status}`;
		if (r.status === 200 && st.status === "ready" && st.docs >= expected) {
			log(`  ${SEARCH_DATASET}: index ready, ${st.docs} docs, ${(ms / 1000).toFixed(1)} s after the PUT (${Math.round(st.docs / (ms / 1000))} docs/s)`);
			return { ready: true, ms, docs: st.docs, detail };
		}
		if ((r.status === 200 && st.status === "failed") || ms > 600_000) {
			log(`  WARNING ${SEARCH_DATASET}: index not ready after ${(ms / 1000).toFixed(0)} s: ${detail}`);
			return { ready: false, ms, docs: st.docs ?? 0, detail };
		}
		if (Date.now() - lastLog > 10_000) {
			log(`  ${SEARCH_DATASET}: ${detail} (${(ms / 1000).toFixed(0)} s)`);
			lastLog = Date.now();
		}
		await sleep(500);
	}
}

/** One query of each search scenario before any is measured: each must answer 200 with hits. */
async function checkSearch(base: URL, key: string, vectors: number): Promise<void> {
	for (const sc of SEARCH_SCENARIOS) {
		const body = JSON.parse(searchBodies(sc.variant, 99, vectors)[0] as string) as unknown;
		const r = await api<{ hits: { key: string; score: number }[]; took_ms: number }>(base, key, "POST", `/v1/datasets/${SEARCH_DATASET}/search`, body);
		if (r.status !== 200) throw new Error(`${sc.name}: POST search answered ${r.status} ${JSON.stringify(r.json).slice(0, 500)}`);
		const hits = r.json.hits;
		if (!hits.length) throw new Error(`${sc.name}: no hits for ${JSON.stringify(body).slice(0, 200)}`);
		log(`  check ${sc.name}: ${hits.length} hits, first ${hits[0]?.key} (score ${hits[0]?.score.toFixed(4)}), took_ms ${r.json.took_ms}`);
	}
}

/** Counts event-log entries of `dataset` whose key starts with `prefix` (a range scan of its unique index). */
async function countLog(w: RunningWorker, dataset: string, prefix: string): Promise<number> {
	const row = await probeQuery<{ n: number } | null>(w, "SELECT count(*) AS n FROM event_log WHERE dataset = ?1 AND key >= ?2 AND key < ?3", [
		dataset,
		prefix,
		`${prefix}~`,
	]);
	return row?.n ?? 0;
}

/**
 * Polls D1 every 100 ms until `count()` reaches `expected()`. `expected()` is null while the phase
 * is still posting; once it is known, waits at most `maxWaitMs` more. Nothing is counted while the
 * phase posts: a count then could not end the wait, and each is a scan of the phase's keys on the
 * thread the pipeline it measures runs on.
 */
async function waitReadable(countNow: () => Promise<number>, expected: () => number | null, maxWaitMs: number): Promise<Drain> {
	let knownAt = 0;
	for (;;) {
		if (expected() === null) {
			await sleep(10);
			continue;
		}
		const count = await countNow();
		const exp = expected() as number;
		const now = Date.now();
		if (count >= exp) return { at: now, count, endedAt: now };
		knownAt ||= now;
		if (now - knownAt > maxWaitMs) return { at: null, count, endedAt: now };
		await sleep(100);
	}
}

/** The fields every write scenario reports from its load: rates, latency, workerd CPU over the window, errors. */
function writeFields(
	s: Phase["s"],
): Pick<ScenarioResult, "rps" | "p50_ms" | "p99_ms" | "requests" | "duration_s" | "errors" | "non2xx" | "loadgen_cpu_share"> &
	Partial<Pick<ScenarioResult, "cpu_ms_per_req" | "workerd_cores">> {
	const b = s.load;
	return {
		rps: b.rps,
		p50_ms: b.latency.p50,
		p99_ms: b.latency.p99,
		...(s.workerdCpuMs !== null ? { cpu_ms_per_req: s.workerdCpuMs / b.ok, workerd_cores: s.workerdCpuMs / s.wallMs } : {}),
		requests: b.ok,
		duration_s: b.elapsedS,
		errors: b.errors,
		non2xx: b.non2xx,
		loadgen_cpu_share: b.cpuShare,
	};
}

/** What went wrong in a write scenario's load: non-2xx answers and errors, and fewer items taken than sent. */
function writeProblems(b: LoadResult, expected: number, what: string): string[] {
	const problems: string[] = [];
	const non2xx = Object.values(b.non2xx).reduce((x, y) => x + y, 0);
	if (non2xx || b.errors) problems.push(`${non2xx} non-2xx, ${b.errors} errors, first: ${(b.firstErrorBodies[0] ?? "").slice(0, 200)}`);
	if (b.accepted !== expected) problems.push(`${b.accepted} of ${expected} ${what}`);
	return problems;
}

/** One ingest phase: posts events from a load process while D1 is polled for them. */
interface Phase {
	s: Sampled;
	drain: Drain;
	/** Events readable in D1 per second, first POST to last readable (or to the deadline). */
	e2eRate: number;
	drainS: number;
	/** Seconds after the last POST until workerd went idle: the consumer's KV and Redis write-through done too. Null if it did not within the wait. */
	pipelineS: number | null;
	/** Accepted events per second, first POST until the pipeline went idle. */
	pipelineRate: number | null;
}

/** Runs `job` (writes) while `countNow` (what D1 holds of them) is polled; by default, records with the job's key prefix. */
async function ingestPhase(w: RunningWorker, name: string, job: Job, countNow?: () => Promise<number>): Promise<Phase> {
	const prefix = (job.gen as { prefix: string }).prefix;
	const counter = countNow ?? (() => countPrefix(w, prefix));
	let accepted: number | null = null;
	let drain: Promise<Drain> = Promise.resolve({ at: null, count: 0, endedAt: Date.now() });
	const s = await runLoad(
		job,
		w,
		() => {
			drain = waitReadable(counter, () => accepted, timing.drainS * 1000);
		},
		name,
	);
	accepted = s.load.accepted;
	const d = await drain;
	// Not drained: what was readable by the deadline, over the time to the deadline (the queue was never empty: a lower bound).
	const e2eRate = d.count / (((d.at ?? d.endedAt) - s.load.startedAt) / 1000);
	const drainS = ((d.at ?? d.endedAt) - s.load.endedAt) / 1000;
	if (s.profile) logProfile(s.profile, s.workerdCpuMs);
	// D1 commits first; the consumer then writes KV and Redis before it acks and takes the next batch.
	const maxIdleWait = timing.drainS * 1000;
	const waited = await waitIdle(w.workerdPid, maxIdleWait);
	const idle = waited < maxIdleWait;
	const pipelineS = idle ? (Date.now() - s.load.endedAt) / 1000 : null;
	const pipelineRate = idle ? s.load.accepted / ((Date.now() - s.load.startedAt) / 1000) : null;
	return { s, drain: d, e2eRate, drainS, pipelineS, pipelineRate };
}

async function ingestScenario(w: RunningWorker, writeKey: string, readKey: string): Promise<ScenarioResult> {
	const run = randomBytes(3).toString("hex");
	const batch = 100;
	const offered = 5000;

	// Phase 1: saturating. POST as fast as the API takes them (bounded in time and count), then
	// time until every accepted event is readable in D1.
	const burstJob = (prefix: string, path?: string): Job => ({
		url: w.url.href,
		token: writeKey,
		connections: CONNECTIONS,
		warmupS: 0,
		durationS: 0,
		amount: Math.ceil(timing.burstEvents / batch),
		gen: { kind: "events", batch, prefix, path },
	});
	const burst = await ingestPhase(w, "ingest-burst", burstJob(`ing_${run}_b_`));
	const b = burst.s.load;
	log(
		`  saturating: ${b.accepted} events accepted in ${b.elapsedS.toFixed(1)} s (${Math.round(b.accepted / b.elapsedS)}/s, POST p99 ${fmt(b.latency.p99, 0)} ms); ` +
			(burst.drain.at !== null
				? `all readable ${burst.drainS.toFixed(1)} s after the last POST -> ${Math.round(burst.e2eRate)} events/s end to end`
				: `only ${burst.drain.count} readable ${burst.drainS.toFixed(1)} s after the last POST -> >= ${Math.round(burst.e2eRate)} events/s end to end`),
	);
	const backlog = b.accepted - burst.drain.count;
	// The same burst through the pipeline floor (worker.ts): parse, serialise, queue, and the same
	// rows and log rows in D1, with nothing of Hotpath. What any ingest of these events reaches here.
	const pipeFloor = await ingestPhase(w, "ingest-pipeline-floor", burstJob(`ing_${run}_f_`, PIPELINE_FLOOR_PATH), () =>
		countPrefix(w, `ing_${run}_f_`, PIPELINE_FLOOR_DATASET),
	);
	log(
		`  the pipeline floor, the same burst: ${pipeFloor.s.load.accepted} events accepted at ${Math.round(pipeFloor.s.load.accepted / pipeFloor.s.load.elapsedS)}/s, ` +
			`${pipeFloor.drain.at !== null ? "all" : `only ${pipeFloor.drain.count}`} in D1 ${pipeFloor.drainS.toFixed(1)} s after the last POST -> ${Math.round(pipeFloor.e2eRate)} events/s end to end; ingest = ${(burst.e2eRate / pipeFloor.e2eRate).toFixed(2)}x that`,
	);
	log(
		burst.pipelineS === null
			? `  the consumer was still busy ${timing.drainS} s after D1 had the events`
			: `  workerd idle (consumer done with KV and Redis too) ${burst.pipelineS.toFixed(1)} s after the last POST -> ${Math.round(burst.pipelineRate ?? 0)} events/s through the whole pipeline`,
	);

	// Phases 2 and 3: paced, with freshness probes alongside. First at a rate the pipeline can
	// sustain (half of what phase 1 measured), which shows the pipeline's own latency floor; then at
	// the 5000/s target, last, because a pipeline that cannot keep up never drains.
	const probeLoops = 4;
	const pacedPhase = async (label: string, wantedRate: number, tag: string) => {
		// Whole requests of `batch` events, sent open loop at an even pace (load.ts runPaced).
		const reqRate = Math.max(1, Math.round(wantedRate / batch));
		const rate = reqRate * batch;
		const ph = await ingestPhase(w, `ingest-${label}`, {
			url: w.url.href,
			token: writeKey,
			// Enough connections that the client can hold the offered rate even when a POST takes a while.
			connections: CONNECTIONS,
			warmupS: 0,
			durationS: 0,
			amount: reqRate * timing.pacedS,
			rate: reqRate,
			gen: { kind: "events", batch, prefix: `ing_${run}_${tag}_` },
			probes: { loops: probeLoops, prefix: `ing_${run}_${tag}q_`, pollMs: 10, timeoutMs: timing.probeTimeoutS * 1000, readToken: readKey },
		});
		const p = ph.s.load;
		const fresh = p.freshness ?? { samples: [], timeouts: 0 };
		// A probe that timed out is a censored sample: its lag is at least the timeout.
		const lags = [...fresh.samples, ...Array.from({ length: fresh.timeouts }, () => timing.probeTimeoutS * 1000)];
		const [f50, f99] = percentiles(lags, [50, 99]);
		log(
			`  paced at ${Math.round(rate)}/s: ${p.accepted} accepted in ${p.elapsedS.toFixed(1)} s; ` +
				(ph.drain.at !== null
					? `all readable ${ph.drainS.toFixed(1)} s after the last POST`
					: `only ${ph.drain.count} readable ${ph.drainS.toFixed(1)} s after the last POST`) +
				` -> ${Math.round(ph.e2eRate)} events/s; freshness p50 ${fmt(f50, 0)} ms p99 ${fmt(f99, 0)} ms (${fresh.samples.length} probes seen, ${fresh.timeouts} not within ${timing.probeTimeoutS} s)`,
		);
		return {
			offered: rate,
			accepted: p.accepted,
			duration_s: p.elapsedS,
			events_per_s: ph.e2eRate,
			drained: ph.drain.at !== null,
			drain_s: ph.drainS,
			pipeline_idle_s: ph.pipelineS,
			post_p99_ms: p.latency.p99,
			freshness_p50_ms: f50 as number,
			freshness_p99_ms: f99 as number,
			freshness_max_ms: fresh.samples.length ? Math.max(...fresh.samples) : Number.NaN,
			freshness_samples: fresh.samples.length,
			freshness_timeouts: fresh.timeouts,
		};
	};
	const capacity = burst.pipelineRate ?? burst.e2eRate / 2;
	const sustainableRate = Math.max(20, Math.round(capacity / 2 / 10) * 10);
	const sustainable = await pacedPhase("sustainable", sustainableRate, "s");
	const target = await pacedPhase("target", offered, "p");
	const dead = (await probeQuery<{ n: number } | null>(w, "SELECT count(*) AS n FROM dead_letters"))?.n ?? 0;
	// The consumer's shape: batches of 100 events (max_batch_size), one at a time.
	const floor = await d1Floor(w, 20_000, batch, 1);
	log(d1FloorLine(floor));
	const n = b.ok;
	const cpuPerEvent = burst.s.workerdCpuMs === null ? undefined : burst.s.workerdCpuMs / Math.max(1, b.accepted);
	return {
		name: "ingest",
		d1_floor: floor,
		pipeline_floor: {
			events: pipeFloor.s.load.accepted,
			events_per_s: pipeFloor.e2eRate,
			drained: pipeFloor.drain.at !== null,
			accept_events_per_s: pipeFloor.s.load.accepted / pipeFloor.s.load.elapsedS,
		},
		rps: b.rps,
		p50_ms: b.latency.p50,
		p99_ms: b.latency.p99,
		...(burst.s.workerdCpuMs !== null ? { cpu_ms_per_req: burst.s.workerdCpuMs / n, workerd_cores: burst.s.workerdCpuMs / burst.s.wallMs } : {}),
		p90_ms: b.latency.p90,
		requests: n,
		duration_s: b.elapsedS,
		errors: b.errors,
		non2xx: b.non2xx,
		loadgen_cpu_share: b.cpuShare,
		events_per_s: burst.e2eRate,
		freshness_p50_ms: target.freshness_p50_ms,
		freshness_p99_ms: target.freshness_p99_ms,
		freshness_samples: target.freshness_samples,
		freshness_timeouts: target.freshness_timeouts,
		freshness_timeout_ms: timing.probeTimeoutS * 1000,
		freshness_loops: probeLoops,
		batch,
		burst_events: b.accepted,
		burst_connections: CONNECTIONS,
		accept_events_per_s: b.accepted / b.elapsedS,
		burst_drained: burst.drain.at !== null,
		burst_drain_s: burst.drainS,
		burst_readable: burst.drain.count,
		burst_pipeline_idle_s: burst.pipelineS,
		pipeline_events_per_s: burst.pipelineRate,
		backlog_after_burst: backlog,
		// workerd CPU over the saturating window only; the consumer keeps working after the last 202.
		cpu_ms_per_event_window: cpuPerEvent,
		sustainable,
		target,
		dead_letters: dead,
		worker_log_counts: { ...burst.s.logs },
		note: `POST /v1/events, ${batch} upserts of new keys per request; end to end = first POST until every accepted event is readable in D1`,
	};
}

/**
 * The aggregate dataset's facts: `keys` x FACTS_PER_KEY patches with event times spread over the
 * last 7 days in a scrambled order, 100 per POST /v1/events as fast as the API takes them; end to
 * end = first POST until the event log holds every accepted fact (tiles are written in the same
 * transaction as the log).
 */
async function factsScenario(w: RunningWorker, writeKey: string, prefix: string, keys: number): Promise<ScenarioResult> {
	const batch = 100;
	const total = keys * FACTS_PER_KEY;
	const ph = await ingestPhase(
		w,
		"aggregate-facts",
		{
			url: w.url.href,
			token: writeKey,
			connections: CONNECTIONS,
			warmupS: 0,
			durationS: 0,
			amount: Math.ceil(total / batch),
			gen: { kind: "facts", batch, prefix, keys, total, end: Date.now() - 60_000 },
		},
		() => countLog(w, AGG_DATASET, prefix),
	);
	const b = ph.s.load;
	log(
		`  ${b.accepted} facts accepted in ${b.elapsedS.toFixed(1)} s (${Math.round(b.accepted / b.elapsedS)}/s, POST p99 ${fmt(b.latency.p99, 0)} ms); ` +
			(ph.drain.at !== null
				? `all in the event log ${ph.drainS.toFixed(1)} s after the last POST -> ${Math.round(ph.e2eRate)} facts/s end to end`
				: `only ${ph.drain.count} in the log ${ph.drainS.toFixed(1)} s after the last POST -> >= ${Math.round(ph.e2eRate)} facts/s end to end`) +
			(ph.pipelineS === null ? "" : `; workerd idle ${ph.pipelineS.toFixed(1)} s after the last POST`),
	);
	const problems = writeProblems(b, total, "facts accepted");
	return {
		name: "aggregate-facts",
		...writeFields(ph.s),
		events_per_s: ph.e2eRate,
		facts: b.accepted,
		facts_per_key: FACTS_PER_KEY,
		// workerd CPU over the POSTing window only (API and consumer together); the consumer may finish after it.
		...(ph.s.workerdCpuMs !== null ? { cpu_ms_per_fact: ph.s.workerdCpuMs / Math.max(1, b.accepted) } : {}),
		keys,
		batch,
		accept_events_per_s: b.accepted / b.elapsedS,
		drained: ph.drain.at !== null,
		drain_s: ph.drainS,
		readable: ph.drain.count,
		pipeline_idle_s: ph.pipelineS,
		pipeline_events_per_s: ph.pipelineRate,
		worker_log_counts: { ...ph.s.logs },
		note: problems.length
			? `WARNING ${problems.join("; ")}`
			: `POST /v1/events to ${AGG_DATASET} (7 aggregates), ${batch} facts per request; end to end = first POST until the event log holds every fact`,
	};
}

/**
 * Bulk import as `hotpath load` does it: rows of the bench spec for new keys, `_id` and
 * `_event_time` first, --import-rows per request, 4 requests in flight. The route answers once D1
 * has committed and the caches are refreshed, so D1 holds a request's rows when its answer comes;
 * D1 is polled all the same, as for ingest. CPU per row is workerd's over the window.
 */
async function importScenario(w: RunningWorker, writeKey: string, prefix: string): Promise<ScenarioResult> {
	const batch = Number(args["import-rows"]);
	const connections = 4;
	const amount = Math.ceil(timing.importRows / batch);
	const ph = await ingestPhase(w, "import", {
		url: w.url.href,
		token: writeKey,
		connections,
		warmupS: 0,
		durationS: 0,
		amount,
		gen: { kind: "import", batch, prefix },
	});
	const b = ph.s.load;
	const cpuPerRow = ph.s.workerdCpuMs === null ? undefined : ph.s.workerdCpuMs / Math.max(1, b.accepted);
	log(
		`  ${b.accepted} rows imported in ${b.elapsedS.toFixed(1)} s (${Math.round(b.accepted / b.elapsedS)} rows/s answered, POST p50 ${fmt(b.latency.p50, 0)} ms, p99 ${fmt(b.latency.p99, 0)} ms); ` +
			(ph.drain.at !== null
				? `all in D1 ${ph.drainS.toFixed(1)} s after the last answer -> ${Math.round(ph.e2eRate)} rows/s end to end`
				: `only ${ph.drain.count} in D1 -> >= ${Math.round(ph.e2eRate)} rows/s`) +
			`; workerd ${fmt(cpuPerRow === undefined ? undefined : cpuPerRow * 1000, 1)} µs CPU per row (${fmt(ph.s.workerdCpuMs === null ? undefined : ph.s.workerdCpuMs / ph.s.wallMs)} cores)` +
			`; upstash-local ${fmt(ph.s.upstashCpuMs === null ? undefined : ph.s.upstashCpuMs / ph.s.wallMs)} cores, redis-server ${fmt(ph.s.redisCpuMs === null ? undefined : ph.s.redisCpuMs / ph.s.wallMs)} cores (the Redis write-through)`,
	);
	const floor = await d1Floor(w, Math.min(20_000, timing.importRows), 500, 2, true);
	log(d1FloorLine(floor));
	const problems = writeProblems(b, amount * batch, "rows imported");
	return {
		name: "import",
		...writeFields(ph.s),
		rows_per_s: ph.e2eRate,
		rows: b.accepted,
		rows_per_request: batch,
		connections,
		cpu_ms_per_row: cpuPerRow,
		...(ph.s.upstashCpuMs !== null ? { upstash_cores: ph.s.upstashCpuMs / ph.s.wallMs } : {}),
		...(ph.s.redisCpuMs !== null ? { redis_cores: ph.s.redisCpuMs / ph.s.wallMs } : {}),
		drained: ph.drain.at !== null,
		drain_s: ph.drainS,
		d1_floor: floor,
		worker_log_counts: { ...ph.s.logs },
		note: problems.length
			? `WARNING ${problems.join("; ")}`
			: `POST /v1/datasets/${DATASET}/import, ${batch} rows of new keys per request, ${connections} in flight; end to end = first POST until D1 holds every row`,
	};
}

// What D1 alone takes to store rows of the bench's values for new keys, as multi-row json_each
// INSERTs in a given shape, with nothing else: no parsing, validation, merge or id checks in the
// worker, no queue, no caches. Timed inside workerd by the probe worker, so Miniflare's binding
// proxy in Node (which the seeding goes through) is not in it. The floor under import (its
// statements' size, 2 in flight) and under ingest (the consumer's batches of 100, one at a time).
const FLOOR_RECORDS = `INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at)
SELECT 'bench_floor_' || ?2, w.value ->> 0, w.value ->> 1, ?2, w.value ->> 0, 0, '{}', ?2, w.value ->> 0, 1, ?2 FROM json_each(?1) AS w`;
const FLOOR_LOG = `INSERT INTO event_log (dataset, key, event_time, event_id, op, value, applied_at)
SELECT 'bench_floor_' || ?2, w.value ->> 0, ?2, w.value ->> 0, 'upsert', w.value ->> 1, ?2 FROM json_each(?1) AS w`;

interface D1Floor {
	rows: number;
	rows_per_statement: number;
	in_flight: number;
	records_rows_per_s: number;
	records_and_log_rows_per_s: number;
	/**
	 * The same records statement with a ~20-byte value per row, 1,000 rows per statement: the shape
	 * in which json_each INSERTs reach the 300-480k rows/s the import target (issue 9) was set from.
	 * Set for the import's floor only. Against records_rows_per_s it shows what the row size costs.
	 */
	small_rows_per_s?: number;
}

async function d1Floor(w: RunningWorker, rows: number, perStatement: number, lanes: number, small = false): Promise<D1Floor> {
	const values = importValues(perStatement);
	// Each value as a JSON string in its row, as the consumer sends them (src/storage/records.ts valueMember).
	const chunks = (tag: string, per = perStatement, value = (j: number) => JSON.stringify(`{${values[j]}}`)) => {
		const out: string[] = [];
		for (let i = 0; i < rows; i += per) {
			const part: string[] = [];
			for (let j = 0; j < per && i + j < rows; j++) part.push(`[${JSON.stringify(`floor_${tag}_${i + j}`)},${value(j)}]`);
			out.push(`[${part.join(",")}]`);
		}
		return out;
	};
	const recordsMs = await probeD1Floor(w, [FLOOR_RECORDS], chunks("r"), lanes);
	const bothMs = await probeD1Floor(w, [FLOOR_RECORDS, FLOOR_LOG], chunks("rl"), lanes);
	const smallMs = small
		? await probeD1Floor(
				w,
				[FLOOR_RECORDS],
				chunks("s", 1000, (j) => JSON.stringify(`{"score":${j % 100}}`)),
				lanes,
			)
		: null;
	for (const table of ["records", "event_log"]) await probeQuery(w, `DELETE FROM ${table} WHERE dataset LIKE 'bench_floor_%'`);
	return {
		rows,
		rows_per_statement: perStatement,
		in_flight: lanes,
		records_rows_per_s: rows / (recordsMs / 1000),
		records_and_log_rows_per_s: rows / (bothMs / 1000),
		...(smallMs !== null ? { small_rows_per_s: rows / (smallMs / 1000) } : {}),
	};
}

const smallText = (f: D1Floor) =>
	f.small_rows_per_s === undefined ? "" : `; the records statement with ~20-byte values, 1000 per statement: ${Math.round(f.small_rows_per_s)} rows/s`;
const d1FloorLine = (f: D1Floor) =>
	`  D1 alone, inside workerd, the same rows as json_each INSERTs (${f.rows_per_statement} per statement, ${f.in_flight} in flight): records ${Math.round(f.records_rows_per_s)} rows/s; records and their log rows ${Math.round(f.records_and_log_rows_per_s)} rows/s${smallText(f)}`;

/**
 * Which Workers plan a search request fits: the free plan allows 10 ms of CPU per request, the paid
 * plan 30 s (by default). workerd's CPU per request also counts Miniflare's router and its D1, whose
 * SQLite runs the SEARCH_DB query inside workerd here and outside the Worker in production. For
 * text and filter queries that query is the whole ranking, so its time (Server-Timing "search")
 * is taken off for an estimate of the Worker's own; a vector ranking runs in the Worker itself.
 */
function planFit(cpuMs: number | undefined, rankingMeanMs: number | undefined, rankingInSql: boolean): string {
	if (cpuMs === undefined || !Number.isFinite(cpuMs)) return "plan fit unknown (no CPU figure)";
	if (cpuMs <= 10) return "fits the free plan (10 ms CPU per request) even counting Miniflare's share";
	const own = rankingInSql && rankingMeanMs !== undefined && Number.isFinite(rankingMeanMs) ? cpuMs - rankingMeanMs : undefined;
	if (own !== undefined && own <= 10)
		return `over the free plan's 10 ms as measured; less the SEARCH_DB query (mean ${fmt(rankingMeanMs, 1)} ms, D1's work in production) about ${fmt(own, 1)} ms: the free plan then, the paid plan (30 s) in any case`;
	return `over the free plan's 10 ms CPU per request as measured (Miniflare's D1 and router included${own !== undefined ? `; about ${fmt(own, 1)} ms without the SEARCH_DB query` : ""}): paid plan (30 s)`;
}

/** The search targets: each scenario's p99 against its absolute bound, with /ping at the same load, CPU per request and plan fit. */
function searchTargets(by: (n: string) => ScenarioResult | undefined, index: SearchIndexBuild | null): Target[] {
	const ref = by("search-baseline");
	return SEARCH_SCENARIOS.map((sc) => {
		const name = `${sc.name} p99 <= ${sc.targetP99Ms} ms`;
		const r = by(sc.name);
		if (!r) return { name, met: null, detail: index && !index.ready ? `not run: the index was not ready (${index.detail})` : "not run" };
		const failed = r.note?.startsWith("WARNING");
		const st = r.server_timing as { p50: number; p99: number; mean: number } | undefined;
		return {
			name,
			met: !failed && r.p99_ms <= sc.targetP99Ms,
			detail: `${r.p99_ms.toFixed(2)} ms (p50 ${r.p50_ms.toFixed(2)} ms, ${Math.round(r.rps)} rps at ${r.connections} connection(s)${st ? `; the ranking (Server-Timing search) p50 ${fmt(st.p50)} ms, p99 ${fmt(st.p99)} ms` : ""}${ref ? `; the baseline route at the same load (search-baseline): p99 ${ref.p99_ms.toFixed(2)} ms` : ""}); workerd CPU ${fmt(r.cpu_ms_per_req, 2)} ms per request: ${planFit(r.cpu_ms_per_req, st?.mean, sc.variant !== "vector" && sc.variant !== "hybrid")}${failed ? `; ${r.note}` : ""}`,
		};
	});
}

function evaluateTargets(
	rows: ScenarioResult[],
	bundleBytes: number,
	pairs: L0Pair[],
	gqlPairs: BatchPair[] = [],
	searchIndex?: SearchIndexBuild | null,
): Target[] {
	const by = (n: string) => rows.find((r) => r.name === n);
	const base = by("baseline-hello");
	const l0 = by("read-l0-hit");
	const b1 = by("lookup-batch-1");
	const b100 = by("lookup-batch-100");
	const ing = by("ingest");
	const t: Target[] = [];
	const pairRatio = pairs.length ? median(pairs.map((p) => p.ratio)) : null;
	t.push(
		l0 && base && pairRatio !== null
			? {
					name: "read-l0-hit rps >= 0.9x baseline",
					met: pairRatio >= 0.9,
					detail: `median of ${pairs.length} back-to-back rounds ${pairRatio.toFixed(2)}x (${pairs.map((p) => p.ratio.toFixed(2)).join(", ")}), floor ${median(pairs.map((p) => p.floor_ratio)).toFixed(2)}x; the table's single windows: ${Math.round(l0.rps)} vs ${Math.round(base.rps)} rps = ${(l0.rps / base.rps).toFixed(2)}x`,
				}
			: { name: "read-l0-hit rps >= 0.9x baseline", met: null, detail: "not run" },
	);
	// Issue 8 (tails under steady load): an L0 hit may cost workerd at most 1.10x the CPU of the floor
	// worker, which sends the same response with nothing else to do; the median over the rounds.
	const cpuRatios = pairs.flatMap((p) => (p.l0_cpu_ms && p.floor_cpu_ms ? [p.l0_cpu_ms / p.floor_cpu_ms] : []));
	t.push(
		cpuRatios.length
			? {
					name: "read-l0-hit CPU per request <= 1.10x the floor's",
					met: median(cpuRatios) <= 1.1,
					detail: `median of ${cpuRatios.length} rounds ${median(cpuRatios).toFixed(2)}x (${cpuRatios.map((r) => r.toFixed(2)).join(", ")})`,
				}
			: { name: "read-l0-hit CPU per request <= 1.10x the floor's", met: null, detail: "not run" },
	);
	t.push(
		b1 && b100
			? {
					name: "lookup-batch-100 p99 <= 3x lookup-batch-1 p99",
					met: b100.p99_ms <= 3 * b1.p99_ms,
					detail: `${b100.p99_ms.toFixed(2)} vs ${b1.p99_ms.toFixed(2)} ms = ${(b100.p99_ms / b1.p99_ms).toFixed(2)}x`,
				}
			: { name: "lookup-batch-100 p99 <= 3x lookup-batch-1 p99", met: null, detail: "not run" },
	);
	if (ing) {
		const ev = ing.events_per_s ?? Number.NaN;
		const f99 = ing.freshness_p99_ms ?? Number.NaN;
		const tg = ing.target as PacedPhase;
		// Sustained: at the offered 5000/s the API took (nearly) all of it on time, and D1 had every
		// event within the freshness budget of the last POST, so no backlog built up.
		const taken = tg.accepted / tg.duration_s;
		const sustained = taken >= 0.95 * tg.offered && tg.drained && tg.drain_s <= 0.5;
		// Issue 8 raised this target from 5,000 events/s and 1.5 s.
		t.push({
			name: "ingest >= 10,000 events/s end to end, freshness p99 <= 500 ms at 5,000/s offered",
			met: ev >= 10_000 && sustained && f99 <= 500,
			detail: `saturated: ${ing.burst_drained ? "" : ">= "}${Math.round(ev)} events/s end to end; offered ${tg.offered}/s: the API took ${Math.round(taken)}/s, all readable ${tg.drained ? `${tg.drain_s.toFixed(1)} s` : "not"} after the last POST, freshness p99 ${tg.freshness_timeouts ? ">= " : ""}${Math.round(f99)} ms${pipelineFloorText(ev, ing.pipeline_floor as PipelineFloor | undefined)}${floorText(ev, "ingest", ing.d1_floor as D1Floor | undefined)}`,
		});
	} else t.push({ name: "ingest >= 10,000 events/s end to end, freshness p99 <= 500 ms at 5,000/s offered", met: null, detail: "not run" });
	const imp = by("import");
	t.push(
		imp
			? {
					name: "import >= 50,000 rows/s end to end",
					met: (imp.rows_per_s as number) >= 50_000,
					detail: `${Math.round(imp.rows_per_s as number)} rows/s (${imp.rows} rows, ${imp.rows_per_request} per request, ${imp.connections} in flight), workerd ${fmtMicros(imp.cpu_ms_per_row as number | undefined)} µs CPU per row${floorText(imp.rows_per_s as number, "import", imp.d1_floor as D1Floor | undefined)}`,
				}
			: { name: "import >= 50,000 rows/s end to end", met: null, detail: "not run" },
	);
	const d1 = by("read-d1-miss");
	const vsD1 = (name: string, label: string) => {
		const r = by(name);
		const tname = `${label} p99 <= 2x read-d1-miss p99`;
		if (!r || !d1) return { name: tname, met: null, detail: "not run" };
		const ratio = r.p99_ms / d1.p99_ms;
		return {
			name: tname,
			met: ratio <= 2,
			detail: `${r.p99_ms.toFixed(2)} vs ${d1.p99_ms.toFixed(2)} ms = ${ratio.toFixed(2)}x; CPU per request ${fmt(r.cpu_ms_per_req, 3)} vs ${fmt(d1.cpu_ms_per_req, 3)} ms${(r.keys_per_request ?? 1) > 1 ? ` (${fmt((r.cpu_ms_per_req ?? Number.NaN) / (r.keys_per_request as number), 3)} ms per key); ${Math.round(r.rps)} vs ${Math.round(d1.rps)} rps at ${r.connections} connections, so each waits behind the others' 100-key requests` : ""}`,
		};
	};
	t.push(vsD1("as-of", "as-of (one key, 20 versions)"));
	t.push(vsD1("as-of-batch-100", "as-of-batch-100 (100 keys, 20 versions each)"));
	t.push(vsD1("aggregate", "aggregate (7 aggregates over 10,000 facts)"));
	const facts = by("aggregate-facts");
	t.push(
		facts
			? {
					name: "aggregate facts >= 5,000 facts/s end to end",
					met: (facts.events_per_s as number) >= 5000 && Boolean(facts.drained),
					detail: `${facts.drained ? "" : ">= "}${Math.round(facts.events_per_s as number)} facts/s (${facts.facts} facts into ${facts.keys} keys with 7 aggregates, accepted at ${Math.round(facts.accept_events_per_s as number)}/s); workerd ${fmtMicros(facts.cpu_ms_per_fact as number | undefined)} µs CPU per fact over the POSTing window (API and consumer), ${fmt(facts.workerd_cores as number | undefined)} cores`,
				}
			: { name: "aggregate facts >= 5,000 facts/s end to end", met: null, detail: "not run" },
	);
	const gq = by("graphql-batch-100");
	const gname = "graphql-batch-100 p99 and CPU per request <= 1.3x lookup-batch-100";
	if (gq && b100) {
		const p99 = gqlPairs.length ? median(gqlPairs.map((p) => p.p99_ratio)) : gq.p99_ms / b100.p99_ms;
		const cpu = gqlPairs.length ? medianOrNaN(gqlPairs.map((p) => p.cpu_ratio)) : (gq.cpu_ms_per_req ?? Number.NaN) / (b100.cpu_ms_per_req ?? Number.NaN);
		t.push({
			name: gname,
			met: p99 <= 1.3 && cpu <= 1.3,
			detail: `${gqlPairs.length ? `median of ${gqlPairs.length} back-to-back rounds` : "the table's windows"}: p99 ${p99.toFixed(2)}x, CPU ${cpu.toFixed(2)}x; the table's windows: p99 ${gq.p99_ms.toFixed(2)} vs ${b100.p99_ms.toFixed(2)} ms = ${(gq.p99_ms / b100.p99_ms).toFixed(2)}x, CPU ${fmt(gq.cpu_ms_per_req, 3)} vs ${fmt(b100.cpu_ms_per_req, 3)} ms = ${fmt((gq.cpu_ms_per_req ?? Number.NaN) / (b100.cpu_ms_per_req ?? Number.NaN))}x`,
		});
	} else t.push({ name: gname, met: null, detail: "not run" });
	if (searchIndex !== undefined) t.push(...searchTargets(by, searchIndex));
	t.push({ name: "bundle <= 1 MiB minified", met: bundleBytes <= MIB, detail: `${bundleBytes} bytes = ${(bundleBytes / MIB).toFixed(3)} MiB` });
	return t;
}

main().then(
	() => process.exit(0),
	(err: unknown) => {
		console.error(err instanceof Error ? (err.stack ?? err.message) : err);
		process.exit(1);
	},
);
