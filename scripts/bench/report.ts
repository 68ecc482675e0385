// Turns scenario results into the stdout table, the --json document and the markdown for docs/BENCHMARKS.md.
// Run directly, it turns a saved --json file back into that markdown:
//   node scripts/bench/report.ts out.json                 prints it
//   node scripts/bench/report.ts out.json --update-docs   replaces the results section of docs/BENCHMARKS.md
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import path from "node:path";
import { type FixedLoadResult, fixedLoadMarkdown, fixedLoadText } from "./fixed-load-report.ts";

export interface ScenarioResult {
	name: string;
	rps: number;
	p50_ms: number;
	p99_ms: number;
	cpu_ms_per_req?: number;
	p90_ms?: number;
	p999_ms?: number;
	mean_ms?: number;
	requests?: number;
	duration_s?: number;
	errors?: number;
	non2xx?: Record<string, number>;
	/** X-Hotpath-Tier of every 2xx response in the measured window: header value -> count. */
	tiers?: Record<string, number>;
	expected_tier?: string;
	/** Share of responses answered by the expected tier alone. */
	expected_tier_share?: number;
	/** GET /v1/stats deltas over the scenario (per key, this isolate). */
	stats_delta?: Record<string, { hits: number; misses: number; errors: number; skipped: number }>;
	/** Per-tier hit ratios over keys looked up (from /v1/stats). */
	hit_ratio?: Record<string, number>;
	keys_per_request?: number;
	keys_used?: number;
	keys_exhausted?: boolean;
	loadgen_cpu_share?: number;
	upstash_cpu_ms_per_req?: number;
	redis_cpu_ms_per_req?: number;
	bytes_per_response?: number;
	worker_log_counts?: Record<string, number>;
	ratio?: { rps: number; p50: number; p99: number; cpu?: number };
	note?: string;
	// ingest only
	events_per_s?: number;
	freshness_p50_ms?: number;
	freshness_p99_ms?: number;
	[k: string]: unknown;
}

/** One paced ingest phase (events POSTed at a fixed rate, with freshness probes alongside). */
export interface PacedPhase {
	offered: number;
	accepted: number;
	duration_s: number;
	events_per_s: number;
	drained: boolean;
	drain_s: number;
	pipeline_idle_s: number | null;
	post_p99_ms: number;
	freshness_p50_ms: number;
	freshness_p99_ms: number;
	freshness_max_ms: number;
	freshness_samples: number;
	freshness_timeouts: number;
}

/** The ingest row carries these besides the common fields. */
export interface IngestResult extends ScenarioResult {
	events_per_s: number;
	freshness_p50_ms: number;
	freshness_p99_ms: number;
	freshness_samples: number;
	freshness_timeouts: number;
	freshness_timeout_ms: number;
	freshness_loops: number;
	batch: number;
	burst_events: number;
	burst_connections: number;
	accept_events_per_s: number;
	burst_drained: boolean;
	burst_drain_s: number;
	burst_readable: number;
	burst_pipeline_idle_s: number | null;
	pipeline_events_per_s: number | null;
	backlog_after_burst: number;
	cpu_ms_per_event_window?: number;
	sustainable: PacedPhase;
	target: PacedPhase;
	dead_letters: number;
	/** The same burst through the pipeline floor (worker.ts): absent in runs made before it existed. */
	pipeline_floor?: { events: number; events_per_s: number; drained: boolean; accept_events_per_s: number };
}

export interface Target {
	name: string;
	met: boolean | null;
	detail: string;
}

const f = (x: number | undefined | null, digits = 2): string => (x === undefined || x === null || !Number.isFinite(x) ? "—" : x.toFixed(digits));
const fx = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "—" : `${x.toFixed(2)}x`);
const int = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "—" : Math.round(x).toLocaleString("en-US"));

