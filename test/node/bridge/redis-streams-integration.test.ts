// The redis-streams source against the real Redis on 127.0.0.1:6379 and a fake Hotpath.
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { freePort } from "../../../scripts/lib/redis-server.ts";
import { startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, readNdjson, runToExit, spawnBridge, testTarget } from "./harness.ts";
import { REDIS_URL, redisStreamsFixture } from "./redis-fixture.ts";

const fx = redisStreamsFixture();

beforeEach(async () => {
	fx.fake.events.length = 0;
	fx.fake.delayMs = 0;
	await fx.fake.setMode("ok");
});

const newStream = () => fx.newStream();

const config = (stream: string, extra: object = {}) => ({
	...testTarget(fx.fake.url, fx.fake.key),
	batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4 },
	sources: [
		{
			type: "redis-streams",
			name: "profiles",
			dataset: "users",
			map: { key: "/user_id", event_time: "/ts" },
			url: REDIS_URL,
			stream,
			group: "hotpath",
			consumer: "bridge-1",
			reject_log: path.join(fx.scratch.dir, `rejects-${stream.replaceAll(":", "_")}.ndjson`),
			...extra,
		},
	],
});

const add = async (stream: string, from: number, to: number) => {
	const p = fx.redis.pipeline();
	for (let i = from; i < to; i++) p.xadd(stream, "*", "user_id", `u${i}`, "country", i % 2 ? "DE" : "FR");
	await p.exec();
};

const pendingCount = async (stream: string) => Number(((await fx.redis.xpending(stream, "hotpath")) as [number])[0]);

