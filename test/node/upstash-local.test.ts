// The local Upstash-compatible endpoint, driven by the real @upstash/redis client (default options) over a real redis-server.
import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { type RedisServerHandle, startRedisServer } from "../../scripts/lib/redis-server.ts";
import { startUpstashLocal, type UpstashLocal } from "../../scripts/upstash-local.ts";

const TOKEN = "test-token";
const quiet = (): void => undefined;

let endpoint: UpstashLocal;
let redis: Redis;
let direct: IORedis; // straight to redis-server, to check what really got stored
const prefix = `hp-test:${randomUUID()}:`;
const key = (name: string): string => prefix + name;

async function raw(
	body: string,
	{ path = "/", token = TOKEN, base64 = false }: { path?: string; token?: string | null; base64?: boolean } = {},
): Promise<{ status: number; json: unknown }> {
	const headers: Record<string, string> = { "content-type": "application/json" };
	if (token !== null) headers.authorization = `Bearer ${token}`;
	if (base64) headers["upstash-encoding"] = "base64";
	const res = await fetch(endpoint.url + path, { method: "POST", headers, body });
	return { status: res.status, json: await res.json() };
}

beforeAll(async () => {
	const redisUrl = inject("redisUrl");
	endpoint = await startUpstashLocal({ redisUrl, token: TOKEN, log: quiet });
	redis = new Redis({ url: endpoint.url, token: TOKEN });
	direct = new IORedis(redisUrl);
});

afterAll(async () => {
	direct?.disconnect();
	await endpoint?.close();
});

describe("strings and JSON values", () => {
	it("round-trips JSON objects", async () => {
		const value = { id: 42, tags: ["a", "b"], nested: { ok: true, score: 0.5 }, none: null };
		expect(await redis.set(key("obj"), value)).toBe("OK");
		expect(await redis.get(key("obj"))).toEqual(value);
	});

	it("round-trips unicode strings byte-exactly", async () => {
		const values = ["héllo 🌍", "日本語のテキスト", "中文字符", "한국어", "mixed ✓ ünïcödé 🚀🔥"];
		await Promise.all(values.map((v, i) => redis.set(key(`uni:${i}`), v)));
		const got = await Promise.all(values.map((_, i) => redis.get<string>(key(`uni:${i}`))));
		expect(got).toEqual(values);
		for (const [i, v] of values.entries()) {
			expect(await direct.getBuffer(key(`uni:${i}`))).toEqual(Buffer.from(v, "utf8"));
		}
	});

	it("returns null for a missing key and supports SET options", async () => {
		expect(await redis.get(key("missing"))).toBeNull();
		expect(await redis.set(key("ttl"), "v", { ex: 100 })).toBe("OK");
		const ttl = await redis.ttl(key("ttl"));
		expect(ttl).toBeGreaterThan(90);
		expect(ttl).toBeLessThanOrEqual(100);
		expect(await redis.set(key("ttl"), "w", { nx: true })).toBeNull();
	});

	it("mget returns values in order with null for missing keys", async () => {
		await redis.set(key("m1"), { n: 1 });
		await redis.set(key("m2"), "plain ✓");
		expect(await redis.mget(key("m1"), key("m2"), key("m-missing"))).toEqual([{ n: 1 }, "plain ✓", null]);
	});

	it("auto-pipelines concurrent commands into one POST /pipeline", async () => {
		const spy = vi.spyOn(globalThis, "fetch");
		try {
			const [a, b, c] = await Promise.all([redis.incr(key("ap")), redis.incr(key("ap")), redis.incr(key("ap"))]);
			expect([a, b, c]).toEqual([1, 2, 3]);
			expect(spy).toHaveBeenCalledTimes(1);
			const [url, init] = spy.mock.calls[0]!;
			expect(String(url)).toBe(`${endpoint.url}/pipeline`);
			const headers = init?.headers as Record<string, string>;
			expect(headers.authorization).toBe(`Bearer ${TOKEN}`);
			expect(headers["Upstash-Encoding"]).toBe("base64");
			expect(JSON.parse(String(init?.body))).toEqual([
				["incr", key("ap")],
				["incr", key("ap")],
				["incr", key("ap")],
			]);
		} finally {
			spy.mockRestore();
		}
	});
});

