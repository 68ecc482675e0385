// Messages the bridge cannot send as they are, with the redis-streams source against the real Redis
// on 127.0.0.1:6379 and a fake Hotpath.
import { mkdirSync, rmdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig, type RedisStreamsConfig } from "../../../cli/bridge/config.ts";
import { compileMap } from "../../../cli/bridge/mapping.ts";
import { Slots, SourcePipeline } from "../../../cli/bridge/pipeline.ts";
import { RejectLog } from "../../../cli/bridge/rejects.ts";
import { type RedisDelivery, RedisStreamsSource } from "../../../cli/bridge/sources/redis-streams.ts";
import { HotpathTarget } from "../../../cli/bridge/target.ts";
import { eventually, readNdjson, spawnBridge, testTarget } from "./harness.ts";
import { REDIS_URL, redisStreamsFixture } from "./redis-fixture.ts";

const fx = redisStreamsFixture();

const newStream = () => fx.newStream("rejects:");

const config = (stream: string, rejectLog: string, extra: object = {}) => ({
	...testTarget(fx.fake.url, fx.fake.key),
	batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4 },
	sources: [
		{
			type: "redis-streams",
			name: "profiles",
			dataset: "users",
			map: { key: "/user_id" },
			url: REDIS_URL,
			stream,
			group: "hotpath",
			consumer: "bridge-1",
			reject_log: rejectLog,
			...extra,
		},
	],
});

const pendingCount = async (stream: string) => Number(((await fx.redis.xpending(stream, "hotpath")) as [number])[0]);

describe("redis-streams: rejected messages", () => {
	it("a message holding 1e400 (Infinity once parsed) is rejected into the reject log and acked, never sent as null", async () => {
		const stream = newStream();
		const rejectLog = path.join(fx.scratch.dir, "non-finite.ndjson");
		await fx.redis.xadd(stream, "*", "json", '{"user_id":"inf1","score":1e400,"tags":["a"]}');
		await fx.redis.xadd(stream, "*", "json", '{"user_id":"inf2","meta":{"a":[1,-1e999]}}');
		await fx.redis.xadd(stream, "*", "json", '{"user_id":"fin1","score":0.5}');
		const bridge = await spawnBridge(config(stream, rejectLog), fx.scratch.dir, ["profiles"]);
		await eventually(async () => ((await bridge.metrics()).sources.profiles?.acked === 3 ? true : undefined), 20_000, "3 acks");
		expect((await bridge.metrics()).sources.profiles).toMatchObject({ received: 3, sent: 1, rejected: 2, pending: 0 });
		expect(await bridge.stop()).toBe(0);
		expect(fx.fake.events.filter((e) => e.key.startsWith("inf"))).toEqual([]);
		expect(fx.fake.events.find((e) => e.key === "fin1")).toMatchObject({ value: { score: 0.5 } });
		const rejects = readNdjson(rejectLog);
		expect(rejects).toMatchObject([
			{ by: "bridge", error: expect.stringContaining("value.score: expected a finite number, not Infinity"), message: { user_id: "inf1", score: "Infinity" } },
			{ by: "bridge", error: expect.stringContaining("value.meta.a[1]: expected a finite number, not -Infinity") },
		]);
		expect(await pendingCount(stream)).toBe(0);
	}, 60_000);

	it("a reject that could not be logged is left unacked and delivered again (claimed once idle), not held until a restart", async () => {
		const stream = newStream();
		const rejectLog = path.join(fx.scratch.dir, "later.ndjson");
		const bridge = await spawnBridge(config(stream, rejectLog, { claim_idle_ms: 1000 }), fx.scratch.dir, ["profiles"]);
		try {
			// The path passed the check at start; a directory there now makes the first write fail (EISDIR).
			mkdirSync(rejectLog);
			await fx.redis.xadd(stream, "*", "json", "{not json");
			await fx.redis.xadd(stream, "*", "user_id", "ok1", "country", "DE");
			await eventually(() => (bridge.output().includes("cannot record 1 rejected message(s)") ? true : undefined), 20_000, "the failed reject write");
			await eventually(() => (fx.fake.events.some((e) => e.key === "ok1") ? true : undefined), 20_000, "the good entry");
			expect(await pendingCount(stream)).toBe(1);
			rmdirSync(rejectLog);
			// The entry was released: the claim sweep hands it over again, the reject is logged and the entry acked.
			await eventually(() => (readNdjson(rejectLog).length ? true : undefined), 15_000, "the reject logged on redelivery");
			await eventually(async () => ((await pendingCount(stream)) === 0 ? true : undefined), 10_000, "no entry pending");
			expect(readNdjson(rejectLog)).toMatchObject([{ by: "bridge", error: expect.stringContaining("not valid JSON"), raw: "{not json" }]);
			const m = (await bridge.metrics()).sources.profiles;
			expect(m).toMatchObject({ received: 3, acked: 2, pending: 0 });
			expect(await bridge.stop()).toBe(0);
		} finally {
			await bridge.kill9();
		}
	}, 60_000);

	it("an entry whose XACK failed is released and delivered again (claimed once idle), then acked", async () => {
		const stream = newStream();
		const sc = parseConfig(config(stream, path.join(fx.scratch.dir, "unused-xack.ndjson"), { claim_idle_ms: 1000, block_ms: 200 }), "test", {})
			.sources[0] as RedisStreamsConfig;
		const source = new RedisStreamsSource(sc);
		// The first XACK fails, as when Redis drops the connection at that moment.
		const realAck = source.ack.bind(source);
		const acks: string[][] = [];
		source.ack = async (messages: RedisDelivery[]) => {
			acks.push(messages.map((m) => m.id));
			if (acks.length === 1) throw new Error("Connection is closed.");
			return realAck(messages);
		};
		const logs: string[] = [];
		const pipeline = new SourcePipeline<RedisDelivery>({
			name: "profiles",
			source,
			mapper: compileMap({ key: "/user_id" }, "users"),
			target: new HotpathTarget({ url: fx.fake.url, key: fx.fake.key, timeoutMs: 2000, retry: { initialMs: 50, maxMs: 200 } }),
			slots: new Slots(2),
			rejectLog: new RejectLog(path.join(fx.scratch.dir, "unused-xack.ndjson"), "profiles"),
			maxEvents: 10,
			maxWaitMs: 10,
			maxPending: 100,
			onFatal: (e) => logs.push(`fatal: ${e.message}`),
			log: (m) => logs.push(m),
		});
		await source.start(pipeline.sink);
		try {
			await fx.redis.xadd(stream, "*", "user_id", "x1", "country", "DE");
			await eventually(() => (logs.some((l) => l.includes("ack of 1 message(s) failed")) ? true : undefined), 10_000, "the failed ack");
			await eventually(async () => ((await pendingCount(stream)) === 0 ? true : undefined), 10_000, "the entry acked on redelivery");
			expect(acks).toHaveLength(2);
			expect(acks[1]).toEqual(acks[0]);
			expect(pipeline.stats).toMatchObject({ received: 2, acked: 1, pending: 0 });
			expect(logs.filter((l) => l.startsWith("fatal"))).toEqual([]);
		} finally {
			await source.stop();
			await pipeline.drain();
			await source.close();
		}
	}, 30_000);
});
