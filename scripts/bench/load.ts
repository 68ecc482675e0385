// The load generator: a separate Node process (forked by run.ts) driving autocannon over loopback,
// so its CPU is not the worker's and can be checked on its own. Receives one job over IPC, runs a
// warm-up, tells the parent (which samples CPU counters), runs the measured window, reports.
import http from "node:http";
import autocannon from "autocannon";
import { DATASET, keyOf, makeValue, percentiles, permutation, rng, sleep, Zipf } from "./common.ts";
import { runSchedule, type ScheduleJob } from "./schedule.ts";
import { type SearchVariant, searchBodies } from "./search-data.ts";
import { AGG_DATASET, fact, GRAPHQL_BATCH_QUERY, importRow, importValues, prefixedKey } from "./time-data.ts";

export type Gen =
	/** The same request every time. */
	| { kind: "fixed"; method: "GET"; path: string; auth: boolean }
	/** Single-key reads, a new key per request (warm-up included): keys start .. start+count-1. */
	| { kind: "keys"; start: number; count: number }
	/**
	 * Single-key reads cycling over a small hot set; `query` is appended to each path. Keys are
	 * keyOf(i) of the bench dataset, or prefixedKey(prefix, i) of `dataset` when a prefix is given.
	 */
	| { kind: "cycle"; start: number; count: number; query?: string; dataset?: string; prefix?: string }
	/** Single-key reads, key rank drawn from Zipf(s) over all n keys (rank -> key by a fixed permutation). */
	| { kind: "zipf"; n: number; s: number; seed: number }
	/**
	 * POST /v1/lookup with `batch` distinct keys drawn uniformly from keys start .. start+count-1
	 * (prefixedKey(prefix, i) when a prefix is given), as of `asOf` (epoch ms) when given.
	 */
	| { kind: "lookup"; batch: number; start: number; count: number; seed: number; prefix?: string; asOf?: number }
	/** POST /graphql: the bench spec's every field for `batch` distinct keys drawn as `lookup` draws them. */
	| { kind: "graphql"; batch: number; start: number; count: number; seed: number }
	/** POST /v1/datasets/bench_users/import: `batch` rows of new keys `${prefix}${seq}` per request, as `hotpath load` sends them. */
	| { kind: "import"; batch: number; prefix: string }
	/** POST /v1/events: `batch` facts (patches) per request to the aggregate dataset, fact j of `total` spread over `keys` keys and 7 days before `end` (time-data.ts). */
	| { kind: "facts"; batch: number; prefix: string; keys: number; total: number; end: number }
	/** POST /v1/datasets/:dataset/search: the bodies of `variant` (search-data.ts searchBodies), in turn. */
	| { kind: "search"; dataset: string; variant: SearchVariant; seed: number; vectors: number }
	/** POST /v1/events (or `path`): `batch` upserts of new keys `${prefix}${seq}` per request. */
	| { kind: "events"; batch: number; prefix: string; path?: string };

export interface Job {
	url: string;
	token: string;
	connections: number;
	warmupS: number;
	durationS: number;
	gen: Gen;
	/** Stop after this many requests instead of after durationS. Unlike a duration, an amount lets
	 * every request finish (no request is cut off in flight), so the client knows exactly what the
	 * server accepted: ingest uses it. */
	amount?: number;
	/** Pace to this many requests per second over all connections (open loop). */
	rate?: number;
	/** Warm-up of this many requests (before the timed warm-up, if any). */
	warmupRequests?: number;
	/** A Server-Timing metric whose dur is collected from every 2xx response (e.g. "search": the ranking's time). */
	serverTiming?: string;
	/** Freshness probes run alongside the measured window (events jobs). */
	probes?: { loops: number; prefix: string; pollMs: number; timeoutMs: number; readToken: string };
}

export interface LoadResult {
	requests: number;
	ok: number;
	non2xx: Record<string, number>;
	errors: number;
	timeouts: number;
	elapsedS: number;
	rps: number;
	latency: { p50: number; p90: number; p99: number; p999: number; mean: number; max: number };
	tiers: Record<string, number>;
	/** Keys scenarios: the key set ran out and the window was cut short. */
	exhausted: boolean;
	keysUsed: number;
	/** Events jobs: events the API accepted (sum of 202 `accepted`). */
	accepted: number;
	startedAt: number;
	endedAt: number;
	firstErrorBodies: string[];
	/** This process's CPU during the measured window: ms and share of one core. */
	cpuMs: number;
	cpuShare: number;
	freshness?: { samples: number[]; timeouts: number };
	bytesPerResponse: number;
	/** Job.serverTiming: percentiles of that metric's dur over the window, and how many responses had it. */
	serverTiming?: { name: string; n: number; p50: number; p99: number; mean: number };
}

