// Optional (--cpu-prof DIR): V8 CPU profiles of the isolates inside workerd over each measured
// window, through workerd's DevTools inspector. workerd runs the worker and Miniflare's local
// simulators (KV, D1, Queues, the entry router) as separate isolates, so a profile tells the
// worker's own JS apart from the simulators' JS; what /proc shows beyond both is native code.
// Positions in the minified bundle are mapped back to src/ with wrangler's source map.
import { readFileSync, writeFileSync } from "node:fs";
import { SourceMap } from "node:module";
import path from "node:path";

interface CallFrame {
	functionName: string;
	url: string;
	lineNumber: number;
	columnNumber: number;
}
interface ProfileNode {
	id: number;
	callFrame: CallFrame;
	children?: number[];
}
export interface CpuProfile {
	nodes: ProfileNode[];
	startTime: number;
	endTime: number;
	samples: number[];
	timeDeltas: number[];
}

class Cdp {
	private id = 0;
	private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
	private readonly ws: WebSocket;

	private constructor(ws: WebSocket) {
		this.ws = ws;
		ws.addEventListener("message", (ev) => {
			const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
			if (msg.id === undefined) return;
			const p = this.pending.get(msg.id);
			if (!p) return;
			this.pending.delete(msg.id);
			if (msg.error) p.reject(new Error(msg.error.message));
			else p.resolve(msg.result);
		});
	}

	static connect(url: string): Promise<Cdp> {
		return new Promise((resolve, reject) => {
			const ws = new WebSocket(url);
			ws.addEventListener("open", () => resolve(new Cdp(ws)), { once: true });
			ws.addEventListener("error", () => reject(new Error(`cannot connect to inspector ${url}`)), { once: true });
		});
	}

	send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
		const id = ++this.id;
		return new Promise<T>((resolve, reject) => {
			this.pending.set(id, { resolve: (v) => resolve(v as T), reject });
			this.ws.send(JSON.stringify({ id, method, params }));
		});
	}

	close(): void {
		this.ws.close();
	}
}

/** Which isolates to profile: the worker, Miniflare's router, and the storage and queue simulators. */
const INTERESTING = /^(core:user:(?!bench-probe)|core:entry$|kv:|d1:|queues?:)/;

export class Profiler {
	private sessions: { id: string; cdp: Cdp }[] = [];
	private readonly inspector: URL;

	constructor(inspector: URL) {
		this.inspector = inspector;
	}

	async start(): Promise<void> {
		const http = new URL(this.inspector.href.replace(/^ws/, "http"));
		const list = (await (await fetch(new URL("/json/list", http))).json()) as { id: string; webSocketDebuggerUrl: string }[];
		for (const t of list.filter((t) => INTERESTING.test(t.id))) {
			const cdp = await Cdp.connect(t.webSocketDebuggerUrl);
			await cdp.send("Profiler.enable");
			await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
			await cdp.send("Profiler.start");
			this.sessions.push({ id: t.id, cdp });
		}
	}

	async stop(): Promise<Map<string, CpuProfile>> {
		const out = new Map<string, CpuProfile>();
		for (const s of this.sessions) {
			try {
				const { profile } = await s.cdp.send<{ profile: CpuProfile }>("Profiler.stop");
				out.set(s.id, profile);
			} catch {
				// an isolate that never ran has nothing to report
			}
			s.cdp.close();
		}
		this.sessions = [];
		return out;
	}
}

/**
 * Runs `fn` against each of workerd's inspector targets (one isolate each, by id: core:user:NAME,
 * core:entry, kv:..., d1:..., ...), one at a time.
 */
export async function eachTarget(
	inspector: URL,
	fn: (id: string, send: <T>(method: string, params?: Record<string, unknown>) => Promise<T>) => Promise<void>,
): Promise<void> {
	const http = new URL(inspector.href.replace(/^ws/, "http"));
	const list = (await (await fetch(new URL("/json/list", http))).json()) as { id: string; webSocketDebuggerUrl: string }[];
	for (const t of list) {
		let cdp: Cdp | null = null;
		let timer: ReturnType<typeof setTimeout> | undefined;
		try {
			// A target that does not answer within 5 s is left out rather than holding up the run.
			const deadline = new Promise<never>((_, reject) => {
				timer = setTimeout(() => reject(new Error(`inspector target ${t.id} did not answer`)), 5000);
			});
			cdp = await Promise.race([Cdp.connect(t.webSocketDebuggerUrl), deadline]);
			const c = cdp;
			await Promise.race([fn(t.id, (method, params) => c.send(method, params)), deadline]);
		} catch {
			// left out
		} finally {
			clearTimeout(timer);
			cdp?.close();
		}
	}
}

