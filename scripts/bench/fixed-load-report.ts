// Types and report formatting of the fixed-load scenario (scripts/bench/fixed-load.ts), kept apart
// so report.ts can format a saved --json file without loading Miniflare.

/** Stall episodes kept per route and rate. */
export const EPISODES_KEPT = 5;

/** The target: read p99 at most this many times /ping p99, at each rate. */
export const FIXED_LOAD_TARGET = 1.3;

export interface FixedLoadPlan {
	rates: number[];
	/** Measured seconds per rate and kind, in `blocks` blocks of each. */
	windowS: number;
	/**
	 * /ping and the reads take turns in this many blocks each (ABBA order: ping, reads, reads, ping,
	 * ...), so the runtime's own stalls (GC of Miniflare's entry isolate, of the worker's) fall on
	 * both routes alike rather than on whichever had the one long window they hit.
	 */
	blocks: number;
	/** Unmeasured paced reads before the measured ones. */
	readsWarmupS: number;
	pingWarmupS: number;
	/** After the last response of a window is back, this long before the next starts. */
	settleS: number;
	/** /ping probes interleaved into the reads at this share of the rate (diagnostic; 0 or absent: none). */
	probeShare?: number;
	connections: number;
	keys: { start: number; count: number };
	zipfS: number;
}

export interface KindStats {
	offered_rps: number;
	sent: number;
	ok: number;
	achieved_rps: number;
	duration_s: number;
	p50_ms: number;
	p90_ms: number;
	p99_ms: number;
	p999_ms: number;
	max_ms: number;
	mean_ms: number;
	/** p99 measured from when the pacer handed the request to the HTTP client instead of when it was due. */
	svc_p99_ms: number;
	/** Send lateness of the pacer: how long after its due time a request was handed to the client. */
	late: { p50_ms: number; p99_ms: number; max_ms: number; over_1ms: number; over_5ms: number };
	tiers: Record<string, number>;
	non2xx: Record<string, number>;
	errors: number;
	/** workerd's on-CPU time over the windows, in cores and per request; runqueue wait as a share of the wall time (waiting for a CPU). */
	workerd_cores: number | null;
	workerd_cpu_ms_per_req: number | null;
	workerd_wait_share: number | null;
	upstash_cores: number | null;
	redis_cores: number | null;
	loadgen_cores: number;
	loadgen_loop_delay_max_ms: number;
	/** CPU the rest of the machine used over the windows (other processes, the kernel), and what the hypervisor stole: the noise. */
	other_processes_cores: number | null;
	steal_cores: number | null;
	gc?: { pauses: number; total_ms: number; max_ms: number; by_isolate: Record<string, { pauses: number; total_ms: number; max_ms: number }> };
}

export interface SlowBreakdown {
	/** Requests above this (the kind's p99) count as slow. */
	threshold_ms: number;
	n: number;
	tiers: Record<string, number>;
	/** Share of slow requests the pacer sent more than 5 ms late. */
	late_over_5ms: number;
	/** Share of slow reads with a Redis (or lower) tier in Server-Timing, against all reads. */
	below_l0: number;
	below_l0_all: number;
	/** Median Server-Timing durations of the slow reads that have the entry (ms). */
	server_timing_median: Record<string, number>;
	/** Share whose time in flight overlapped a GC pause of >= 1 ms in workerd (with --trace-gc). */
	with_gc?: number;
	/** The same, counting only the worker's own isolate. */
	with_worker_gc?: number;
	/** Share whose time in flight overlapped a 100 ms interval in which workerd waited >= 20 ms for a CPU. */
	with_cpu_wait: number;
	/** Share whose time in flight overlapped a 100 ms interval in which workerd was on a CPU >= 90 ms. */
	with_workerd_busy: number;
}

/**
 * A stall episode: requests above the p99 of their route and rate, merged while in flight together
 * (within 20 ms), with what the machine and workerd did meanwhile. A window's p99 is set by its
 * worst few episodes: at 500/s, 1% of a 15 s window is the requests of 150 ms.
 */