describe("redis-streams source", () => {
	it("delivers flat entries and `json` entries with the right values; unmappable ones are logged, counted and acked", async () => {
		const stream = newStream();
		await add(stream, 0, 200);
		await fx.redis.xadd(stream, "*", "json", JSON.stringify({ user_id: 7, country: "US", ts: "2026-01-02T03:04:05Z" }));
		await fx.redis.xadd(stream, "*", "json", "{not json");
		await fx.redis.xadd(stream, "*", "country", "no key");

		const bridge = await spawnBridge(config(stream), fx.scratch.dir, ["profiles"]);
		await eventually(() => (fx.fake.ids().size === 201 ? true : undefined), 20_000, "201 events");
		// lag (XINFO GROUPS: undelivered + pending) is refreshed with the status line, every second here.
		await eventually(async () => {
			const m = (await bridge.metrics()).sources.profiles;
			return m?.acked === 203 && m.lag === 0 ? true : undefined;
		});
		expect((await bridge.metrics()).sources.profiles).toMatchObject({ received: 203, sent: 201, rejected: 2, pending: 0, lag: 0 });
		expect(await bridge.stop()).toBe(0);

		const u3 = fx.fake.events.find((e) => e.key === "u3");
		const [ms, seq] = (u3?.id.split(":").at(-1) ?? "").split("-");
		// The members the key and time pointers name are not fields of the value.
		expect(u3).toMatchObject({ dataset: "users", op: "upsert", value: { country: "DE" }, event_time: Number(ms) });
		expect(seq).toMatch(/^\d{20}$/);
		// The `json` field is the message; its own time wins over the entry id's.
		expect(fx.fake.events.find((e) => e.key === "7")).toMatchObject({ value: { country: "US" }, event_time: "2026-01-02T03:04:05Z" });
		const rejects = readNdjson(path.join(fx.scratch.dir, `rejects-${stream.replaceAll(":", "_")}.ndjson`));
		expect(rejects.map((r) => r.error)).toEqual([expect.stringContaining("not valid JSON"), 'no key at "/user_id"']);
		expect(await pendingCount(stream)).toBe(0);
	}, 60_000);

	it("a member the time pointer names that is also a field of the dataset stays in the value (only non-fields are left out)", async () => {
		const withFields = await startFakeHotpath({ datasets: ["users"], fields: { users: ["country", "ts"] } });
		try {
			const stream = newStream();
			await fx.redis.xadd(stream, "*", "user_id", "u1", "country", "DE", "ts", "2026-01-02T03:04:05Z");
			const bridge = await spawnBridge({ ...config(stream), ...testTarget(withFields.url, withFields.key) }, fx.scratch.dir, ["profiles"]);
			await eventually(() => (withFields.events.length ? true : undefined), 20_000, "the event");
			expect(await bridge.stop()).toBe(0);
			// user_id (the key pointer's member) is no field of users: left out; ts is one: kept.
			expect(withFields.events[0]).toMatchObject({ key: "u1", event_time: "2026-01-02T03:04:05Z", value: { country: "DE", ts: "2026-01-02T03:04:05Z" } });
			expect(withFields.events[0]?.value).not.toHaveProperty("user_id");
		} finally {
			await withFields.close();
		}
	}, 60_000);

	it("a field of epoch milliseconds (a Redis field holds only text) is the event_time as a number", async () => {
		const stream = newStream();
		await fx.redis.xadd(stream, "*", "user_id", "u1", "country", "DE", "ts", "1764300000000");
		await fx.redis.xadd(stream, "*", "user_id", "u2", "country", "FR", "ts", "2026-01-02T03:04:05Z");
		const bridge = await spawnBridge(config(stream), fx.scratch.dir, ["profiles"]);
		await eventually(() => (fx.fake.ids().size === 2 ? true : undefined), 20_000, "2 events");
		expect(await bridge.stop()).toBe(0);
		// Hotpath refuses a string of digits as event_time ("send epoch milliseconds as a JSON number").
		expect(fx.fake.events.find((e) => e.key === "u1")).toMatchObject({ event_time: 1764300000000, value: { country: "DE" } });
		expect(fx.fake.events.find((e) => e.key === "u2")).toMatchObject({ event_time: "2026-01-02T03:04:05Z" });
	}, 30_000);

	it("a second SIGTERM while it drains exits at once with 143 (128 + SIGTERM), acknowledging nothing", async () => {
		const stream = newStream();
		const bridge = await spawnBridge(config(stream), fx.scratch.dir, ["profiles"]);
		await fx.fake.setMode("down");
		await add(stream, 0, 20);
		await eventually(async () => ((await bridge.metrics()).target.retries >= 1 ? true : undefined), 20_000, "a retry");
		bridge.proc.kill("SIGTERM");
		await eventually(() => (bridge.output().includes("stopping gracefully") ? true : undefined), 10_000, "the first SIGTERM");
		expect(await bridge.stop("SIGTERM")).toBe(143);
		expect(await pendingCount(stream)).toBe(20);
	}, 30_000);

	it("a Redis that cannot be reached at start: exit 1 saying where and why (not just 'Connection is closed.'), without the password", async () => {
		const port = await freePort();
		const run = await runToExit(config("s", { url: `redis://:s3cret@127.0.0.1:${port}/0` }), fx.scratch.dir);
		expect(run.code).toBe(1);
		expect(run.output).toContain(`could not start: Redis at redis://:***@127.0.0.1:${port}/0: connect ECONNREFUSED 127.0.0.1:${port}`);
		expect(run.output).not.toContain("s3cret");
	}, 30_000);

	it("claims entries another consumer left pending (XAUTOCLAIM) and acks them", async () => {
		const stream = newStream();
		await add(stream, 0, 50);
		await fx.redis.xgroup("CREATE", stream, "hotpath", "0");
		// A consumer that read 50 entries and died.
		await fx.redis.xreadgroup("GROUP", "hotpath", "dead-consumer", "COUNT", 50, "STREAMS", stream, ">");
		expect(await pendingCount(stream)).toBe(50);
		await add(stream, 50, 60);
		const bridge = await spawnBridge(config(stream, { claim_idle_ms: 1000 }), fx.scratch.dir, ["profiles"]);
		await eventually(() => (fx.fake.ids().size === 60 ? true : undefined), 20_000, "60 events");
		await eventually(async () => ((await pendingCount(stream)) === 0 ? true : undefined));
		expect(await bridge.stop()).toBe(0);
	}, 60_000);

	it("kill -9 mid-stream, then a restart: its own pending entries come first; nothing lost, nothing left pending", async () => {
		const stream = newStream();
		await add(stream, 0, 2000);
		// Slow answers keep the bridge well behind the stream when it is killed.
		fx.fake.delayMs = 300;
		const first = await spawnBridge(config(stream), fx.scratch.dir, ["profiles"]);
		await eventually(() => (fx.fake.ids().size >= 300 ? true : undefined), 20_000, "some events");
		await first.kill9();
		expect(fx.fake.ids().size).toBeLessThan(2000);
		expect(await pendingCount(stream)).toBeGreaterThan(0);

		fx.fake.delayMs = 0;
		const second = await spawnBridge(config(stream), fx.scratch.dir, ["profiles"]);
		await eventually(() => (fx.fake.ids().size === 2000 ? true : undefined), 30_000, "all 2000 ids");
		await eventually(async () => ((await pendingCount(stream)) === 0 ? true : undefined));
		expect(await second.stop()).toBe(0);
		expect(fx.fake.latest("users").get("u1999")?.value).toEqual({ country: "DE" });
	}, 90_000);

	it("Hotpath down for a while, then up: nothing is acknowledged meanwhile and nothing is lost", async () => {
		const stream = newStream();
		const bridge = await spawnBridge(config(stream), fx.scratch.dir, ["profiles"]);
		await fx.fake.setMode("down");
		await add(stream, 0, 500);
		await eventually(async () => ((await bridge.metrics()).target.retries >= 3 ? true : undefined), 20_000, "retries");
		expect((await bridge.metrics()).sources.profiles).toMatchObject({ acked: 0, sent: 0 });
		expect(await pendingCount(stream)).toBeGreaterThan(0);
		await fx.fake.setMode("ok");
		await eventually(() => (fx.fake.ids().size === 500 ? true : undefined), 20_000, "all 500 ids");
		await eventually(async () => ((await pendingCount(stream)) === 0 ? true : undefined));
		expect(await bridge.stop()).toBe(0);
	}, 60_000);
});