function makeRequest(job: Job): { request: autocannon.Request; state: { used: number; exhausted: boolean; stop: () => void } } {
	const g = job.gen;
	const auth = { authorization: `Bearer ${job.token}` };
	const state = { used: 0, exhausted: false, stop: () => {} };
	const recordPath = (key: string) => `/v1/datasets/${DATASET}/records/${key}`;
	switch (g.kind) {
		case "fixed":
			return { request: { method: g.method, path: g.path, headers: g.auth ? auth : {} }, state };
		case "keys":
			return {
				request: {
					method: "GET",
					headers: auth,
					setupRequest: (req) => {
						const i = state.used++;
						if (i >= g.count && !state.exhausted) {
							state.exhausted = true;
							state.stop();
						}
						req.path = recordPath(keyOf(g.start + (i % g.count)));
						return req;
					},
				},
				state,
			};
		case "cycle": {
			const base = `/v1/datasets/${g.dataset ?? DATASET}/records/`;
			const name = g.prefix === undefined ? keyOf : (i: number) => prefixedKey(g.prefix as string, i);
			return {
				request: {
					method: "GET",
					headers: auth,
					setupRequest: (req) => {
						req.path = base + name(g.start + (state.used++ % g.count)) + (g.query ?? "");
						return req;
					},
				},
				state,
			};
		}
		case "zipf": {
			const z = new Zipf(g.n, g.s);
			const perm = permutation(g.n, g.seed);
			const r = rng(g.seed + 1);
			return {
				request: {
					method: "GET",
					headers: auth,
					setupRequest: (req) => {
						state.used++;
						req.path = recordPath(keyOf(perm[z.sample(r())] as number));
						return req;
					},
				},
				state,
			};
		}
		case "lookup":
		case "graphql": {
			const r = rng(g.seed);
			const name = g.kind === "lookup" && g.prefix !== undefined ? (i: number) => prefixedKey(g.prefix as string, i) : keyOf;
			const asOf = g.kind === "lookup" && g.asOf !== undefined ? { as_of: g.asOf } : {};
			return {
				request: {
					method: "POST",
					path: g.kind === "lookup" ? "/v1/lookup" : "/graphql",
					headers: { ...auth, "content-type": "application/json" },
					setupRequest: (req) => {
						const keys = new Set<string>();
						while (keys.size < g.batch) keys.add(name(g.start + Math.floor(r() * g.count)));
						state.used += keys.size;
						req.body = JSON.stringify(
							g.kind === "lookup"
								? { requests: [{ dataset: DATASET, keys: [...keys] }], ...asOf }
								: { query: GRAPHQL_BATCH_QUERY, variables: { keys: [...keys] }, operationName: "Batch" },
						);
						return req;
					},
				},
				state,
			};
		}
		case "import": {
			// Values are built once; per request only the keys, ids and times change.
			const values = importValues(g.batch);
			return {
				request: {
					method: "POST",
					path: `/v1/datasets/${DATASET}/import`,
					headers: { ...auth, "content-type": "application/json" },
					setupRequest: (req) => {
						const now = Date.now();
						const rows: string[] = [];
						for (let j = 0; j < g.batch; j++) rows.push(importRow(`${g.prefix}${String(state.used++).padStart(8, "0")}`, now, values[j] as string));
						req.body = `[${rows.join(",")}]`;
						return req;
					},
				},
				state,
			};
		}
		case "search": {
			// Sent round-robin; the warm-up sends each once (Job.warmupRequests), so the hits' values are warm.
			const bodies = searchBodies(g.variant, g.seed, g.vectors);
			return {
				request: {
					method: "POST",
					path: `/v1/datasets/${g.dataset}/search`,
					headers: { ...auth, "content-type": "application/json" },
					setupRequest: (req) => {
						req.body = bodies[state.used++ % bodies.length] as string;
						return req;
					},
				},
				state,
			};
		}
		case "facts":
			return {
				request: {
					method: "POST",
					path: "/v1/events",
					headers: { ...auth, "content-type": "application/json" },
					setupRequest: (req) => {
						const parts: string[] = [];
						for (let j = 0; j < g.batch && state.used < g.total; j++) {
							const n = state.used++;
							const f = fact(n, g.total, g.keys, g.end);
							parts.push(
								`{"id":"${g.prefix}f${n}","dataset":"${AGG_DATASET}","key":"${prefixedKey(g.prefix, f.keyIndex)}","op":"patch","event_time":${f.time},"value":${f.value}}`,
							);
						}
						req.body = `[${parts.join(",")}]`;
						return req;
					},
				},
				state,
			};
		case "events": {
			// Values are built once; per request only the envelope changes, so the generator stays cheap.
			const values = Array.from({ length: g.batch }, (_, j) => JSON.stringify(makeValue(j, 99)));
			return {
				request: {
					method: "POST",
					path: g.path ?? "/v1/events",
					headers: { ...auth, "content-type": "application/json" },
					setupRequest: (req) => {
						const now = Date.now();
						const parts: string[] = [];
						for (let j = 0; j < g.batch; j++) {
							const key = `${g.prefix}${String(state.used++).padStart(8, "0")}`;
							parts.push(`{"id":"${key}","dataset":"${DATASET}","key":"${key}","op":"upsert","event_time":${now},"value":${values[j]}}`);
						}
						req.body = `[${parts.join(",")}]`;
						return req;
					},
				},
				state,
			};
		}
	}
}