export interface Episode {
	/** Seconds since the schedule began. */
	at_s: number;
	span_ms: number;
	slow: number;
	max_ms: number;
	tiers: Record<string, number>;
	workerd_cpu_ms: number | null;
	/** Time workerd's threads were runnable but waiting for a CPU (summed over threads). */
	workerd_wait_ms: number | null;
	/** CPU used meanwhile by everything but workerd, upstash-local, redis-server and the load generator. */
	others_cpu_ms: number | null;
	upstash_cpu_ms: number | null;
	upstash_wait_ms: number | null;
	/** Share of the route's requests due from 200 ms before to the end that Redis answered. */
	redis_share: number;
	/** GC pauses overlapping the episode (with --trace-gc). */
	gc: { isolate: string; kind: string; ms: number }[];
}

export interface FixedLoadRate {
	rate: number;
	ping: KindStats;
	reads: KindStats;
	/** reads p99 / ping p99 */
	ratio_p99: number;
	met: boolean;
	/** /ping probes inside the reads windows (with --fixed-load-probe): the runtime's latency at the same moments as the reads. */
	probe?: KindStats;
	/** reads p99 / probe p99: the read path's own share of the tail. */
	ratio_probe_p99?: number;
	/** The worst stall episodes (most slow requests first), per route. */
	episodes: { reads: Episode[]; ping: Episode[] };
	slow_reads: SlowBreakdown;
	slow_pings: SlowBreakdown;
	/** GET /v1/stats deltas over the measured reads (this isolate). */
	stats_delta: Record<string, number> | null;
	/** Slow reads and all reads by the L0 fresh-time phase since the warm (10 bins of L0_TTL_SECONDS / 10). */
	phase: { slow: number[]; all: number[] } | null;
}

export interface FixedLoadResult {
	plan: FixedLoadPlan;
	warm: {
		keys: number;
		ms: number;
		tiers: Record<string, number>;
		/** Copies the worker's own fills wrote; the bench wrote the rest (fills that timed out or were skipped on a busy machine). */
		redis_filled: number;
		kv_filled: number;
		l0_entries: number | null;
		/** Warnings and errors the worker logged while warming, by message shape. */
		worker_logs?: Record<string, number>;
	};
	rates: FixedLoadRate[];
	target: number;
	met: boolean;
	worker_vars: Record<string, string>;
	worker_name: string;
	gc_traced: boolean;
}

const f = (x: number | null | undefined, d = 1) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "—");
const pct = (x: number | null | undefined, d = 0) => (typeof x === "number" && Number.isFinite(x) ? `${(x * 100).toFixed(d)}%` : "—");

function mix(t: Record<string, number>): string {
	const total = Object.values(t).reduce((a, b) => a + b, 0);
	if (!total) return "";
	return Object.entries(t)
		.sort((a, b) => b[1] - a[1])
		.map(([k, n]) => `${k === "-" ? "(none)" : k} ${((100 * n) / total).toFixed(n === total ? 0 : 1)}%`)
		.join(", ");
}

const HEAD = [
	"rate",
	"route",
	"offered/s",
	"achieved/s",
	"p50 ms",
	"p90 ms",
	"p99 ms",
	"p999 ms",
	"max ms",
	"p99 reads/ping",
	"workerd cores",
	"workerd cpu ms/req",
	"workerd waiting for a cpu",
	"other processes (cores)",
	"pacer late p99 / max ms",
	"answered by (X-Hotpath-Tier)",
];

function rows(r: FixedLoadResult): string[][] {
	const out: string[][] = [];
	for (const x of r.rates) {
		for (const [label, s] of [
			["/ping", x.ping],
			["reads", x.reads],
		] as [string, KindStats][]) {
			out.push([
				String(x.rate),
				label,
				String(Math.round(s.offered_rps)),
				String(Math.round(s.achieved_rps)),
				f(s.p50_ms, 2),
				f(s.p90_ms, 2),
				f(s.p99_ms, 2),
				f(s.p999_ms, 2),
				f(s.max_ms, 1),
				label === "reads" ? `${f(x.ratio_p99, 2)}x ${x.met ? "(met)" : "(not met)"}` : "",
				f(s.workerd_cores, 2),
				f(s.workerd_cpu_ms_per_req, 3),
				pct(s.workerd_wait_share, 1),
				f(s.other_processes_cores, 2),
				`${f(s.late.p99_ms, 2)} / ${f(s.late.max_ms, 1)}`,
				label === "reads" ? mix(s.tiers) : "",
			]);
		}
	}
	return out;
}