export function tierMix(tiers: Record<string, number> | undefined): string {
	if (!tiers) return "";
	const total = Object.values(tiers).reduce((a, b) => a + b, 0);
	if (!total) return "";
	return Object.entries(tiers)
		.sort((a, b) => b[1] - a[1])
		.slice(0, 4)
		.map(([t, n]) => `${t === "-" || t === "" ? "(no header)" : t} ${((100 * n) / total).toFixed(n === total ? 0 : 1)}%`)
		.join(", ");
}

/**
 * Adds ratios against the baseline row, measured in the same run: `baselineName`, or the row a
 * scenario names as its own (`ratio_base`: the search rows run at other connections than the
 * baseline, and compare with /ping at theirs).
 */
export function withRatios(rows: ScenarioResult[], baselineName = "baseline-hello"): ScenarioResult[] {
	const main = rows.find((r) => r.name === baselineName);
	if (!main) return rows;
	return rows.map((r) => {
		const base = (typeof r.ratio_base === "string" ? rows.find((x) => x.name === r.ratio_base) : undefined) ?? main;
		return withRatio(r, base);
	});
}

function withRatio(r: ScenarioResult, base: ScenarioResult): ScenarioResult {
	return {
		...r,
		ratio: {
			rps: r.rps / base.rps,
			p50: r.p50_ms / base.p50_ms,
			p99: r.p99_ms / base.p99_ms,
			...(r.cpu_ms_per_req !== undefined && base.cpu_ms_per_req ? { cpu: r.cpu_ms_per_req / base.cpu_ms_per_req } : {}),
		},
	};
}

interface Column {
	head: string;
	cell: (r: ScenarioResult) => string;
	right?: boolean;
}

const COLUMNS: Column[] = [
	{ head: "scenario", cell: (r) => r.name },
	{ head: "rps", cell: (r) => int(r.rps), right: true },
	{ head: "rps ×base", cell: (r) => fx(r.ratio?.rps), right: true },
	{ head: "p50 ms", cell: (r) => f(r.p50_ms), right: true },
	{ head: "p99 ms", cell: (r) => f(r.p99_ms), right: true },
	{ head: "p99 ×base", cell: (r) => fx(r.ratio?.p99), right: true },
	{ head: "cpu ms/req", cell: (r) => f(r.cpu_ms_per_req, 3), right: true },
	{ head: "cpu ×base", cell: (r) => fx(r.ratio?.cpu), right: true },
	{ head: "workerd cores", cell: (r) => f(r.workerd_cores as number | undefined), right: true },
	{ head: "loadgen cpu", cell: (r) => (r.loadgen_cpu_share === undefined ? "—" : `${Math.round(r.loadgen_cpu_share * 100)}%`), right: true },
	{ head: "answered by (X-Hotpath-Tier)", cell: (r) => tierMix(r.tiers) },
];

