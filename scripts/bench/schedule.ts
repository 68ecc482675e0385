// Open-loop schedules for the fixed-load scenario, run inside the load process (scripts/bench/load.ts).
//
// A schedule is a list of windows run back to back on one clock: in window w, request i is due at
// start(w) + i / rate, whatever earlier requests are doing, and goes out over at most `connections`
// keep-alive sockets. Each request records when it was due, how late the pacer sent it, and when its
// response ended, so latency is measured from the due time (no coordinated omission) and the
// pacer's own lateness is reported apart. Alongside, the CPU time and runqueue wait of workerd and
// the other local processes are sampled from /proc, and the worker's per-tier counters from
// GET /v1/stats, so slow requests can be set against what the machine and the worker were doing.
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { DATASET, keyOf, permutation, rng, Zipf } from "./common.ts";

export type PacedGen =
	/** The same GET every time (no auth): the runtime's own latency. */
	| { kind: "fixed"; path: string }
	/** Single-key reads, key rank drawn from Zipf(s) over keys start .. start+n-1 (rank -> key by a fixed permutation). */
	| { kind: "zipf"; start: number; n: number; s: number; seed: number };

export interface PacedWindow {
	/** What the window measures; a drain sends nothing: it waits until every response is back, then `durationS` more. */
	kind: "ping" | "reads" | "drain";
	rate: number;
	durationS: number;
	gen: PacedGen;
	/** Warm-ups are windows too, paced like the others, but not counted. */
	measured: boolean;
	/** GETs of `path` interleaved at `rate`/s on top of the window's own requests (key -2): the runtime's latency at the same moments. */
	probe?: { path: string; rate: number };
}

/** The longest a drain waits for outstanding responses. */
const DRAIN_MAX_MS = 30_000;

export interface ScheduleJob {
	url: string;
	/** Bearer token of the reads. */
	token: string;
	connections: number;
	windows: PacedWindow[];
	/** Processes sampled from /proc every `sampleMs`: name -> pid. */
	pids: Record<string, number | null>;
	sampleMs: number;
	/** GET /v1/stats with this admin token every `everyMs` (the worker's per-tier counters over time). */
	stats?: { token: string; everyMs: number };
}

/** Per-request columns; times in ms since the schedule's time 0. */
export interface RequestColumns {
	/** Window index. */
	w: number[];
	/** When the request was due. */
	due: number[];
	/** How late the pacer handed it to the HTTP client (ms after `due`). */
	late: number[];
	/** Due -> response end (ms); NaN when it failed. */
	lat: number[];
	/** Handed to the client -> response end (ms). */
	svc: number[];
	status: number[];
	/** X-Hotpath-Tier ("" when absent). */
	tier: string[];
	/** Server-Timing ("" when absent). */
	st: string[];
	/** Key index of reads, -1 for fixed requests, -2 for probes. */
	key: number[];
}

/** One /proc sample: per process, cumulative on-CPU and runqueue-wait ms over all its threads. */
export interface ProcSample {
	t: number;
	procs: Record<string, { cpu: number; wait: number; threads: number } | null>;
	/** The whole machine from /proc/stat, cumulative ms summed over CPUs: busy (without steal), and stolen by the hypervisor. */
	machine: { busy: number; steal: number } | null;
}

export interface WindowInfo {
	startMs: number;
	endMs: number;
	sent: number;
	/** The load process's own CPU over the window (ms) and its event-loop delay (ms). */
	loadCpuMs: number;
	loopDelay: { p50: number; p99: number; max: number };
}

export interface ScheduleResult {
	/** Epoch ms of the schedule's time 0. */
	t0Epoch: number;
	windows: WindowInfo[];
	req: RequestColumns;
	proc: ProcSample[];
	stats: { t: number; body: unknown }[];
	errors: number;
	firstErrors: string[];
}

/** Cumulative on-CPU and runqueue wait (ms) of all threads of `pid`, from /proc/PID/task/TID/schedstat (ns). */
export function procTimes(pid: number | null): { cpu: number; wait: number; threads: number } | null {
	if (pid === null) return null;
	let cpu = 0;
	let wait = 0;
	let threads = 0;
	try {
		for (const tid of readdirSync(`/proc/${pid}/task`)) {
			try {
				const [run, queued] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ");
				cpu += Number(run) / 1e6;
				wait += Number(queued) / 1e6;
				threads++;
			} catch {
				// a thread that just exited
			}
		}
	} catch {
		return null;
	}
	return { cpu, wait, threads };
}

