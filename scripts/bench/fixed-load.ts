// The fixed-load scenario: read tails at a fixed offered load (open loop), against the runtime's own.
//
// 10,000 keys are warmed first (each read once through the worker, so L0, Redis and KV hold copies
// as they would on a warm system). Then, for each rate, one open-loop schedule in one load process
// (scripts/bench/schedule.ts) runs back to back:
//
//   ping warm-up | /ping, first half | reads warm-up | Zipf(1.0) reads | /ping, second half
//
// /ping brackets the reads, so both see the same machine state; the reads' warm-up lasts
// L0_TTL_SECONDS + L0_SWR_SECONDS (capped at the window), the time L0 needs to reach its steady
// state again after the pause the /ping windows make. Latency is measured from when each request
// was due, and the pacer's own lateness is reported apart.
import { type ChildProcess, fork } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { Redis } from "ioredis";
import { recordCacheKey } from "../../src/storage/cached-record.ts";
import { DATASET, keyOf, percentiles } from "./common.ts";
import {
	EPISODES_KEPT,
	type Episode,
	FIXED_LOAD_TARGET,
	type FixedLoadPlan,
	type FixedLoadRate,
	type FixedLoadResult,
	type KindStats,
	type SlowBreakdown,
} from "./fixed-load-report.ts";
import { eachTarget } from "./profile.ts";
import type { PacedWindow, ProcSample, ScheduleJob, ScheduleResult } from "./schedule.ts";
import { api } from "./seed.ts";
import { probeKvMissing, type RunningWorker } from "./worker.ts";

const LOAD_SCRIPT = path.join(import.meta.dirname, "load.ts");

export interface GcEvent {
	/** Epoch ms the pause ended (approximate: workerd's line arrival, aligned per isolate). */
	end: number;
	ms: number;
	kind: string;
	isolate: string;
	/** Heap size after the collection (MB). */
	heapMb: number;
}

/** Parses V8 --trace-gc lines: "[pid:0xisolate]   1234 ms: Scavenge ... 0.52 / 0.00 ms ...". */
export class GcTrace {
	private readonly raw: { arrival: number; vm: number; ms: number; kind: string; isolate: string; heapMb: number; committedMb: number }[] = [];

	/** The first lines and the first Mark-Compact lines as printed, to check the parser against. */
	readonly firstLines: string[] = [];

	line(message: string): void {
		if ((this.firstLines.length < 5 && message.includes(" ms: ")) || (this.firstLines.length < 40 && message.includes("Mark-Compact")))
			this.firstLines.push(message);
		const m =
			/\[\d+:(0x[0-9a-f]+)(?::\d+)?\]\s+(\d+(?:\.\d+)?) ms: ([A-Za-z-]+(?: \([^)]*\))?)[^,]*?-> ([\d.]+) \(([\d.]+)\) MB,.*?([\d.]+) \/ ([\d.]+) ms/.exec(
				message,
			);
		if (m)
			this.raw.push({
				arrival: Date.now(),
				vm: Number(m[2]),
				kind: m[3] as string,
				heapMb: Number(m[4]),
				committedMb: Number(m[5]),
				ms: Number(m[6]),
				isolate: m[1] as string,
			});
	}

	get count(): number {
		return this.raw.length;
	}

	/** The committed heap (MB) each isolate reported after its last collection. */
	private lastCommittedMb(): Map<string, number> {
		const out = new Map<string, number>();
		for (const r of this.raw) out.set(r.isolate, r.committedMb);
		return out;
	}

	/**
	 * Names the isolates of traced lines by heap size: each inspector target's committed heap
	 * (Runtime.getHeapUsage totalSize) against the committed size each traced isolate printed after
	 * its last collection (which only changes at a collection), matched greedily on the ratio,
	 * largest first. (workerd's inspector does not run HeapProfiler.collectGarbage, which would have
	 * named them exactly.)
	 */
	/** The inspector's heap sizes (MB) per target, as identify() saw them. */
	heaps: [string, number][] = [];

	async identify(inspector: URL): Promise<Map<string, string>> {
		const heaps: [string, number][] = [];
		this.heaps = heaps;
		await eachTarget(inspector, async (id, send) => {
			const { totalSize } = await send<{ totalSize: number }>("Runtime.getHeapUsage");
			heaps.push([id, totalSize / 1024 / 1024]);
		});
		const traced = [...this.lastCommittedMb()].sort((a, b) => b[1] - a[1]);
		const names = new Map<string, string>();
		const taken = new Set<string>();
		for (const [isolate, mb] of traced) {
			let best: [string, number] | undefined;
			const gap = (x: number) => Math.abs(Math.log(Math.max(0.1, x) / Math.max(0.1, mb)));
			for (const h of heaps) if (!taken.has(h[0]) && (!best || gap(h[1]) < gap(best[1]))) best = h;
			if (best) {
				taken.add(best[0]);
				names.set(isolate, best[0]);
			}
		}
		return names;
	}

	/** Events on the epoch clock: per isolate, the smallest (arrival - isolate time) is taken as its time origin. */
	events(): GcEvent[] {
		const origin = new Map<string, number>();
		for (const r of this.raw) origin.set(r.isolate, Math.min(origin.get(r.isolate) ?? Number.POSITIVE_INFINITY, r.arrival - r.vm));
		return this.raw.map((r) => ({ end: (origin.get(r.isolate) as number) + r.vm, ms: r.ms, kind: r.kind, isolate: r.isolate, heapMb: r.heapMb }));
	}
}

