// The amqp source when the broker drops its consumer but not its connection: it must consume again,
// not sit there "started" and idle.
import path from "node:path";
import { type Channel, type ChannelModel, connect } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, scratchDir, spawnBridge, testTarget } from "./harness.ts";

const URL = "amqp://guest:guest@127.0.0.1:5672";
let conn: ChannelModel;
let ch: Channel;
let fake: FakeHotpath;
const scratch = scratchDir();
const queue = `bridge-test-recovery-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;

beforeAll(async () => {
	conn = await connect(URL);
	ch = await conn.createChannel();
	fake = await startFakeHotpath({ datasets: ["scores"] });
});

afterAll(async () => {
	await ch.deleteQueue(queue).catch(() => {});
	await conn?.close();
	await fake?.close();
	scratch.remove();
});

const send = (key: string) => ch.sendToQueue(queue, Buffer.from(JSON.stringify({ key, fields: { score: 1 } })), { persistent: true, messageId: key });

describe("amqp source recovery", () => {
	it("the queue deleted (the broker cancels the consumer) and created again: messages sent to the new queue arrive", async () => {
		await ch.assertQueue(queue, { durable: true });
		send("before");
		const bridge = await spawnBridge(
			{
				...testTarget(fake.url, fake.key),
				batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4 },
				sources: [
					{
						type: "amqp",
						name: "scores",
						dataset: "scores",
						map: { key: "/key", value: "/fields" },
						url: URL,
						queue,
						reject_log: path.join(scratch.dir, "rejects.ndjson"),
					},
				],
			},
			scratch.dir,
			["scores"],
		);
		try {
			await eventually(() => (fake.latest("scores").has("before") ? true : undefined), 10_000, "the first message");
			await ch.deleteQueue(queue);
			await new Promise((r) => setTimeout(r, 300));
			await ch.assertQueue(queue, { durable: true });
			send("after");
			await eventually(() => (fake.latest("scores").has("after") ? true : undefined), 15_000, "the message sent to the new queue");
			await eventually(async () => ((await ch.checkQueue(queue)).messageCount === 0 ? true : undefined), 10_000, "the queue drained");
			expect(bridge.output()).toMatch(/cancelled the consumer/);
			expect(await bridge.stop()).toBe(0);
		} finally {
			await bridge.kill9();
		}
	});
});