describe("hashes and sorted sets", () => {
	it("hset / hget / hgetall", async () => {
		expect(await redis.hset(key("h"), { name: "Zoë 🌍", count: 3, meta: { x: [1, 2] } })).toBe(3);
		expect(await redis.hget(key("h"), "name")).toBe("Zoë 🌍");
		expect(await redis.hgetall(key("h"))).toEqual({ name: "Zoë 🌍", count: 3, meta: { x: [1, 2] } });
		expect(await redis.hgetall(key("h-missing"))).toBeNull();
	});

	it("zadd / zrange with scores", async () => {
		expect(await redis.zadd(key("z"), { score: 2.5, member: "b" }, { score: 1, member: "a" }, { score: 10, member: "c" })).toBe(3);
		expect(await redis.zrange(key("z"), 0, -1)).toEqual(["a", "b", "c"]);
		expect(await redis.zrange(key("z"), 0, 1, { withScores: true })).toEqual(["a", 1, "b", 2.5]);
		expect(await redis.zscore(key("z"), "c")).toBe(10);
	});
});

describe("pipelines and transactions", () => {
	it("pipeline returns results in order", async () => {
		const p = redis.pipeline();
		p.set(key("p:s"), { v: "é" });
		p.incr(key("p:n"));
		p.incrby(key("p:n"), 10);
		p.get(key("p:s"));
		p.hset(key("p:h"), { f: "v" });
		p.hget(key("p:h"), "f");
		expect(await p.exec()).toEqual(["OK", 1, 11, { v: "é" }, 1, "v"]);
	});

	it("a failing command in a pipeline does not fail the others", async () => {
		await redis.set(key("p:str"), "not a number");
		const p = redis.pipeline();
		p.set(key("p:a"), "a");
		p.incr(key("p:str"));
		p.get(key("p:a"));
		const results = await p.exec({ keepErrors: true });
		expect(results.map((r) => r.result)).toEqual(["OK", undefined, "a"]);
		expect(results[1]!.error).toMatch(/^ERR value is not an integer/);
		// without keepErrors the client throws, naming the command
		const q = redis.pipeline();
		q.get(key("p:a"));
		q.incr(key("p:str"));
		await expect(q.exec()).rejects.toThrow(/Command 2 \[ incr \] failed: ERR value is not an integer/);
	});

	it("multi-exec returns results in order", async () => {
		const tx = redis.multi();
		tx.set(key("tx"), 1);
		tx.incr(key("tx"));
		tx.incrby(key("tx"), 5);
		tx.get(key("tx"));
		tx.zadd(key("tx:z"), { score: 1, member: "m" });
		expect(await tx.exec()).toEqual(["OK", 2, 7, 7, 1]);
	});

	it("multi-exec is not interleaved with concurrent writers", async () => {
		const counter = key("tx:counter");
		const transactions = Array.from({ length: 20 }, () => {
			const tx = redis.multi();
			tx.incr(counter);
			tx.incr(counter);
			tx.get(counter);
			return tx.exec<[number, number, number]>();
		});
		const plain = Array.from({ length: 20 }, () => redis.incr(counter));
		const [results] = await Promise.all([Promise.all(transactions), Promise.all(plain)]);
		for (const [first, second, read] of results) {
			expect(second).toBe(first + 1);
			expect(read).toBe(second);
		}
		expect(await redis.get(counter)).toBe(60);
	});

	it("a runtime error inside multi-exec is reported for that command only", async () => {
		await redis.set(key("tx:str"), "abc");
		const tx = redis.multi();
		tx.set(key("tx:b"), "b");
		tx.incr(key("tx:str"));
		tx.get(key("tx:b"));
		await expect(tx.exec()).rejects.toThrow(/Command 2 \[ incr \] failed: ERR value is not an integer/);
		expect(await redis.get(key("tx:b"))).toBe("b"); // the other commands ran
	});
});