function grid(rows: ScenarioResult[], sep: "text" | "md"): string {
	const cells = rows.map((r) => COLUMNS.map((c) => c.cell(r)));
	if (sep === "md") {
		const head = `| ${COLUMNS.map((c) => c.head).join(" | ")} |`;
		const rule = `|${COLUMNS.map((c) => (c.right ? "---:" : ":---")).join("|")}|`;
		return [head, rule, ...cells.map((cs) => `| ${cs.join(" | ")} |`)].join("\n");
	}
	const widths = COLUMNS.map((c, i) => Math.max(c.head.length, ...cells.map((cs) => (cs[i] as string).length)));
	const line = (cs: string[]) => cs.map((s, i) => (COLUMNS[i]?.right ? s.padStart(widths[i] as number) : s.padEnd(widths[i] as number))).join("  ");
	return [line(COLUMNS.map((c) => c.head)), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n");
}

export function ingestLines(row: ScenarioResult | undefined): string[] {
	if (!row) return [];
	const r = row as IngestResult;
	const x = r;
	const paced = (label: string, p: PacedPhase | undefined): string[] => {
		if (!p) return [];
		const f99 = `${p.freshness_timeouts ? ">= " : ""}${f(p.freshness_p99_ms, 0)}`;
		const f50 = `${p.freshness_timeouts > p.freshness_samples ? ">= " : ""}${f(p.freshness_p50_ms, 0)}`;
		return [
			`ingest, paced at ${int(p.offered)} events/s (${label}): the API took ${int(p.accepted)} events in ${f(p.duration_s, 1)} s = ${int(p.accepted / p.duration_s)} events/s${p.accepted / p.duration_s < 0.95 * p.offered ? " (below the offered rate: POSTs queued behind slow answers)" : ""}`,
			`  ${p.drained ? "" : ">= "}${int(p.events_per_s)} events/s readable end to end; ${p.drained ? `last event readable ${f(p.drain_s, 1)} s after the last POST` : `${int(p.accepted)} accepted, not all readable ${f(p.drain_s, 1)} s after the last POST`}`,
			`  freshness (202 -> first read that sees the value): p50 ${f50} ms, p99 ${f99} ms; ${p.freshness_samples} probes seen${p.freshness_timeouts ? `, ${p.freshness_timeouts} not visible within ${f(x.freshness_timeout_ms / 1000, 0)} s` : ""}`,
		];
	};
	return [
		`ingest, saturating: ${x.burst_connections} connections POSTing ${x.batch} events per request for ${f(r.duration_s, 1)} s:`,
		`  accepted ${int(x.burst_events)} events = ${int(x.accept_events_per_s)} events/s (POST p50 ${f(r.p50_ms)} ms, p99 ${f(r.p99_ms)} ms)`,
		x.burst_drained
			? `  all readable in D1 ${f(x.burst_drain_s, 1)} s after the last POST -> ${int(r.events_per_s)} events/s end to end`
			: `  only ${int(x.burst_readable)} readable ${f(x.burst_drain_s, 1)} s after the last POST -> >= ${int(r.events_per_s)} events/s end to end (queue never emptied)`,
		x.burst_pipeline_idle_s === null
			? `  the consumer was still writing KV/Redis when the wait ended`
			: `  consumer done (KV and Redis write-through too) ${f(x.burst_pipeline_idle_s, 1)} s after the last POST -> ${int(x.pipeline_events_per_s ?? undefined)} events/s through the whole pipeline`,
		...(x.pipeline_floor
			? [
					`  the pipeline floor, the same burst parsed, queued and written as the same rows and log rows with nothing else: ${x.pipeline_floor.drained ? "" : ">= "}${int(x.pipeline_floor.events_per_s)} events/s end to end (ingest = ${f(r.events_per_s / x.pipeline_floor.events_per_s)}x that)`,
				]
			: []),
		...paced("half the pipeline's rate", x.sustainable),
		...paced("the target", x.target),
		`  dead letters after ingest: ${x.dead_letters ?? "—"}`,
	];
}

/** The import and aggregate-facts rows in words: rows (facts) per second end to end and CPU per row. */
export function writeLines(rows: ScenarioResult[]): string[] {
	const out: string[] = [];
	const imp = rows.find((r) => r.name === "import");
	if (imp) {
		out.push(
			`import: ${int(imp.rows as number)} rows of new keys, ${int(imp.rows_per_request as number)} per request, ${imp.connections} in flight, in ${f(imp.duration_s, 1)} s (POST p50 ${f(imp.p50_ms, 0)} ms, p99 ${f(imp.p99_ms, 0)} ms)`,
			`  ${imp.drained ? "" : ">= "}${int(imp.rows_per_s as number)} rows/s end to end (first POST until D1 holds every row); workerd ${f((imp.cpu_ms_per_row as number) * 1000, 1)} µs CPU per row, ${f(imp.workerd_cores as number)} cores; upstash-local ${f(imp.upstash_cores as number | undefined)} cores, redis-server ${f(imp.redis_cores as number | undefined)} cores`,
		);
	}
	const facts = rows.find((r) => r.name === "aggregate-facts");
	if (facts) {
		out.push(
			`aggregate-facts: ${int(facts.facts as number)} facts (${int(facts.keys as number)} keys x ${int(facts.facts_per_key as number)}, 7 days, 7 aggregates), ${facts.batch} per POST, accepted at ${int(facts.accept_events_per_s as number)}/s (POST p99 ${f(facts.p99_ms, 0)} ms)`,
			`  ${facts.drained ? "" : ">= "}${int(facts.events_per_s as number)} facts/s end to end (first POST until the event log holds every fact; tiles commit with it)${facts.pipeline_idle_s === null ? "" : `, workerd idle ${f(facts.pipeline_idle_s as number, 1)} s after the last POST`}; workerd ${f((facts.cpu_ms_per_fact as number) * 1000, 1)} µs CPU per fact over the POSTing window, ${f(facts.workerd_cores as number)} cores`,
		);
	}
	return out;
}

export function targetLines(targets: Target[]): string[] {
	return targets.map((t) => `${t.met === null ? "n/a " : t.met ? "MET " : "MISS"}  ${t.name}: ${t.detail}`);
}

export interface ReportDoc {
	scenarios: ScenarioResult[];
	targets: Target[];
	header: string[];
	fixed_load?: FixedLoadResult | null;
}

export function textReport(doc: ReportDoc): string {
	const rows = doc.scenarios;
	return [
		...doc.header,
		"",
		grid(rows, "text"),
		"",
		...ingestLines(rows.find((r) => r.name === "ingest")),
		...writeLines(rows),
		...(doc.fixed_load ? ["", ...fixedLoadText(doc.fixed_load)] : []),
		"",
		"targets:",
		...targetLines(doc.targets),
	].join("\n");
}

export function markdownReport(doc: ReportDoc): string {
	const rows = doc.scenarios;
	return [
		...doc.header.map((h) => `- ${h}`),
		"",
		grid(rows, "md"),
		"",
		"```",
		...ingestLines(rows.find((r) => r.name === "ingest")),
		...writeLines(rows),
		"```",
		...(doc.fixed_load ? ["", "Reads and /ping at a fixed offered load (fixed-load):", "", ...fixedLoadMarkdown(doc.fixed_load)] : []),
		"",
		"Targets:",
		"",
		...targetLines(doc.targets).map((l) => `- ${l.replace(/^(MET |MISS|n\/a ) {2}/, (m) => `**${m.trim()}** `)}`),
	].join("\n");
}

const BEGIN = "<!-- bench:results:begin -->";
const END = "<!-- bench:results:end -->";

/** Replaces the text between the results markers of `file`. Returns what it did, for the log. */
export function updateDocs(file: string, markdown: string): string {
	let text: string;
	try {
		text = readFileSync(file, "utf8");
	} catch {
		return `${file} not found; not updated`;
	}
	const i = text.indexOf(BEGIN);
	const j = text.indexOf(END);
	if (i < 0 || j < i) return `${file} has no ${BEGIN} … ${END} section; not updated`;
	writeFileSync(file, `${text.slice(0, i + BEGIN.length)}\n${markdown}\n${text.slice(j)}`);
	return `updated ${file}`;
}

if (process.argv[1] && realpathSync(process.argv[1]) === import.meta.filename) {
	const file = process.argv[2];
	if (!file) {
		console.error("usage: node scripts/bench/report.ts OUT.json [--update-docs]");
		process.exit(2);
	}
	const doc = JSON.parse(readFileSync(file, "utf8")) as {
		scenarios: ScenarioResult[];
		targets: Target[];
		header?: string[];
		fixed_load?: FixedLoadResult | null;
	};
	const md = markdownReport({ scenarios: doc.scenarios, targets: doc.targets, header: doc.header ?? [], fixed_load: doc.fixed_load ?? null });
	if (process.argv.includes("--update-docs")) console.error(updateDocs(path.resolve(import.meta.dirname, "..", "..", "docs", "BENCHMARKS.md"), md));
	else console.log(md);
}
