// The amqp source against the real RabbitMQ on 127.0.0.1:5672 and a fake Hotpath.
import { createHash } from "node:crypto";
import path from "node:path";
import { type Channel, type ChannelModel, connect } from "amqplib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, readNdjson, runToExit, scratchDir, spawnBridge, testTarget } from "./harness.ts";

const URL = "amqp://guest:guest@127.0.0.1:5672";
let conn: ChannelModel;
let ch: Channel;
let fake: FakeHotpath;
const scratch = scratchDir();
const queues: string[] = [];

beforeAll(async () => {
	conn = await connect(URL);
	ch = await conn.createChannel();
	fake = await startFakeHotpath({ datasets: ["scores"] });
});

afterAll(async () => {
	for (const q of queues) await ch.deleteQueue(q).catch(() => {});
	await conn?.close();
	await fake?.close();
	scratch.remove();
});

beforeEach(async () => {
	fake.events.length = 0;
	fake.delayMs = 0;
	await fake.setMode("ok");
});

async function newQueue(args: Record<string, unknown> = {}): Promise<string> {
	const q = `bridge-test-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;
	await ch.assertQueue(q, { durable: true, arguments: args });
	queues.push(q);
	return q;
}

const config = (queue: string, extra: object = {}) => ({
	...testTarget(fake.url, fake.key),
	batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4 },
	sources: [
		{
			type: "amqp",
			name: "scores",
			dataset: "scores",
			map: { key: "/key", value: "/fields", event_time: "/at" },
			url: URL,
			queue,
			prefetch: 500,
			reject_log: path.join(scratch.dir, `rejects-${queue}.ndjson`),
			...extra,
		},
	],
});

const send = (queue: string, from: number, to: number) => {
	for (let i = from; i < to; i++)
		ch.sendToQueue(queue, Buffer.from(JSON.stringify({ key: `k${i}`, fields: { score: i } })), { persistent: true, messageId: `m-${i}` });
};

const depth = async (queue: string) => (await ch.checkQueue(queue)).messageCount;

describe("amqp source", () => {
	it("a virtual host the broker will not open: exit 1 naming it (not amqplib's 'Expected ConnectionOpenOk'), without the password", async () => {
		const run = await runToExit(config("q", { url: "amqp://guest:guest@127.0.0.1:5672/no-such-vhost-rc" }), scratch.dir);
		expect(run.code).toBe(1);
		expect(run.output).toContain(
			'could not start: AMQP broker at amqp://guest:***@127.0.0.1:5672/no-such-vhost-rc: the broker refused to open virtual host "no-such-vhost-rc"',
		);
	}, 30_000);

	it("delivers messages with the right values and ids (message_id, else a content hash); unmappable ones are logged and acked", async () => {
		const queue = await newQueue();
		send(queue, 0, 100);
		const anonymous = JSON.stringify({ key: "anon", fields: { score: 0.5 }, at: "2026-01-02T03:04:05.000Z" });
		ch.sendToQueue(queue, Buffer.from(anonymous));
		ch.sendToQueue(queue, Buffer.from("{oops"));
		ch.sendToQueue(queue, Buffer.from(JSON.stringify({ key: "k-no-fields" })));

		const bridge = await spawnBridge(config(queue), scratch.dir, ["scores"]);
		await eventually(() => (fake.ids().size === 101 ? true : undefined), 20_000, "101 events");
		await eventually(async () => ((await bridge.metrics()).sources.scores?.acked === 103 ? true : undefined));
		expect((await bridge.metrics()).sources.scores).toMatchObject({ received: 103, sent: 101, rejected: 2, pending: 0 });
		expect(await bridge.stop()).toBe(0);

		expect(fake.events.find((e) => e.key === "k5")).toMatchObject({ id: `amqp:${queue}:m-5`, dataset: "scores", op: "upsert", value: { score: 5 } });
		const hash = createHash("sha256").update(anonymous).digest("hex").slice(0, 32);
		expect(fake.events.find((e) => e.key === "anon")).toMatchObject({ id: `amqp:${queue}:h:${hash}`, event_time: "2026-01-02T03:04:05.000Z" });
		const rejects = readNdjson(path.join(scratch.dir, `rejects-${queue}.ndjson`));
		expect(rejects.map((r) => r.error)).toEqual([expect.stringContaining("not valid JSON"), 'no value at "/fields"']);
		expect(await depth(queue)).toBe(0);
	}, 60_000);

	it("with dead_letter, rejected messages go to the queue's dead-letter exchange instead of the reject log", async () => {
		const dlq = await newQueue();
		const queue = await newQueue({ "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq });
		send(queue, 0, 5);
		ch.sendToQueue(queue, Buffer.from("not json at all"));
		const bridge = await spawnBridge(config(queue, { dead_letter: true }), scratch.dir, ["scores"]);
		await eventually(async () => ((await depth(dlq)) === 1 ? true : undefined), 20_000, "the dead-lettered message");
		await eventually(() => (fake.ids().size === 5 ? true : undefined));
		expect(await bridge.stop()).toBe(0);
		const dead = await ch.get(dlq, { noAck: true });
		expect(dead ? dead.content.toString() : undefined).toBe("not json at all");
		expect(readNdjson(path.join(scratch.dir, `rejects-${queue}.ndjson`))).toEqual([]);
		expect(await depth(queue)).toBe(0);
	}, 60_000);

	it("kill -9 mid-stream, then a restart: nothing is lost and nothing is left in the queue", async () => {
		const queue = await newQueue();
		send(queue, 0, 2000);
		// Slow answers keep the bridge well behind the stream when it is killed.
		fake.delayMs = 300;
		const first = await spawnBridge(config(queue), scratch.dir, ["scores"]);
		await eventually(() => (fake.ids().size >= 300 ? true : undefined), 20_000, "some events");
		await first.kill9();
		expect(fake.ids().size).toBeLessThan(2000);

		fake.delayMs = 0;
		const second = await spawnBridge(config(queue), scratch.dir, ["scores"]);
		await eventually(() => (fake.ids().size === 2000 ? true : undefined), 30_000, "all 2000 ids");
		await eventually(async () => ((await second.metrics()).sources.scores?.pending === 0 ? true : undefined));
		expect(await second.stop()).toBe(0);
		expect(await depth(queue)).toBe(0);
		expect(fake.latest("scores").get("k1999")?.value).toEqual({ score: 1999 });
	}, 90_000);

	it("Hotpath down for a while, then up: nothing is acknowledged meanwhile and nothing is lost", async () => {
		const queue = await newQueue();
		const bridge = await spawnBridge(config(queue), scratch.dir, ["scores"]);
		await fake.setMode("down");
		send(queue, 0, 500);
		await eventually(async () => ((await bridge.metrics()).target.retries >= 3 ? true : undefined), 20_000, "retries");
		const during = (await bridge.metrics()).sources.scores;
		expect(during).toMatchObject({ acked: 0, sent: 0 });
		await eventually(async () => ((await bridge.metrics()).sources.scores?.lag === 500 ? true : undefined), 10_000, "lag 500");
		await fake.setMode("ok");
		await eventually(() => (fake.ids().size === 500 ? true : undefined), 20_000, "all 500 ids");
		await eventually(async () => ((await bridge.metrics()).sources.scores?.acked === 500 ? true : undefined));
		expect(await bridge.stop()).toBe(0);
		expect(await depth(queue)).toBe(0);
	}, 60_000);
});