describe("Lua scripts", () => {
	// The shape the worker uses: write only if the incoming version is newer.
	const guardedWrite = `
    local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
    if tonumber(ARGV[1]) > current then
      redis.call('HSET', KEYS[1], 'version', ARGV[1], 'body', ARGV[2])
      return 1
    end
    return 0`;

	it("eval with keys and args returns numbers and strings", async () => {
		expect(await redis.eval(guardedWrite, [key("lua:doc")], [2, "v2 ✓"])).toBe(1);
		expect(await redis.eval(guardedWrite, [key("lua:doc")], [1, "v1"])).toBe(0);
		expect(await redis.hgetall(key("lua:doc"))).toEqual({ version: 2, body: "v2 ✓" });
		expect(await redis.eval("return ARGV[1] .. ' ' .. redis.call('HGET', KEYS[1], 'body')", [key("lua:doc")], ["héllo"])).toBe("héllo v2 ✓");
		expect(await redis.eval("return {1, 'two', {3, 'ü'}, redis.call('PING')}", [], [])).toEqual([1, "two", [3, "ü"], "PONG"]);
	});

	it("evalsha after scriptLoad, and NOSCRIPT for an unknown sha", async () => {
		const sha = await redis.scriptLoad(guardedWrite);
		expect(sha).toMatch(/^[0-9a-f]{40}$/);
		expect(await redis.evalsha(sha, [key("lua:sha")], [5, "five"])).toBe(1);
		expect(await redis.evalsha(sha, [key("lua:sha")], [5, "again"])).toBe(0);
		expect(await redis.hget(key("lua:sha"), "body")).toBe("five");
		await expect(redis.evalsha("0".repeat(40), [], [])).rejects.toThrow(/NOSCRIPT/);
	});

	it("createScript().exec falls back from EVALSHA to EVAL", async () => {
		const script = redis.createScript<number>(`return redis.call('INCRBY', KEYS[1], ARGV[1]) .. ''`);
		await direct.script("FLUSH");
		expect(await script.exec([key("lua:script")], ["3"])).toBe(3);
		expect(await script.exec([key("lua:script")], ["4"])).toBe(7);
	});

	it("a Lua error surfaces as a thrown error", async () => {
		await expect(redis.eval("return redis.error_reply('ERR version conflict')", [], [])).rejects.toThrow(/ERR version conflict/);
	});
});

describe("errors and auth", () => {
	it("a Redis command error is thrown with the Redis message", async () => {
		await redis.set(key("err"), "abc");
		await expect(redis.incr(key("err"))).rejects.toThrow(/ERR value is not an integer or out of range/);
		const res = await raw(JSON.stringify(["INCR", key("err")]));
		expect(res).toEqual({ status: 400, json: { error: "ERR value is not an integer or out of range" } });
	});

	it("a wrong or missing token is rejected with 401", async () => {
		const wrong = new Redis({ url: endpoint.url, token: "wrong-token" });
		await expect(wrong.get(key("x"))).rejects.toThrow(/Unauthorized/);
		expect(await raw(JSON.stringify(["PING"]), { token: "nope" })).toEqual({
			status: 401,
			json: { error: "Unauthorized" },
		});
		expect(await raw(JSON.stringify(["PING"]), { token: null })).toEqual({
			status: 401,
			json: { error: "Unauthorized" },
		});
	});

	it("malformed bodies are 400 and do not break the server", async () => {
		for (const [path, body] of [
			["/", "{not json"],
			["/", '{"a":1}'],
			["/", "[]"],
			["/", '["SET","k",{"nested":1}]'],
			["/", '["SET","k",null]'],
			["/pipeline", '[["SET"'],
			["/pipeline", '["GET","k"]'],
			["/multi-exec", "null"],
		] as const) {
			const res = await raw(body, { path });
			expect(res.status, `${path} ${body}`).toBe(400);
			expect((res.json as { error: string }).error).toMatch(/^ERR /);
		}
		expect((await raw(JSON.stringify(["PING"]))).json).toEqual({ result: "PONG" });
	});

	it("a transaction with a queueing error is discarded as a whole", async () => {
		const res = await raw(
			JSON.stringify([
				["SET", key("disc"), "x"],
				["SET", key("disc")],
			]),
			{ path: "/multi-exec" },
		);
		expect(res.status).toBe(400);
		expect((res.json as { error: string }).error).toMatch(/^EXECABORT.*wrong number of arguments/);
		expect(await redis.get(key("disc"))).toBeNull();
	});
});