/** What a write answer says it took: `accepted` events (POST /v1/events), or valid rows `imported` and `unchanged` (the import route). */
function acceptedOf(body: string): number {
	try {
		const b = JSON.parse(body) as { accepted?: number; imported?: number; unchanged?: number };
		return b.accepted ?? (b.imported ?? 0) + (b.unchanged ?? 0);
	} catch {
		return 0;
	}
}

interface Collected {
	latencies: number[];
	tiers: Record<string, number>;
	non2xx: Record<string, number>;
	accepted: number;
	firstErrorBodies: string[];
	bytes: number;
	/** Job.serverTiming's dur per 2xx response that carried it. */
	timings: number[];
}

/** The dur of metric `name` in a Server-Timing header ("search;dur=12.3, lookup;dur=1.0"), or null. */
function timingOf(header: string | string[] | undefined, name: string): number | null {
	if (header === undefined) return null;
	for (const part of String(header).split(",")) {
		const [metric, ...params] = part.trim().split(";");
		if (metric !== name) continue;
		for (const p of params) {
			const [k, v] = p.trim().split("=");
			if (k === "dur" && v !== undefined && Number.isFinite(Number(v))) return Number(v);
		}
	}
	return null;
}

function runCannon(
	job: Job,
	request: autocannon.Request,
	state: { stop: () => void },
	durationS: number,
	amount?: number,
): Promise<{ result: autocannon.Result; c: Collected; startedAt: number; endedAt: number }> {
	const c: Collected = { latencies: [], tiers: {}, non2xx: {}, accepted: 0, firstErrorBodies: [], bytes: 0, timings: [] };
	const counted = job.gen.kind === "events" || job.gen.kind === "facts" || job.gen.kind === "import";
	const req: autocannon.Request = {
		...request,
		onResponse: (status: number, body: string, _ctx: unknown, headers: Record<string, string | string[]>) => {
			if (status >= 200 && status < 300) {
				const t = headers["x-hotpath-tier"] ?? headers["X-Hotpath-Tier"];
				const key = t === undefined ? "-" : String(t);
				c.tiers[key] = (c.tiers[key] ?? 0) + 1;
				if (counted) c.accepted += acceptedOf(body);
				if (job.serverTiming) {
					const dur = timingOf(headers["server-timing"] ?? headers["Server-Timing"], job.serverTiming);
					if (dur !== null) c.timings.push(dur);
				}
			} else {
				c.non2xx[status] = (c.non2xx[status] ?? 0) + 1;
				if (c.firstErrorBodies.length < 3) c.firstErrorBodies.push(`${status} ${String(body).slice(0, 2000)}`);
			}
		},
	} as autocannon.Request;
	return new Promise((resolve, reject) => {
		const startedAt = Date.now();
		let lastAnswerAt = startedAt;
		const opts: autocannon.Options = {
			url: job.url,
			connections: job.connections,
			pipelining: 1,
			timeout: 30,
			requests: [req],
			...(amount ? { amount } : { duration: durationS }),
			...(job.rate ? { overallRate: job.rate } : {}),
			// autocannon notices that a fixed amount is done only at its next sample tick (every second
			// by default), and calls back then: up to a second after the last answer, which the write
			// scenarios' rates (events over first POST to last readable) would count as posting time.
			...(amount ? { sampleInt: 50 } : {}),
		};
		const instance = autocannon(opts, (err, result) => {
			if (err) reject(err);
			// A fixed amount ended with its last answer, not with the tick that noticed it.
			else resolve({ result, c, startedAt, endedAt: amount ? lastAnswerAt : Date.now() });
		});
		state.stop = () => instance.stop();
		instance.on("response", (_client: unknown, status: number, bytes: number, ms: number) => {
			lastAnswerAt = Date.now();
			if (status >= 200 && status < 300) {
				c.latencies.push(ms);
				c.bytes += bytes;
			}
		});
	});
}

