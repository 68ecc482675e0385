// The Hotpath side of the bridge: which answers are final, which are fatal, which are retried and how.
import { describe, expect, it } from "vitest";
import { FatalTargetError, HotpathTarget, retryAfterMs } from "../../../cli/bridge/target.ts";

type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | Error;

/** A fetch that answers from a script and records what it was asked. */
function scripted(answers: Answer[] | ((body: unknown[]) => Answer)) {
	const calls: { url: string; body: unknown[] | undefined; auth: string | null }[] = [];
	const fetchFn = (async (url: string, init?: RequestInit) => {
		const body = init?.body ? (JSON.parse(String(init.body)) as unknown[]) : undefined;
		calls.push({ url, body, auth: new Headers(init?.headers).get("authorization") });
		const a = typeof answers === "function" ? answers(body ?? []) : answers.shift();
		if (!a) throw new Error("no more answers");
		if (a instanceof Error) throw a;
		return new Response(a.body === undefined ? null : JSON.stringify(a.body), { status: a.status, headers: a.headers });
	}) as typeof fetch;
	return { fetchFn, calls };
}

const target = (fetchFn: typeof fetch, onRetry?: (reason: string, delay: number) => void) =>
	new HotpathTarget({ url: "http://hp", key: "sekret", timeoutMs: 1000, retry: { initialMs: 10, maxMs: 40 }, fetch: fetchFn, onRetry });

const events = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ id: `e${i}`, dataset: "d", key: `k${i}`, op: "upsert", value: {} }));

describe("HotpathTarget.post", () => {
	it("202: accepted and per-index rejections, with the bearer key", async () => {
		const { fetchFn, calls } = scripted([{ status: 202, body: { accepted: 2, rejected: [{ index: 1, error: "value.x: unknown field" }] } }]);
		expect(await target(fetchFn).post(events(3))).toEqual({ accepted: 2, rejected: [{ index: 1, error: "value.x: unknown field" }] });
		expect(calls[0]).toMatchObject({ url: "http://hp/v1/events", auth: "Bearer sekret" });
		expect(calls[0]?.body).toHaveLength(3);
	});

	it("400 (none valid): every event rejected for good, each with its own reason", async () => {
		const { fetchFn } = scripted([
			{
				status: 400,
				body: {
					detail: "none of the 2 event(s) is valid",
					errors: [
						{ pointer: "/0", detail: "bad a" },
						{ pointer: "/1", detail: "bad b" },
					],
				},
			},
		]);
		expect(await target(fetchFn).post(events(2))).toEqual({
			accepted: 0,
			rejected: [
				{ index: 0, error: "bad a" },
				{ index: 1, error: "bad b" },
			],
		});
	});

	it("400 with an item at each unknown member of an event (/0/ttl, /0/x~1y): the event's one reject names both", async () => {
		const { fetchFn } = scripted([
			{
				status: 400,
				body: {
					detail: "none of the 2 event(s) is valid",
					errors: [
						{ pointer: "/0/ttl", detail: 'unknown property "ttl"' },
						{ pointer: "/0/x~1y", detail: 'unknown property "x/y"' },
						{ pointer: "/1", detail: "bad b" },
					],
				},
			},
		]);
		expect(await target(fetchFn).post(events(2))).toEqual({
			accepted: 0,
			rejected: [
				{ index: 0, error: 'unknown property "ttl"; unknown property "x/y"' },
				{ index: 1, error: "bad b" },
			],
		});
	});

	it("429, 5xx and network errors are retried with growing waits, Retry-After honoured; nothing is answered until Hotpath does", async () => {
		const delays: number[] = [];
		const { fetchFn, calls } = scripted([
			new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } }),
			{ status: 503, body: { detail: "down" } },
			{ status: 502 },
			{ status: 429, body: {}, headers: { "retry-after": "0.05" } },
			{ status: 202, body: { accepted: 1, rejected: [] } },
		]);
		const reasons: string[] = [];
		const t = target(fetchFn, (reason, delay) => {
			reasons.push(reason);
			delays.push(delay);
		});
		expect(await t.post(events(1))).toEqual({ accepted: 1, rejected: [] });
		expect(calls).toHaveLength(5);
		expect(reasons[0]).toContain("ECONNREFUSED");
		expect(reasons[1]).toContain("503");
		expect(delays[3]).toBe(50);
		expect(delays[2] as number).toBeGreaterThanOrEqual(10);
		expect(delays[2] as number).toBeLessThanOrEqual(40);
		expect(t.failing).toBe(false);
	});

	it("401, 403 and 404 are fatal config errors", async () => {
		for (const [status, message] of [
			[401, /refused the key/],
			[403, /may not write/],
			[404, /is target.url right/],
		] as const) {
			const { fetchFn } = scripted([{ status, body: { detail: "x" } }]);
			await expect(target(fetchFn).post(events(1))).rejects.toThrow(message);
			const again = scripted([{ status, body: {} }]);
			await expect(target(again.fetchFn).post(events(1))).rejects.toBeInstanceOf(FatalTargetError);
		}
	});

	it("413: the batch is split until it fits; one event still too large is rejected", async () => {
		const { fetchFn, calls } = scripted((body) =>
			body.length > 2
				? { status: 413, body: { detail: "too many" } }
				: body.some((e) => (e as { key: string }).key === "k4")
					? body.length === 1
						? { status: 413, body: { detail: "event too big" } }
						: { status: 413, body: { detail: "too big" } }
					: { status: 202, body: { accepted: body.length, rejected: [] } },
		);
		const res = await target(fetchFn).post(events(5));
		expect(res).toEqual({ accepted: 4, rejected: [{ index: 4, error: "too large: event too big" }] });
		expect(calls.length).toBeGreaterThan(3);
	});
});

describe("HotpathTarget.checkDataset", () => {
	it("ok on 200, unchecked on 403 (a key without read), fatal on 404 and 401", async () => {
		expect(await target(scripted([{ status: 200, body: {} }]).fetchFn).checkDataset("d")).toBe("ok");
		expect(await target(scripted([{ status: 403, body: {} }]).fetchFn).checkDataset("d")).toBe("unchecked");
		await expect(target(scripted([{ status: 404, body: {} }]).fetchFn).checkDataset("nope")).rejects.toThrow(/dataset "nope" does not exist/);
		await expect(target(scripted([{ status: 401, body: {} }]).fetchFn).checkDataset("d")).rejects.toThrow(/refused the key/);
	});
});

describe("retryAfterMs", () => {
	it("reads delta-seconds and HTTP dates", () => {
		expect(retryAfterMs("3")).toBe(3000);
		expect(retryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000);
		expect(retryAfterMs(null)).toBeUndefined();
		expect(retryAfterMs("soon")).toBeUndefined();
	});
});