describe("raw protocol", () => {
	it("accepts number and boolean arguments", async () => {
		expect(await raw(JSON.stringify(["SET", key("num"), 42, "EX", 100]))).toEqual({ status: 200, json: { result: "OK" } });
		expect(await raw(JSON.stringify(["GET", key("num")]))).toEqual({ status: 200, json: { result: "42" } });
		// Redis rounds the TTL left down to whole seconds: 100 right after the SET, 99 half a second later.
		const ttl = (await raw(JSON.stringify(["TTL", key("num")]))).json as { result: number };
		expect(ttl.result).toBeGreaterThanOrEqual(95);
		expect(ttl.result).toBeLessThanOrEqual(100);
		expect(await raw(JSON.stringify(["SET", key("bool"), true]))).toEqual({ status: 200, json: { result: "OK" } });
		expect(await raw(JSON.stringify(["GET", key("bool")]))).toEqual({ status: 200, json: { result: "true" } });
		expect(await raw(JSON.stringify(["INCRBYFLOAT", key("float"), 1.5]))).toEqual({ status: 200, json: { result: "1.5" } });
	});

	it("base64-encodes every string at any depth, keeps numbers, null and a top-level OK", async () => {
		const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
		expect(await raw(JSON.stringify(["SET", key("b64"), "héllo 🌍"]), { base64: true })).toEqual({
			status: 200,
			json: { result: "OK" },
		});
		expect((await raw(JSON.stringify(["GET", key("b64")]), { base64: true })).json).toEqual({ result: b64("héllo 🌍") });
		expect((await raw(JSON.stringify(["GET", key("b64:none")]), { base64: true })).json).toEqual({ result: null });
		expect((await raw(JSON.stringify(["EVAL", "return {7, 'a', {'OK', 8}, false}", 0]), { base64: true })).json).toEqual({
			result: [7, b64("a"), [b64("OK"), 8], null],
		});
		expect(
			(
				await raw(
					JSON.stringify([
						["GET", key("b64")],
						["EXISTS", key("b64")],
						["INCR", key("b64")],
					]),
					{
						path: "/pipeline",
						base64: true,
					},
				)
			).json,
		).toEqual([{ result: b64("héllo 🌍") }, { result: 1 }, { error: "ERR value is not an integer or out of range" }]);
	});

	it("supports path-style commands", async () => {
		const get = async (path: string): Promise<unknown> => (await fetch(endpoint.url + path, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
		expect(await get(`/set/${encodeURIComponent(key("path"))}/bar?EX=100`)).toEqual({ result: "OK" });
		expect(await get(`/get/${encodeURIComponent(key("path"))}`)).toEqual({ result: "bar" });
		expect(await get(`/get/${encodeURIComponent(key("path"))}?_token=${TOKEN}`)).toEqual({ result: "bar" });
	});
});

describe("Redis outage", () => {
	let server: RedisServerHandle;
	let local: UpstashLocal;
	let client: Redis;

	beforeAll(async () => {
		server = await startRedisServer();
		local = await startUpstashLocal({ redisUrl: server.url, token: TOKEN, log: quiet });
		client = new Redis({ url: local.url, token: TOKEN });
	});

	afterAll(async () => {
		await local?.close();
		await server?.stop();
	});

	it("fails fast while Redis is down and recovers after a restart", async () => {
		expect(await client.set("outage:k", "before")).toBe("OK");
		await server.kill();

		for (const attempt of [
			() => client.get("outage:k"),
			() => client.hgetall("outage:h"), // not auto-pipelined: POST /
			() => client.multi().get("outage:k").exec(),
		]) {
			const started = Date.now();
			await expect(attempt()).rejects.toThrow(/Redis unavailable/);
			expect(Date.now() - started).toBeLessThan(2000);
		}

		await server.restart();
		const deadline = Date.now() + 10_000;
		let value: unknown = "unset";
		while (Date.now() < deadline) {
			try {
				value = await client.get("outage:k");
				break;
			} catch {
				await new Promise((resolve) => setTimeout(resolve, 100));
			}
		}
		expect(value).toBeNull(); // a fresh server without persistence: the data is gone
		expect(await client.set("outage:k", "after")).toBe("OK");
		expect(await client.get("outage:k")).toBe("after");
		expect(await client.multi().incr("outage:n").incr("outage:n").exec()).toEqual([1, 2]);
	});
});