/**
 * Open-loop pacing for paced events jobs: request i is sent at start + i / rate, whatever the
 * earlier ones are doing, over at most `connections` keep-alive sockets. (autocannon's
 * overallRate gives each connection a whole number of requests per second, so 50/s over 32
 * connections runs 14 of them at 1/s and 18 at 2/s, and a fixed amount then takes as long as
 * the slow ones need: the offered rate was really ~3,100 events/s, not 5,000.)
 */
function runPaced(
	job: Job,
	request: autocannon.Request,
	amount: number,
	rate: number,
): Promise<{ result: autocannon.Result; c: Collected; startedAt: number; endedAt: number }> {
	const c: Collected = { latencies: [], tiers: {}, non2xx: {}, accepted: 0, firstErrorBodies: [], bytes: 0, timings: [] };
	const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
	const url = new URL(request.path ?? "/", job.url);
	let errors = 0;
	let done = 0;
	const startedAt = Date.now();
	const t0 = performance.now();
	return new Promise((resolve) => {
		const finish = () => {
			if (++done < amount) return;
			agent.destroy();
			const result = { requests: { total: amount }, errors, timeouts: 0 } as unknown as autocannon.Result;
			resolve({ result, c, startedAt, endedAt: Date.now() });
		};
		const send = (i: number) => {
			const setup = request.setupRequest;
			if (!setup) throw new Error("paced jobs build each body with setupRequest");
			const body = String(setup({ ...request }, {})?.body ?? "");
			const sentAt = performance.now();
			const req = http.request(
				url,
				{ method: "POST", agent, headers: { ...(request.headers as Record<string, string>), "content-length": Buffer.byteLength(body) } },
				(res) => {
					const chunks: Buffer[] = [];
					res.on("data", (d: Buffer) => chunks.push(d));
					res.on("end", () => {
						const status = res.statusCode ?? 0;
						const text = Buffer.concat(chunks).toString();
						if (status >= 200 && status < 300) {
							c.latencies.push(performance.now() - sentAt);
							c.bytes += text.length;
							c.tiers["-"] = (c.tiers["-"] ?? 0) + 1;
							c.accepted += acceptedOf(text);
						} else {
							c.non2xx[status] = (c.non2xx[status] ?? 0) + 1;
							if (c.firstErrorBodies.length < 3) c.firstErrorBodies.push(`${status} ${text.slice(0, 2000)}`);
						}
						finish();
					});
				},
			);
			req.on("error", () => {
				errors++;
				finish();
			});
			req.end(body);
			if (i + 1 < amount) setTimeout(() => send(i + 1), Math.max(0, t0 + ((i + 1) * 1000) / rate - performance.now()));
		};
		send(0);
	});
}

/** Freshness: send one upsert, then read the key until the new value shows; the lag is 202 -> first read seeing it. */
async function probeLoop(job: Job, loop: number, until: () => boolean, out: { samples: number[]; timeouts: number }): Promise<void> {
	const p = job.probes;
	if (!p) return;
	const auth = { authorization: `Bearer ${job.token}` };
	const readAuth = { authorization: `Bearer ${p.readToken}` };
	const value = makeValue(loop, 7);
	for (let n = 0; !until(); n++) {
		const key = `${p.prefix}${loop}_${String(n).padStart(6, "0")}`;
		const marker = `probe-${loop}-${n}-${Date.now()}`;
		const res = await fetch(new URL("/v1/events", job.url), {
			method: "POST",
			headers: { ...auth, "content-type": "application/json" },
			body: JSON.stringify([{ dataset: DATASET, key, op: "upsert", value: { ...value, label: marker } }]),
		});
		await res.arrayBuffer();
		if (res.status !== 202) {
			await sleep(50);
			continue;
		}
		const t0 = performance.now();
		for (;;) {
			const r = await fetch(new URL(`/v1/datasets/${DATASET}/records/${key}?fields=label`, job.url), { headers: readAuth });
			const text = await r.text();
			if (r.status === 200 && text.includes(marker)) {
				out.samples.push(performance.now() - t0);
				break;
			}
			if (performance.now() - t0 > p.timeoutMs) {
				out.timeouts++;
				break;
			}
			await sleep(p.pollMs);
		}
	}
}

