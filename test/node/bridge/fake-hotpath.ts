/**
 * A small HTTP server that answers like Hotpath's POST /v1/events and GET /v1/datasets/:name: it checks
 * the bearer key, records the events it accepts, and can be told to answer 503 or to refuse connections.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedEvent {
	id: string;
	dataset: string;
	key: string;
	op: string;
	value?: Record<string, unknown>;
	event_time?: number | string;
}

export interface FakeHotpath {
	url: string;
	key: string;
	/** Every event accepted, in arrival order, duplicates included. */
	events: RecordedEvent[];
	/** POSTs answered, by status. */
	answers: Map<number, number>;
	/** "ok", "503" (every POST answered 503 with Retry-After 0) or "down" (connections refused). */
	setMode(mode: "ok" | "503" | "down"): Promise<void>;
	/** Events for which this returns a string are rejected by index with that error. */
	rejectWhen: ((e: RecordedEvent) => string | undefined) | undefined;
	/** How long each POST waits before it is answered (and its events recorded). */
	delayMs: number;
	/** Distinct ids accepted. */
	ids(): Set<string>;
	/** The newest (by event_time, then id) event per key of a dataset, as Hotpath would converge. */
	latest(dataset: string): Map<string, RecordedEvent>;
	close(): Promise<void>;
}

const readBody = (req: IncomingMessage) =>
	new Promise<string>((resolve, reject) => {
		const chunks: Buffer[] = [];
		req.on("data", (c: Buffer) => chunks.push(c));
		req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
		req.on("error", reject);
	});

const time = (t: number | string | undefined) => (typeof t === "string" ? Date.parse(t) : (t ?? 0));

/** `fields`: a dataset's field names, answered by GET /v1/datasets/:name as Hotpath does (default: none). */
export async function startFakeHotpath(opts: { datasets: string[]; key?: string; port?: number; fields?: Record<string, string[]> }): Promise<FakeHotpath> {
	const key = opts.key ?? "test-key";
	const datasets = new Set(opts.datasets);
	let mode: "ok" | "503" | "down" = "ok";
	const answers = new Map<number, number>();
	const answer = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
		answers.set(status, (answers.get(status) ?? 0) + 1);
		res.writeHead(status, { "content-type": status >= 400 ? "application/problem+json" : "application/json", ...headers }).end(JSON.stringify(body));
	};
	const fake: FakeHotpath = {
		url: "",
		key,
		events: [],
		answers,
		rejectWhen: undefined,
		delayMs: 0,
		setMode: async (m) => {
			const wasDown = mode === "down";
			mode = m;
			if (m === "down" && !wasDown) {
				server.closeAllConnections();
				await new Promise<void>((resolve) => server.close(() => resolve()));
			} else if (m !== "down" && wasDown) {
				await listen(port);
			}
		},
		ids: () => new Set(fake.events.map((e) => e.id)),
		latest: (dataset) => {
			const out = new Map<string, RecordedEvent>();
			for (const e of fake.events) {
				if (e.dataset !== dataset) continue;
				const prev = out.get(e.key);
				if (!prev || time(e.event_time) > time(prev.event_time) || (time(e.event_time) === time(prev.event_time) && e.id > prev.id)) out.set(e.key, e);
			}
			return out;
		},
		close: async () => {
			if (mode === "down") return;
			server.closeAllConnections();
			await new Promise<void>((resolve) => server.close(() => resolve()));
		},
	};

	const server: Server = createServer(async (req, res) => {
		const body = await readBody(req);
		if (req.headers.authorization !== `Bearer ${key}`) return answer(res, 401, { status: 401, title: "Unauthorized", detail: "unknown key" });
		if (mode === "503") return answer(res, 503, { status: 503, title: "Service Unavailable", detail: "simulated outage" }, { "retry-after": "0" });
		const url = new URL(req.url ?? "/", "http://x");
		const ds = /^\/v1\/datasets\/([^/]+)$/.exec(url.pathname);
		if (req.method === "GET" && ds) {
			const name = decodeURIComponent(ds[1] as string);
			const fields = opts.fields?.[name];
			const spec = fields ? { name, fields: Object.fromEntries(fields.map((f) => [f, { type: "string" }])) } : { name };
			return datasets.has(name) ? answer(res, 200, spec) : answer(res, 404, { status: 404, detail: `dataset "${name}" does not exist` });
		}
		if (req.method !== "POST" || url.pathname !== "/v1/events") return answer(res, 404, { status: 404, detail: "not found" });
		if (fake.delayMs) await new Promise((r) => setTimeout(r, fake.delayMs));
		if (mode !== "ok") return res.destroy();
		const events = JSON.parse(body) as RecordedEvent[];
		const rejected: { index: number; error: string }[] = [];
		const good: RecordedEvent[] = [];
		events.forEach((e, index) => {
			const why = !datasets.has(e.dataset)
				? `dataset "${e.dataset}" does not exist`
				: typeof e.id !== "string" || !e.id || e.id.length > 128
					? "bad id"
					: (fake.rejectWhen?.(e) ?? undefined);
			if (why) rejected.push({ index, error: why });
			else good.push(e);
		});
		if (!good.length) {
			return answer(res, 400, {
				status: 400,
				title: "Bad Request",
				detail: `none of the ${rejected.length} event(s) is valid`,
				errors: rejected.map((r) => ({ pointer: `/${r.index}`, detail: r.error })),
			});
		}
		fake.events.push(...good);
		answer(res, 202, { accepted: good.length, rejected });
	});
	const listen = (p: number) =>
		new Promise<void>((resolve, reject) => {
			server.once("error", reject);
			server.listen(p, "127.0.0.1", () => {
				server.off("error", reject);
				resolve();
			});
		});
	await listen(opts.port ?? 0);
	const port = (server.address() as AddressInfo).port;
	fake.url = `http://127.0.0.1:${port}`;
	return fake;
}