export interface FixedLoadContext {
	w: RunningWorker;
	base: URL;
	readKey: string;
	adminKey: string;
	baselinePath: string;
	redis: Redis;
	pids: Record<string, number | null>;
	vars: Record<string, string>;
	l0: { ttlS: number; swrS: number };
	waitIdle: () => Promise<number>;
	log: (msg: string) => void;
	gc: GcTrace | null;
	/** The worker's name in wrangler.toml: its isolate is core:user:NAME. */
	workerName: string;
	/** workerd's inspector, when open: used at the end to name the isolates of GC lines. */
	inspectorUrl?: URL | null;
	/** Writes copies of these records (dataset indices) into Redis or KV: the ones the warm's fills left out. */
	topUp: { redis(indices: number[]): Promise<void>; kv(indices: number[]): Promise<void> };
	/** Write every request and /proc sample here (JSON) for analysis. */
	samplesFile?: string;
}

/** Reads each key once through the worker (POST /v1/lookup, 100 keys a request), so every tier fills as on a warm system. */
async function warmKeys(ctx: FixedLoadContext, plan: FixedLoadPlan): Promise<FixedLoadResult["warm"]> {
	const t0 = performance.now();
	const tiers: Record<string, number> = {};
	const batches: string[][] = [];
	for (let i = 0; i < plan.keys.count; i += 100) {
		const keys: string[] = [];
		for (let j = i; j < Math.min(plan.keys.count, i + 100); j++) keys.push(keyOf(plan.keys.start + j));
		batches.push(keys);
	}
	let next = 0;
	const worker = async () => {
		while (next < batches.length) {
			const keys = batches[next++] as string[];
			const r = await api(ctx.base, ctx.readKey, "POST", "/v1/lookup", { requests: [{ dataset: DATASET, keys }] });
			if (r.status !== 200) throw new Error(`warm lookup: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
			const t = r.headers.get("x-hotpath-tier") ?? "";
			tiers[t] = (tiers[t] ?? 0) + 1;
		}
	};
	await Promise.all(Array.from({ length: 4 }, worker));
	const ms = performance.now() - t0;
	// The fills run in waitUntil after each answer: wait for them before looking.
	await ctx.waitIdle();
	// Which copies the fills left out (a fill that timed out, or was skipped while the Redis breaker
	// was open, on a busy machine). A warm system holds them: the bench writes them itself, in the
	// worker's format, and says how many.
	const indices = batches.flat().map((_, j) => plan.keys.start + j);
	const ck = (i: number) => recordCacheKey(DATASET, keyOf(i));
	const redisMissing: number[] = [];
	for (let from = 0; from < indices.length; from += 1000) {
		const chunk = indices.slice(from, from + 1000);
		const p = ctx.redis.pipeline();
		for (const i of chunk) p.exists(ck(i));
		const res = (await p.exec()) ?? [];
		chunk.forEach((i, j) => {
			if (res[j]?.[1] !== 1) redisMissing.push(i);
		});
	}
	const kvMissingKeys = new Set(await probeKvMissing(ctx.w, indices.map(ck)));
	const kvMissing = indices.filter((i) => kvMissingKeys.has(ck(i)));
	if (redisMissing.length) await ctx.topUp.redis(redisMissing);
	if (kvMissing.length) await ctx.topUp.kv(kvMissing);
	const stats = await api<{ l0?: { entries: number } }>(ctx.base, ctx.adminKey, "GET", "/v1/stats");
	return {
		keys: indices.length,
		ms,
		tiers,
		redis_filled: indices.length - redisMissing.length,
		kv_filled: indices.length - kvMissing.length,
		l0_entries: stats.json.l0?.entries ?? null,
	};
}

function schedule(ctx: FixedLoadContext, plan: FixedLoadPlan): { windows: PacedWindow[]; meta: { rate: number; role: string }[] } {
	const windows: PacedWindow[] = [];
	const meta: { rate: number; role: string }[] = [];
	const ping = { kind: "fixed" as const, path: ctx.baselinePath };
	const reads = { kind: "zipf" as const, start: plan.keys.start, n: plan.keys.count, s: plan.zipfS, seed: 7070 };
	const add = (rate: number, role: string, kind: PacedWindow["kind"], durationS: number, measured: boolean) => {
		if (durationS <= 0 && kind !== "drain") return;
		// Optional /ping probes inside the reads (warm-up included, so the load stays the same).
		const probe = kind === "reads" && plan.probeShare ? { probe: { path: ctx.baselinePath, rate: rate * plan.probeShare } } : {};
		windows.push({ kind, rate, durationS, gen: kind === "ping" ? ping : reads, measured, ...probe });
		meta.push({ rate, role });
	};
	// Between routes, a drain: nothing is sent until every response is back, then a short settle, so
	// a backlog one window built (a saturated worker) is not measured in the next.
	const drain = (rate: number) => add(rate, "drain", "drain", plan.settleS, false);
	for (const rate of plan.rates) {
		add(rate, "ping-warmup", "ping", plan.pingWarmupS, false);
		add(rate, "reads-warmup", "reads", plan.readsWarmupS, false);
		drain(rate);
		// The routes take turns in blocks, ABBA, so neither gets the machine's better or worse
		// stretch: one long window each left the ratio to whichever window a runtime stall hit.
		const blockS = plan.windowS / plan.blocks;
		for (let b = 0; b < plan.blocks; b++) {
			for (const kind of b % 2 === 0 ? (["ping", "reads"] as const) : (["reads", "ping"] as const)) {
				add(rate, `${kind}-${b + 1}`, kind, blockS, true);
				drain(rate);
			}
		}
	}
	return { windows, meta };
}

async function runScheduleChild(job: ScheduleJob): Promise<ScheduleResult> {
	const child: ChildProcess = fork(LOAD_SCRIPT, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
	return new Promise<ScheduleResult>((resolve, reject) => {
		child.on("message", (m: { type: string; result?: ScheduleResult; error?: string }) => {
			if (m.type === "ready") child.send({ type: "schedule", schedule: job });
			else if (m.type === "result" && m.result) resolve(m.result);
			else if (m.type === "error") reject(new Error(`load process failed: ${m.error}`));
		});
		child.on("exit", (code) => {
			// After a result this is a no-op; without one, the run must not wait forever.
			reject(new Error(`load process exited with ${code} without a result`));
		});
	});
}

/** Cumulative counter `field` of process `name` at time t, linearly interpolated between /proc samples. */
function procAt(proc: ProcSample[], name: string, field: "cpu" | "wait", t: number): number | null {
	let prev: { t: number; v: number } | null = null;
	for (const s of proc) {
		const p = s.procs[name];
		if (!p) continue;
		const cur = { t: s.t, v: p[field] };
		if (cur.t >= t) {
			if (!prev || cur.t === prev.t) return cur.v;
			return prev.v + ((cur.v - prev.v) * (t - prev.t)) / (cur.t - prev.t);
		}
		prev = cur;
	}
	return prev?.v ?? null;
}

/** Cumulative machine counter at time t (interpolated). */
function machineAt(proc: ProcSample[], field: "busy" | "steal", t: number): number | null {
	let prev: { t: number; v: number } | null = null;
	for (const s of proc) {
		if (!s.machine) continue;
		const cur = { t: s.t, v: s.machine[field] };
		if (cur.t >= t) {
			if (!prev || cur.t === prev.t) return cur.v;
			return prev.v + ((cur.v - prev.v) * (t - prev.t)) / (cur.t - prev.t);
		}
		prev = cur;
	}
	return prev?.v ?? null;
}

function machineOver(proc: ProcSample[], field: "busy" | "steal", spans: [number, number][]): number | null {
	let sum = 0;
	for (const [a, b] of spans) {
		const x = machineAt(proc, field, a);
		const y = machineAt(proc, field, b);
		if (x === null || y === null) return null;
		sum += y - x;
	}
	return sum;
}

function procOver(proc: ProcSample[], name: string, field: "cpu" | "wait", spans: [number, number][]): number | null {
	let sum = 0;
	for (const [a, b] of spans) {
		const x = procAt(proc, name, field, a);
		const y = procAt(proc, name, field, b);
		if (x === null || y === null) return null;
		sum += y - x;
	}
	return sum;
}

const share = (n: number, d: number) => (d ? n / d : 0);

function parseServerTiming(st: string): Record<string, number> {
	const out: Record<string, number> = {};
	for (const part of st.split(",")) {
		const m = /^\s*([\w-]+);dur=([\d.]+)/.exec(part);
		if (m) out[m[1] as string] = (out[m[1] as string] ?? 0) + Number(m[2]);
	}
	return out;
}

/** 100 ms intervals of the schedule in which workerd waited for a CPU >= waitMs, or ran >= busyMs. */
function hotIntervals(proc: ProcSample[], waitMs: number, busyMs: number): { wait: [number, number][]; busy: [number, number][] } {
	const wait: [number, number][] = [];
	const busy: [number, number][] = [];
	for (let i = 1; i < proc.length; i++) {
		const a = proc[i - 1] as ProcSample;
		const b = proc[i] as ProcSample;
		const pa = a.procs.workerd;
		const pb = b.procs.workerd;
		if (!pa || !pb || b.t - a.t <= 0) continue;
		const scale = 100 / (b.t - a.t);
		if ((pb.wait - pa.wait) * scale >= waitMs) wait.push([a.t, b.t]);
		if ((pb.cpu - pa.cpu) * scale >= busyMs) busy.push([a.t, b.t]);
	}
	return { wait, busy };
}

const overlaps = (spans: [number, number][], a: number, b: number) => spans.some(([x, y]) => x < b && y > a);

export async function fixedLoadScenario(ctx: FixedLoadContext, plan: FixedLoadPlan): Promise<FixedLoadResult> {
	const { log } = ctx;
	log(`  warming ${plan.keys.count} keys [${plan.keys.start}, ${plan.keys.start + plan.keys.count}): each read once (POST /v1/lookup, 100 keys a request)`);
	const shapes0 = new Map([...ctx.w.logs.firstByMessage].map(([k, v]) => [k, v.n]));
	const warm = await warmKeys(ctx, plan);
	const logDelta = () => {
		const out: Record<string, number> = {};
		for (const [k, v] of ctx.w.logs.firstByMessage)
			if (v.level !== "log" && v.n - (shapes0.get(k) ?? 0) > 0) out[k.slice(0, 160)] = v.n - (shapes0.get(k) ?? 0);
		return out;
	};
	warm.worker_logs = logDelta();
	const warmEnd = performance.timeOrigin + performance.now();
	log(
		`  warmed in ${(warm.ms / 1000).toFixed(1)} s (answered by ${JSON.stringify(warm.tiers)}); L0 ${warm.l0_entries ?? "?"} entries; the worker's fills wrote ${warm.redis_filled}/${warm.keys} Redis and ${warm.kv_filled}/${warm.keys} KV copies (the bench wrote the rest)${Object.keys(warm.worker_logs ?? {}).length ? `; worker logs: ${JSON.stringify(warm.worker_logs)}` : ""}`,
	);
	const { windows, meta } = schedule(ctx, plan);
	const total = windows.reduce((a, w) => a + w.durationS, 0);
	log(
		`  schedule (${total.toFixed(0)} s, open loop, ${plan.connections} connections): ${meta.map((m, i) => `${m.role}@${m.rate} ${(windows[i] as PacedWindow).durationS}s`).join(", ")}`,
	);
	const gc0 = ctx.gc?.count ?? 0;
	const res = await runScheduleChild({
		url: ctx.base.href,
		token: ctx.readKey,
		connections: plan.connections,
		windows,
		pids: ctx.pids,
		sampleMs: 100,
		stats: { token: ctx.adminKey, everyMs: 250 },
	});
	const gcEvents = ctx.gc ? ctx.gc.events().slice(gc0) : null;
	let isolateNames = new Map<string, string>();
	if (ctx.gc && ctx.inspectorUrl) {
		log(`  schedule done; naming the isolates of ${ctx.gc.count - gc0} GC lines through the inspector`);
		try {
			isolateNames = await ctx.gc.identify(ctx.inspectorUrl);
			log(`  named ${isolateNames.size} isolates: ${[...isolateNames.values()].join(", ")}`);
		} catch (e) {
			log(`  could not name the isolates through the inspector: ${String(e)}`);
		}
	}
	// GC events on the schedule's clock.
	const gcRel = gcEvents?.map((g) => ({
		a: g.end - g.ms - res.t0Epoch,
		b: g.end - res.t0Epoch,
		ms: g.ms,
		kind: g.kind,
		isolate: isolateNames.get(g.isolate) ?? g.isolate,
		heapMb: g.heapMb,
	}));
	if (ctx.samplesFile) {
		writeFileSync(
			ctx.samplesFile,
			JSON.stringify({
				plan,
				meta,
				windows,
				warmEndRel: warmEnd - res.t0Epoch,
				l0: ctx.l0,
				result: res,
				gc: gcRel,
				gcLines: ctx.gc?.firstLines,
				heaps: ctx.gc?.heaps,
			}),
		);
		log(`  wrote every request and /proc sample to ${ctx.samplesFile}`);
	}
	const hot = hotIntervals(res.proc, 20, 90);
	const workerIsolate = `core:user:${ctx.workerName}`;
	const rq = res.req;

	const kindStats = (rate: number, kind: "ping" | "reads", probes = false): { stats: KindStats; idx: number[]; spans: [number, number][] } => {
		const ws = windows.map((w, i) => ({ w, i })).filter(({ w, i }) => w.measured && w.kind === kind && (meta[i] as { rate: number }).rate === rate);
		const set = new Set(ws.map((x) => x.i));
		const spans = ws.map(({ i }) => [res.windows[i]?.startMs ?? 0, res.windows[i]?.endMs ?? 0] as [number, number]);
		const durationS = spans.reduce((a, [x, y]) => a + (y - x), 0) / 1000;
		const idx: number[] = [];
		for (let j = 0; j < rq.w.length; j++) if (set.has(rq.w[j] as number) && ((rq.key[j] as number) === -2) === probes) idx.push(j);
		const okLat: number[] = [];
		const okSvc: number[] = [];
		const late: number[] = [];
		const tiers: Record<string, number> = {};
		const non2xx: Record<string, number> = {};
		let errors = 0;
		for (const j of idx) {
			late.push(rq.late[j] as number);
			const status = rq.status[j] as number;
			if (status >= 200 && status < 300) {
				okLat.push(rq.lat[j] as number);
				okSvc.push(rq.svc[j] as number);
				const t = rq.tier[j] || "-";
				tiers[t] = (tiers[t] ?? 0) + 1;
			} else if (status === 0) errors++;
			else non2xx[status] = (non2xx[status] ?? 0) + 1;
		}
		const [p50, p90, p99, p999] = percentiles(okLat, [50, 90, 99, 99.9]) as [number, number, number, number];
		const [l50, l99] = percentiles(late, [50, 99]) as [number, number];
		const cpu = procOver(res.proc, "workerd", "cpu", spans);
		const wait = procOver(res.proc, "workerd", "wait", spans);
		const up = procOver(res.proc, "upstash", "cpu", spans);
		const rd = procOver(res.proc, "redis", "cpu", spans);
		const wins = ws.map(({ i }) => res.windows[i]).filter((x) => x !== undefined);
		const gcIn = gcRel?.filter((g) => spans.some(([a, b]) => g.b > a && g.b <= b));
		const gcBy: Record<string, { pauses: number; total_ms: number; max_ms: number }> = {};
		for (const g of gcIn ?? []) {
			const e = gcBy[g.isolate] ?? { pauses: 0, total_ms: 0, max_ms: 0 };
			e.pauses++;
			e.total_ms += g.ms;
			e.max_ms = Math.max(e.max_ms, g.ms);
			gcBy[g.isolate] = e;
		}
		// Everything the machine ran besides the bench's own processes (other agents, the kernel), and what the hypervisor took.
		const busy = machineOver(res.proc, "busy", spans);
		const steal = machineOver(res.proc, "steal", spans);
		const lg = procOver(res.proc, "loadgen", "cpu", spans);
		const others = busy === null ? null : busy - (cpu ?? 0) - (up ?? 0) - (rd ?? 0) - (lg ?? 0);
		return {
			idx,
			spans,
			stats: {
				offered_rps: probes ? rate * (plan.probeShare ?? 0) : rate,
				sent: idx.length,
				ok: okLat.length,
				achieved_rps: okLat.length / durationS,
				duration_s: durationS,
				p50_ms: p50,
				p90_ms: p90,
				p99_ms: p99,
				p999_ms: p999,
				max_ms: okLat.length ? Math.max(...okLat) : Number.NaN,
				mean_ms: okLat.length ? okLat.reduce((a, b) => a + b, 0) / okLat.length : Number.NaN,
				svc_p99_ms: percentiles(okSvc, [99])[0] as number,
				late: {
					p50_ms: l50,
					p99_ms: l99,
					max_ms: late.length ? Math.max(...late) : Number.NaN,
					over_1ms: share(late.filter((x) => x > 1).length, late.length),
					over_5ms: share(late.filter((x) => x > 5).length, late.length),
				},
				tiers,
				non2xx,
				errors,
				workerd_cores: cpu === null ? null : cpu / (durationS * 1000),
				workerd_cpu_ms_per_req: cpu === null ? null : cpu / Math.max(1, idx.length),
				workerd_wait_share: wait === null ? null : wait / (durationS * 1000),
				upstash_cores: up === null ? null : up / (durationS * 1000),
				redis_cores: rd === null ? null : rd / (durationS * 1000),
				loadgen_cores: wins.reduce((a, x) => a + (x?.loadCpuMs ?? 0), 0) / (durationS * 1000),
				loadgen_loop_delay_max_ms: Math.max(0, ...wins.map((x) => x?.loopDelay.max ?? 0)),
				other_processes_cores: others === null ? null : Math.max(0, others) / (durationS * 1000),
				steal_cores: steal === null ? null : steal / (durationS * 1000),
				...(gcIn
					? { gc: { pauses: gcIn.length, total_ms: gcIn.reduce((a, g) => a + g.ms, 0), max_ms: Math.max(0, ...gcIn.map((g) => g.ms)), by_isolate: gcBy } }
					: {}),
			},
		};
	};

	const slow = (idx: number[], threshold: number): SlowBreakdown => {
		const ok = idx.filter((j) => (rq.status[j] as number) >= 200 && (rq.status[j] as number) < 300);
		const s = ok.filter((j) => (rq.lat[j] as number) > threshold);
		const tiers: Record<string, number> = {};
		const st: Record<string, number[]> = {};
		let below = 0;
		let belowAll = 0;
		for (const j of ok) if ((rq.tier[j] as string) !== "l0" && rq.tier[j]) belowAll++;
		let late5 = 0;
		let gcHit = 0;
		let gcWorkerHit = 0;
		let waitHit = 0;
		let busyHit = 0;
		for (const j of s) {
			const t = rq.tier[j] || "-";
			tiers[t] = (tiers[t] ?? 0) + 1;
			if (t !== "l0" && t !== "-") below++;
			for (const [k, v] of Object.entries(parseServerTiming(rq.st[j] as string))) {
				const list = st[k] ?? [];
				list.push(v);
				st[k] = list;
			}
			if ((rq.late[j] as number) > 5) late5++;
			const a = rq.due[j] as number;
			const b = a + (rq.lat[j] as number);
			if (gcRel?.some((g) => g.ms >= 1 && g.a < b && g.b > a)) gcHit++;
			if (gcRel?.some((g) => g.ms >= 1 && g.a < b && g.b > a && g.isolate === workerIsolate)) gcWorkerHit++;
			if (overlaps(hot.wait, a, b)) waitHit++;
			if (overlaps(hot.busy, a, b)) busyHit++;
		}
		const med: Record<string, number> = {};
		for (const [k, v] of Object.entries(st)) med[k] = percentiles(v, [50])[0] as number;
		return {
			threshold_ms: threshold,
			n: s.length,
			tiers,
			late_over_5ms: share(late5, s.length),
			below_l0: share(below, s.length),
			below_l0_all: share(belowAll, ok.length),
			server_timing_median: med,
			...(gcRel ? { with_gc: share(gcHit, s.length), with_worker_gc: share(gcWorkerHit, s.length) } : {}),
			with_cpu_wait: share(waitHit, s.length),
			with_workerd_busy: share(busyHit, s.length),
		};
	};

	const at = (name: string, field: "cpu" | "wait", a: number, b: number): number | null => procOver(res.proc, name, field, [[a, b]]);
	const episodes = (idx: number[], threshold: number): Episode[] => {
		const ok = idx.filter((j) => (rq.status[j] as number) >= 200 && (rq.status[j] as number) < 300);
		const slowOnes = ok
			.filter((j) => (rq.lat[j] as number) > threshold)
			.map((j) => ({ a: rq.due[j] as number, b: (rq.due[j] as number) + (rq.lat[j] as number), j }))
			.sort((x, y) => x.a - y.a);
		const groups: { a: number; b: number; js: number[] }[] = [];
		for (const r of slowOnes) {
			const g = groups.at(-1);
			if (g && r.a <= g.b + 20) {
				g.b = Math.max(g.b, r.b);
				g.js.push(r.j);
			} else groups.push({ a: r.a, b: r.b, js: [r.j] });
		}
		return groups
			.sort((x, y) => y.js.length - x.js.length)
			.slice(0, EPISODES_KEPT)
			.map((g) => {
				const tiers: Record<string, number> = {};
				for (const j of g.js) tiers[rq.tier[j] || "-"] = (tiers[rq.tier[j] || "-"] ?? 0) + 1;
				const around = ok.filter((j) => (rq.due[j] as number) >= g.a - 200 && (rq.due[j] as number) < g.b);
				const busy = machineOver(res.proc, "busy", [[g.a, g.b]]);
				const ours = ["workerd", "upstash", "redis", "loadgen"].reduce((x, n) => x + (at(n, "cpu", g.a, g.b) ?? 0), 0);
				return {
					at_s: g.a / 1000,
					span_ms: g.b - g.a,
					slow: g.js.length,
					max_ms: Math.max(...g.js.map((j) => rq.lat[j] as number)),
					tiers,
					workerd_cpu_ms: at("workerd", "cpu", g.a, g.b),
					workerd_wait_ms: at("workerd", "wait", g.a, g.b),
					others_cpu_ms: busy === null ? null : Math.max(0, busy - ours),
					upstash_cpu_ms: at("upstash", "cpu", g.a, g.b),
					upstash_wait_ms: at("upstash", "wait", g.a, g.b),
					redis_share: share(around.filter((j) => rq.tier[j] === "redis").length, around.length),
					gc: (gcRel ?? []).filter((x) => x.a < g.b && x.b > g.a && x.ms >= 1).map((x) => ({ isolate: x.isolate, kind: x.kind, ms: x.ms })),
				};
			});
	};

	const statsAt = (t: number): Record<string, number> | null => {
		let best: { t: number; body: unknown } | undefined;
		for (const s of res.stats) if (!best || Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
		if (!best) return null;
		const b = best.body as { tiers: Record<string, Record<string, number>>; l0: { fast_lane_hits: number } };
		const flat: Record<string, number> = { fast_lane_hits: b.l0.fast_lane_hits };
		for (const [tier, c] of Object.entries(b.tiers)) for (const [k, v] of Object.entries(c)) flat[`${tier}_${k}`] = v;
		return flat;
	};

	const rates: FixedLoadRate[] = plan.rates.map((rate) => {
		const ping = kindStats(rate, "ping");
		const reads = kindStats(rate, "reads");
		const probe = plan.probeShare ? kindStats(rate, "reads", true) : null;
		const ratio = reads.stats.p99_ms / ping.stats.p99_ms;
		// The worker's counters over the reads blocks: each block's change, summed.
		let delta: Record<string, number> | null = {};
		for (const [a, b] of reads.spans) {
			const s0 = statsAt(a);
			const s1 = statsAt(b);
			if (!s0 || !s1) {
				delta = null;
				break;
			}
			for (const k of Object.keys(s1)) {
				const d = (s1[k] ?? 0) - (s0[k] ?? 0);
				if (d) delta[k] = (delta[k] ?? 0) + d;
			}
		}
		if (delta) {
			// L0 hits the app answered: stale copies (revalidated in the background) and anything the lane declined.
			delta.l0_app_hits = (delta.l0_hits ?? 0) - (delta.fast_lane_hits ?? 0);
			// Loads below L0 that answered no request: background revalidations.
			const answeredBelow = Object.entries(reads.stats.tiers)
				.filter(([t]) => t !== "l0")
				.reduce((x, [, n]) => x + n, 0);
			const background = (delta.redis_hits ?? 0) + (delta.kv_hits ?? 0) + (delta.d1_hits ?? 0) - answeredBelow;
			// A saturated worker answers a window's requests long after it ends: the counters over the
			// window then do not match its requests, and the difference means nothing.
			if (background >= 0 && reads.stats.p50_ms < 1000) delta.background_loads = background;
		}
		let phase: FixedLoadRate["phase"] = null;
		if (ctx.l0.ttlS > 0) {
			const period = ctx.l0.ttlS * 1000;
			const warmRel = warmEnd - res.t0Epoch;
			const bins = { slow: Array(10).fill(0) as number[], all: Array(10).fill(0) as number[] };
			for (const j of reads.idx) {
				if ((rq.status[j] as number) < 200 || (rq.status[j] as number) >= 300) continue;
				const end = (rq.due[j] as number) + (rq.lat[j] as number);
				const bin = Math.min(9, Math.floor(((((end - warmRel) % period) + period) % period) / (period / 10)));
				bins.all[bin] = (bins.all[bin] as number) + 1;
				if ((rq.lat[j] as number) > reads.stats.p99_ms) bins.slow[bin] = (bins.slow[bin] as number) + 1;
			}
			phase = bins;
		}
		return {
			rate,
			ping: ping.stats,
			reads: reads.stats,
			ratio_p99: ratio,
			met: ratio <= FIXED_LOAD_TARGET,
			...(probe ? { probe: probe.stats, ratio_probe_p99: reads.stats.p99_ms / probe.stats.p99_ms } : {}),
			slow_reads: slow(reads.idx, reads.stats.p99_ms),
			slow_pings: slow(ping.idx, ping.stats.p99_ms),
			episodes: { reads: episodes(reads.idx, reads.stats.p99_ms), ping: episodes(ping.idx, ping.stats.p99_ms) },
			stats_delta: delta,
			phase,
		};
	});
	if (res.errors) log(`  WARNING ${res.errors} request errors, first: ${res.firstErrors.join(" | ").slice(0, 300)}`);
	return {
		plan,
		warm,
		rates,
		target: FIXED_LOAD_TARGET,
		met: rates.every((r) => r.met),
		worker_vars: ctx.vars,
		worker_name: ctx.workerName,
		gc_traced: ctx.gc !== null,
	};
}