async function run(job: Job, waitGo: () => Promise<void>, warmed: () => void): Promise<LoadResult> {
	const { request, state } = makeRequest(job);
	if (job.warmupRequests) await runCannon(job, request, state, 0, job.warmupRequests);
	if (job.warmupS > 0) await runCannon(job, request, state, job.warmupS);
	const usedBefore = state.used;
	warmed();
	await waitGo();
	const cpu0 = process.cpuUsage();
	const t0 = performance.now();
	let measuring = true;
	const fresh = { samples: [] as number[], timeouts: 0 };
	const probes = job.probes ? Array.from({ length: job.probes.loops }, (_, i) => probeLoop(job, i, () => !measuring, fresh)) : [];
	const { result, c, startedAt, endedAt } =
		job.rate && job.amount && (job.gen.kind === "events" || job.gen.kind === "facts")
			? await runPaced(job, request, job.amount, job.rate)
			: await runCannon(job, request, state, job.durationS, job.amount);
	measuring = false;
	await Promise.all(probes);
	const elapsedS = (performance.now() - t0) / 1000;
	const cpu = process.cpuUsage(cpu0);
	const cpuMs = (cpu.user + cpu.system) / 1000;
	const [p50, p90, p99, p999] = percentiles(c.latencies, [50, 90, 99, 99.9]);
	const ok = c.latencies.length;
	const cannonS = (endedAt - startedAt) / 1000;
	return {
		requests: result.requests.total,
		ok,
		non2xx: c.non2xx,
		errors: result.errors,
		timeouts: result.timeouts,
		elapsedS: cannonS,
		rps: ok / cannonS,
		latency: {
			p50: p50 as number,
			p90: p90 as number,
			p99: p99 as number,
			p999: p999 as number,
			mean: ok ? c.latencies.reduce((a, b) => a + b, 0) / ok : Number.NaN,
			max: ok ? Math.max(...c.latencies) : Number.NaN,
		},
		tiers: c.tiers,
		exhausted: state.exhausted,
		keysUsed: state.used - (job.gen.kind === "keys" ? 0 : usedBefore),
		accepted: c.accepted,
		startedAt,
		endedAt,
		firstErrorBodies: c.firstErrorBodies,
		cpuMs,
		cpuShare: cpuMs / (elapsedS * 1000),
		freshness: job.probes ? fresh : undefined,
		bytesPerResponse: ok ? c.bytes / ok : 0,
		...(job.serverTiming ? { serverTiming: serverTimingSummary(job.serverTiming, c.timings) } : {}),
	};
}

function serverTimingSummary(name: string, xs: number[]): NonNullable<LoadResult["serverTiming"]> {
	const [p50, p99] = percentiles(xs, [50, 99]);
	return { name, n: xs.length, p50: p50 as number, p99: p99 as number, mean: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN };
}

if (process.send) {
	let go: (() => void) | null = null;
	process.on("message", (msg: { type: string; job?: Job; schedule?: ScheduleJob }) => {
		if (msg.type === "go") go?.();
		// The fixed-load scenario: one open-loop schedule of windows, no warm-up handshake (its warm-ups are windows).
		if (msg.type === "schedule" && msg.schedule) {
			runSchedule(msg.schedule).then(
				(result) => process.send?.({ type: "result", result }, () => process.exit(0)),
				(err: unknown) => process.send?.({ type: "error", error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
			);
		}
		if (msg.type === "run" && msg.job) {
			const job = msg.job;
			run(
				job,
				() => new Promise<void>((r) => (go = r)),
				() => process.send?.({ type: "warmed" }),
			).then(
				(result) => process.send?.({ type: "result", result }, () => process.exit(0)),
				(err: unknown) => process.send?.({ type: "error", error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
			);
		}
	});
	process.send({ type: "ready" });
}
