// Messages the bridge cannot send as they are, with the redis-streams source against the real Redis
// on 127.0.0.1:6379 and a fake Hotpath.
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, readNdjson, scratchDir, spawnBridge, testTarget } from "./harness.ts";

const URL = "redis://127.0.0.1:6379";
let redis: Redis;
let fake: FakeHotpath;
const scratch = scratchDir();
const streams: string[] = [];

beforeAll(async () => {
	redis = new Redis(URL);
	fake = await startFakeHotpath({ datasets: ["users"] });
});

afterAll(async () => {
	if (streams.length) await redis.del(...streams);
	redis?.disconnect();
	await fake?.close();
	scratch.remove();
});

const newStream = () => {
	const s = `bridge-test:rejects:${Date.now()}:${Math.random().toString(36).slice(2, 6)}`;
	streams.push(s);
	return s;
};

const config = (stream: string, rejectLog: string, extra: object = {}) => ({
	...testTarget(fake.url, fake.key),
	batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4 },
	sources: [
		{
			type: "redis-streams",
			name: "profiles",
			dataset: "users",
			map: { key: "/user_id" },
			url: URL,
			stream,
			group: "hotpath",
			consumer: "bridge-1",
			reject_log: rejectLog,
			...extra,
		},
	],
});

const pendingCount = async (stream: string) => Number(((await redis.xpending(stream, "hotpath")) as [number])[0]);

describe("redis-streams: rejected messages", () => {
	it("a message holding 1e400 (Infinity once parsed) is rejected into the reject log and acked, never sent as null", async () => {
		const stream = newStream();
		const rejectLog = path.join(scratch.dir, "non-finite.ndjson");
		await redis.xadd(stream, "*", "json", '{"user_id":"inf1","score":1e400,"tags":["a"]}');
		await redis.xadd(stream, "*", "json", '{"user_id":"inf2","meta":{"a":[1,-1e999]}}');
		await redis.xadd(stream, "*", "json", '{"user_id":"fin1","score":0.5}');
		const bridge = await spawnBridge(config(stream, rejectLog), scratch.dir, ["profiles"]);
		await eventually(async () => ((await bridge.metrics()).sources.profiles?.acked === 3 ? true : undefined), 20_000, "3 acks");
		expect((await bridge.metrics()).sources.profiles).toMatchObject({ received: 3, sent: 1, rejected: 2, pending: 0 });
		expect(await bridge.stop()).toBe(0);
		expect(fake.events.filter((e) => e.key.startsWith("inf"))).toEqual([]);
		expect(fake.events.find((e) => e.key === "fin1")).toMatchObject({ value: { score: 0.5 } });
		const rejects = readNdjson(rejectLog);
		expect(rejects).toMatchObject([
			{ by: "bridge", error: expect.stringContaining("value.score: expected a finite number, not Infinity"), message: { user_id: "inf1", score: "Infinity" } },
			{ by: "bridge", error: expect.stringContaining("value.meta.a[1]: expected a finite number, not -Infinity") },
		]);
		expect(await pendingCount(stream)).toBe(0);
	}, 60_000);
});