/** /proc/stat counts in USER_HZ ticks, which Linux fixes at 100 per second. */
const TICK_MS = 10;

/** Busy and stolen CPU time of the machine (ms, all CPUs), from the first line of /proc/stat. */
export function machineTimes(): { busy: number; steal: number } | null {
	try {
		const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
		const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
		return { busy: (user + nice + system + irq + softirq) * TICK_MS, steal: steal * TICK_MS };
	} catch {
		return null;
	}
}

function pathMaker(gen: PacedGen): () => { path: string; key: number } {
	if (gen.kind === "fixed") return () => ({ path: gen.path, key: -1 });
	const z = new Zipf(gen.n, gen.s);
	const perm = permutation(gen.n, gen.seed);
	const r = rng(gen.seed + 1);
	return () => {
		const key = gen.start + (perm[z.sample(r())] as number);
		return { path: `/v1/datasets/${DATASET}/records/${keyOf(key)}`, key };
	};
}

export function runSchedule(job: ScheduleJob): Promise<ScheduleResult> {
	const base = new URL(job.url);
	// FIFO: a free socket is the one idle longest, so the load spreads over all connections.
	const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections, scheduling: "fifo" });
	const auth = { authorization: `Bearer ${job.token}` };
	const req: RequestColumns = { w: [], due: [], late: [], lat: [], svc: [], status: [], tier: [], st: [], key: [] };
	const firstErrors: string[] = [];
	let errors = 0;
	// One generator per distinct gen, shared by every window that uses it, so the key stream runs on
	// across windows. (A generator per window would replay the same keys window after window: with
	// 15 s windows, every key read again exactly 15 s later, which is L0's stale limit.)
	const byGen = new Map<string, () => { path: string; key: number }>();
	const makers = job.windows.map((w) => {
		const id = JSON.stringify(w.gen);
		let m = byGen.get(id);
		if (!m) {
			m = pathMaker(w.gen);
			byGen.set(id, m);
		}
		return m;
	});
	const totals = job.windows.map((w) => (w.kind === "drain" ? 0 : Math.round(w.rate * w.durationS)));
	// Start times are set as windows begin: a drain lasts as long as the responses take.
	const windows: WindowInfo[] = job.windows.map(() => ({ startMs: 0, endMs: 0, sent: 0, loadCpuMs: 0, loopDelay: { p50: 0, p99: 0, max: 0 } }));
	const proc: ProcSample[] = [];
	const stats: { t: number; body: unknown }[] = [];
	// A little lead so the first requests are not late by the time it takes to set up.
	const T0 = performance.now() + 20;
	const t0Epoch = performance.timeOrigin + T0;
	const rel = () => performance.now() - T0;

	const sample = () => {
		const procs: ProcSample["procs"] = {};
		for (const [name, pid] of Object.entries(job.pids)) procs[name] = procTimes(pid);
		procs.loadgen = procTimes(process.pid);
		proc.push({ t: rel(), procs, machine: machineTimes() });
	};
	const sampler = setInterval(sample, job.sampleMs);
	const statsAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
	const statsTimer = job.stats
		? setInterval(() => {
				const t = rel();
				http
					.get(
						{ host: base.hostname, port: base.port, path: "/v1/stats", agent: statsAgent, headers: { authorization: `Bearer ${job.stats?.token}` } },
						(res) => {
							let body = "";
							res.setEncoding("utf8");
							res.on("data", (d: string) => (body += d));
							res.on("end", () => {
								try {
									stats.push({ t, body: JSON.parse(body) });
								} catch {}
							});
						},
					)
					.on("error", () => {});
			}, job.stats.everyMs)
		: null;

	const loop = monitorEventLoopDelay({ resolution: 1 });
	loop.enable();
	let cpuMark = process.cpuUsage();
	const closeWindow = (wi: number) => {
		const info = windows[wi] as WindowInfo;
		const cpu = process.cpuUsage(cpuMark);
		cpuMark = process.cpuUsage();
		info.loadCpuMs = (cpu.user + cpu.system) / 1000;
		info.loopDelay = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 };
		loop.reset();
		sample();
	};

	let outstanding = 0;
	let sendingDone = false;
	return new Promise((resolve) => {
		const finishIfDone = () => {
			if (!sendingDone || outstanding > 0) return;
			clearInterval(sampler);
			if (statsTimer) clearInterval(statsTimer);
			loop.disable();
			sample();
			agent.destroy();
			statsAgent.destroy();
			resolve({ t0Epoch, windows, req, proc, stats, errors, firstErrors });
		};
		const send = (wi: number, due: number, probe = false) => {
			const win = job.windows[wi] as PacedWindow;
			const { path, key } = probe ? { path: win.probe?.path ?? "/", key: -2 } : (makers[wi] as () => { path: string; key: number })();
			const sentAt = rel();
			const idx = req.w.length;
			req.w.push(wi);
			req.due.push(due);
			req.late.push(sentAt - due);
			req.lat.push(Number.NaN);
			req.svc.push(Number.NaN);
			req.status.push(0);
			req.tier.push("");
			req.st.push("");
			req.key.push(key);
			outstanding++;
			const headers = probe || win.gen.kind === "fixed" ? {} : auth;
			const r = http.request({ host: base.hostname, port: base.port, path, method: "GET", agent, headers }, (res) => {
				const status = res.statusCode ?? 0;
				let body = "";
				if (status >= 300) {
					res.setEncoding("utf8");
					res.on("data", (d: string) => (body += d));
				} else res.resume();
				res.on("end", () => {
					const end = rel();
					req.lat[idx] = end - due;
					req.svc[idx] = end - sentAt;
					req.status[idx] = status;
					const tier = res.headers["x-hotpath-tier"];
					req.tier[idx] = typeof tier === "string" ? tier : "";
					const st = res.headers["server-timing"];
					req.st[idx] = typeof st === "string" ? st : "";
					if (status >= 300 && firstErrors.length < 3) firstErrors.push(`${status} ${body.slice(0, 500)}`);
					outstanding--;
					finishIfDone();
				});
			});
			r.on("error", (e) => {
				errors++;
				if (firstErrors.length < 3) firstErrors.push(String(e));
				outstanding--;
				finishIfDone();
			});
			r.end();
		};
		let wi = 0;
		let i = 0;
		// Probes sent in the current window.
		let k = 0;
		// Schedule time at which window wi starts (its requests are due from then on).
		let start = 0;
		let drainedAt: number | null = null;
		const begin = (at: number) => {
			start = at;
			(windows[wi] as WindowInfo).startMs = at;
		};
		const next = (end: number) => {
			const info = windows[wi] as WindowInfo;
			info.endMs = end;
			info.sent = i;
			closeWindow(wi);
			wi++;
			i = 0;
			k = 0;
			drainedAt = null;
			if (wi < job.windows.length) begin(end);
		};
		const tick = () => {
			for (;;) {
				if (wi >= job.windows.length) {
					sendingDone = true;
					finishIfDone();
					return;
				}
				const win = job.windows[wi] as PacedWindow;
				const now = rel();
				if (win.kind === "drain") {
					if (outstanding > 0 && now - start < DRAIN_MAX_MS) {
						setTimeout(tick, 5);
						return;
					}
					drainedAt ??= now;
					const end = drainedAt + win.durationS * 1000;
					if (now < end) {
						setTimeout(tick, end - now);
						return;
					}
					next(end);
					continue;
				}
				const end = start + win.durationS * 1000;
				// The window's next request and next probe (probes are due half a probe slot in).
				const due = i < (totals[wi] as number) ? start + (i * 1000) / win.rate : Number.POSITIVE_INFINITY;
				const probeTotal = win.probe ? Math.round(win.probe.rate * win.durationS) : 0;
				const probeDue = win.probe && k < probeTotal ? start + ((k + 0.5) * 1000) / win.probe.rate : Number.POSITIVE_INFINITY;
				const first = Math.min(due, probeDue);
				if (first === Number.POSITIVE_INFINITY) {
					// A window ends when its time is up, not when its last request went out.
					if (now < end) {
						setTimeout(tick, end - now);
						return;
					}
					next(end);
					continue;
				}
				if (first > now) {
					// Node runs a timer no sooner than 1 ms; everything due by then goes out together.
					setTimeout(tick, Math.max(0, first - now));
					return;
				}
				if (probeDue < due) {
					send(wi, probeDue, true);
					k++;
				} else {
					send(wi, due);
					i++;
				}
			}
		};
		sample();
		begin(0);
		setTimeout(tick, Math.max(0, -rel()));
	});
}