/** An episode's GC pauses: all of them when few, else the count, the total and the three longest. */
function episodeGc(gc: Episode["gc"], traced: boolean): string {
	// Without --trace-gc no pause is known, which is not the same as none.
	if (!traced) return "not traced (--trace-gc)";
	if (!gc.length) return "none";
	const one = (g: Episode["gc"][number]) => `${g.isolate} ${g.kind} ${f(g.ms, 0)} ms`;
	if (gc.length <= 4) return gc.map(one).join(", ");
	const longest = [...gc].sort((a, b) => b.ms - a.ms).slice(0, 3);
	return `${gc.length} pauses, ${f(
		gc.reduce((a, g) => a + g.ms, 0),
		0,
	)} ms in all, the longest ${longest.map(one).join(", ")}`;
}

function gcLine(g: NonNullable<KindStats["gc"]>, worker: string): string {
	const w = g.by_isolate[worker];
	return `${g.pauses} pauses, ${f(g.total_ms, 0)} ms, max ${f(g.max_ms, 1)} ms (the worker's isolate: ${w ? `${w.pauses}, ${f(w.total_ms, 0)} ms, max ${f(w.max_ms, 1)} ms` : "none"})`;
}

function details(r: FixedLoadResult): string[] {
	const lines: string[] = [];
	const worker = `core:user:${r.worker_name}`;
	const p = r.plan;
	lines.push(
		`fixed-load: ${p.keys.count} keys warmed in ${f(r.warm.ms / 1000)} s (L0 ${r.warm.l0_entries ?? "?"} entries; the worker's fills wrote ${r.warm.redis_filled} Redis and ${r.warm.kv_filled} KV copies, the bench the rest); per rate, open loop over ${p.connections} connections: /ping warm-up ${p.pingWarmupS} s, reads warm-up ${p.readsWarmupS} s, then ${p.blocks ?? 1} blocks of ${f(p.windowS / (p.blocks ?? 1), 1)} s each of /ping and of Zipf(${p.zipfS}) reads, taking turns (ABBA)${r.gc_traced ? "; V8 --trace-gc on" : ""}`,
	);
	for (const x of r.rates) {
		const sr = x.slow_reads;
		const sp = x.slow_pings;
		const st = Object.entries(sr.server_timing_median)
			.map(([k, v]) => `${k} ${f(v, 1)} ms`)
			.join(", ");
		const d = x.stats_delta;
		lines.push(
			`  ${x.rate}/s: reads p99 ${f(x.reads.p99_ms, 2)} ms vs /ping p99 ${f(x.ping.p99_ms, 2)} ms = ${f(x.ratio_p99, 2)}x (target <= ${r.target}x: ${x.met ? "met" : "not met"})`,
			...(x.probe
				? [
						`    /ping probes inside the reads (${Math.round(x.probe.offered_rps)}/s, ${x.probe.ok}): p50 ${f(x.probe.p50_ms, 2)}, p99 ${f(x.probe.p99_ms, 2)}, max ${f(x.probe.max_ms, 1)} ms; reads p99 / probe p99 = ${f(x.ratio_probe_p99, 2)}x`,
					]
				: []),
			`    slow reads (> p99, ${sr.n}): ${mix(sr.tiers)}; below L0 ${pct(sr.below_l0)} of them vs ${pct(sr.below_l0_all)} of all reads; Server-Timing medians ${st || "—"}; pacer > 5 ms late ${pct(sr.late_over_5ms)}; in flight while workerd waited >= 20 ms/100 ms for a CPU ${pct(sr.with_cpu_wait)}, while workerd ran >= 90 ms/100 ms ${pct(sr.with_workerd_busy)}${sr.with_gc !== undefined ? `, during a GC pause >= 1 ms ${pct(sr.with_gc)} (of the worker's isolate ${pct(sr.with_worker_gc)})` : ""}`,
			`    slow /ping (> p99, ${sp.n}): pacer > 5 ms late ${pct(sp.late_over_5ms)}; workerd waiting for a CPU ${pct(sp.with_cpu_wait)}, workerd busy ${pct(sp.with_workerd_busy)}${sp.with_gc !== undefined ? `, GC ${pct(sp.with_gc)} (worker's isolate ${pct(sp.with_worker_gc)})` : ""}`,
			`    upstash-local ${f(x.reads.upstash_cores, 3)} cores during reads; load generator ${f(x.reads.loadgen_cores, 3)} cores, event-loop delay max ${f(Math.max(x.reads.loadgen_loop_delay_max_ms, x.ping.loadgen_loop_delay_max_ms), 1)} ms; other processes ${f(x.reads.other_processes_cores, 2)} / ${f(x.ping.other_processes_cores, 2)} cores and hypervisor steal ${f(x.reads.steal_cores, 2)} / ${f(x.ping.steal_cores, 2)} during reads / /ping`,
			...(x.reads.gc && x.ping.gc ? [`    GC pauses in workerd, reads | /ping: ${gcLine(x.reads.gc, worker)} | ${gcLine(x.ping.gc, worker)}`] : []),
			...(["reads", "ping"] as const).map((k) => {
				const e = x.episodes[k];
				const all = e.reduce((a, b) => a + b.slow, 0);
				const w = e[0];
				return w
					? `    ${k === "reads" ? "reads" : "/ping"}: the slow ones in ${e.length}${e.length === EPISODES_KEPT ? "+" : ""} episodes; worst at ${f(w.at_s, 1)} s, ${f(w.span_ms, 0)} ms, ${w.slow} of ${all}: workerd ran ${f(w.workerd_cpu_ms, 0)} ms and waited ${f(w.workerd_wait_ms, 0)} ms for a CPU, others used ${f(w.others_cpu_ms, 0)} ms of CPU, Redis answered ${pct(w.redis_share)}, GC ${episodeGc(w.gc, Boolean(r.gc_traced))}`
					: `    ${k}: no slow requests`;
			}),
			...(d
				? [
						`    worker counters over the reads: fast lane ${d.fast_lane_hits ?? 0}, L0 through the app (stale copies) ${d.l0_app_hits ?? 0}, L0 misses ${d.l0_misses ?? 0}, Redis hits ${d.redis_hits ?? 0}, background loads (revalidations) ${d.background_loads ?? "— (the counters, polled every 250 ms, do not match the blocks' requests: the worker was saturated, or requests were answered across a block's edge)"}`,
					]
				: []),
		);
	}
	return lines;
}

export function fixedLoadText(r: FixedLoadResult): string[] {
	const all = [HEAD, ...rows(r)];
	const widths = HEAD.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
	const line = (row: string[]) => row.map((c, i) => (i >= 2 && i <= 14 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join("  ");
	return [line(HEAD), widths.map((w) => "-".repeat(w)).join("  "), ...rows(r).map(line), "", ...details(r)];
}

export function fixedLoadMarkdown(r: FixedLoadResult): string[] {
	return [
		`| ${HEAD.join(" | ")} |`,
		`|${HEAD.map((_, i) => (i >= 2 && i <= 14 ? "---:" : ":---")).join("|")}|`,
		...rows(r).map((row) => `| ${row.join(" | ")} |`),
		"",
		"```",
		...details(r),
		"```",
	];
}

export function fixedLoadTarget(r: FixedLoadResult | null): { name: string; met: boolean | null; detail: string } {
	const name = `fixed-load read p99 <= ${FIXED_LOAD_TARGET}x /ping p99 at each rate`;
	if (!r) return { name, met: null, detail: "not run" };
	return {
		name,
		met: r.met,
		detail: r.rates.map((x) => `${x.rate}/s: ${f(x.reads.p99_ms, 2)} vs ${f(x.ping.p99_ms, 2)} ms = ${f(x.ratio_p99, 2)}x`).join("; "),
	};
}