/** Milliseconds of samples per node, excluding idle and GC-free program time. */
function selfTimes(p: CpuProfile): Map<number, number> {
	const t = new Map<number, number>();
	for (let i = 0; i < p.samples.length; i++) {
		const id = p.samples[i] as number;
		t.set(id, (t.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
	}
	return t;
}

export interface ProfileSummary {
	/** JS and GC time sampled per isolate (ms), without (idle) and (program). */
	isolates: Record<string, number>;
	/** The worker's hottest functions by self time, mapped to source where the bundle's map allows. */
	top: { ms: number; share: number; fn: string; at: string }[];
	/** The worker's self time per source area (src/..., node_modules package). */
	byArea: { area: string; ms: number; share: number }[];
}

export class Summariser {
	private readonly map: SourceMap | null;
	private readonly root: string;
	private readonly bundleName: string;

	private readonly workerId: string;

	constructor(bundlePath: string, root: string, workerName: string) {
		this.root = root;
		this.workerId = `core:user:${workerName}`;
		this.bundleName = path.basename(bundlePath);
		let map: SourceMap | null = null;
		try {
			map = new SourceMap(JSON.parse(readFileSync(`${bundlePath}.map`, "utf8")));
		} catch {
			map = null;
		}
		this.map = map;
	}

	private origin(cf: CallFrame): { fn: string; file: string; line: number } {
		// Only frames of the bundle map through its source map; other scripts (Miniflare's wrappers) keep their own positions.
		if (this.map && cf.lineNumber >= 0 && cf.url.endsWith(`/${this.bundleName}`)) {
			const o = this.map.findOrigin(cf.lineNumber + 1, cf.columnNumber + 1) as { fileName?: string; lineNumber?: number; name?: string };
			if (o?.fileName) {
				const file = path.relative(this.root, path.resolve(path.dirname(this.root), o.fileName.replace(/^file:\/\//, ""))).replace(/^(\.\.\/)+/, "");
				return { fn: o.name || cf.functionName || "(anonymous)", file: normalise(file), line: o.lineNumber ?? 0 };
			}
		}
		return { fn: cf.functionName || "(anonymous)", file: cf.url || "(native)", line: cf.lineNumber + 1 };
	}

	summarise(profiles: Map<string, CpuProfile>): ProfileSummary {
		const isolates: Record<string, number> = {};
		let worker: CpuProfile | undefined;
		for (const [id, p] of profiles) {
			const self = selfTimes(p);
			let total = 0;
			// (program) is time the sampled thread spent outside this isolate's JS (other isolates share the thread).
			for (const n of p.nodes) if (n.callFrame.functionName !== "(idle)" && n.callFrame.functionName !== "(program)") total += self.get(n.id) ?? 0;
			isolates[id] = total;
			if (id === this.workerId) worker = p;
		}
		const top: ProfileSummary["top"] = [];
		const byArea: ProfileSummary["byArea"] = [];
		if (worker) {
			const self = selfTimes(worker);
			const agg = new Map<string, { ms: number; fn: string; at: string; area: string }>();
			let total = 0;
			for (const n of worker.nodes) {
				const ms = self.get(n.id) ?? 0;
				if (!ms || n.callFrame.functionName === "(idle)" || n.callFrame.functionName === "(program)") continue;
				total += ms;
				const o = this.origin(n.callFrame);
				const at = `${o.file}:${o.line}`;
				const key = `${o.fn}@${at}`;
				const e = agg.get(key);
				if (e) e.ms += ms;
				else agg.set(key, { ms, fn: o.fn, at, area: area(o.file, n.callFrame) });
			}
			const sorted = [...agg.values()].sort((a, b) => b.ms - a.ms);
			for (const e of sorted.slice(0, 25)) top.push({ ms: e.ms, share: e.ms / total, fn: e.fn, at: e.at });
			const areas = new Map<string, number>();
			for (const e of sorted) areas.set(e.area, (areas.get(e.area) ?? 0) + e.ms);
			for (const [a, ms] of [...areas].sort((x, y) => y[1] - x[1])) byArea.push({ area: a, ms, share: ms / total });
		}
		return { isolates, top, byArea };
	}
}

function normalise(file: string): string {
	const i = file.lastIndexOf("node_modules/");
	return i >= 0 ? file.slice(i) : file;
}

function area(file: string, cf: CallFrame): string {
	if (cf.functionName.startsWith("(")) return cf.functionName; // (program), (garbage collector)
	const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
	if (nm) return nm[1] as string;
	const src = /(src\/[^/]+(?:\/[^/.]+)?)/.exec(file);
	if (src) return src[1] as string;
	return file.includes("(native)") || !file ? "(native/builtin)" : file;
}

export function writeProfiles(dir: string, scenario: string, profiles: Map<string, CpuProfile>): void {
	for (const [id, p] of profiles) writeFileSync(path.join(dir, `${scenario}.${id.replace(/[^A-Za-z0-9_.-]+/g, "_")}.cpuprofile`), JSON.stringify(p));
}
