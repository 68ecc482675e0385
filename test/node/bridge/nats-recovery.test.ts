// The nats source when its durable consumer is deleted while it runs: the client library would wait
// for it for ever, consuming nothing; the source makes it again and goes on.
import path from "node:path";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, scratchDir, spawnBridge, testTarget } from "./harness.ts";

let nc: NatsConnection;
let jsm: JetStreamManager;
let fake: FakeHotpath;
const scratch = scratchDir();
const stream = `BRIDGE_TEST_RECOVERY_${Date.now()}_${Math.random().toString(36).slice(2, 6)}`.toUpperCase();

beforeAll(async () => {
	nc = await connect({ servers: "127.0.0.1:4222" });
	jsm = await jetstreamManager(nc);
	await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
	fake = await startFakeHotpath({ datasets: ["items"] });
});

afterAll(async () => {
	await jsm.streams.delete(stream).catch(() => {});
	await nc?.close();
	await fake?.close();
	scratch.remove();
});

describe("nats source recovery", () => {
	it("the durable consumer deleted while the bridge runs: it is created again and later messages arrive, acked", async () => {
		const js = jetstream(nc);
		await js.publish(`${stream}.items`, JSON.stringify({ id: "before", price: 1 }));
		const bridge = await spawnBridge(
			{
				...testTarget(fake.url, fake.key),
				batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4 },
				sources: [
					{
						type: "nats",
						name: "orders",
						dataset: "items",
						map: { key: "/id" },
						servers: "127.0.0.1:4222",
						stream,
						durable: "hotpath",
						reject_log: path.join(scratch.dir, "rejects.ndjson"),
					},
				],
			},
			scratch.dir,
			["orders"],
		);
		try {
			await eventually(() => (fake.latest("items").has("before") ? true : undefined), 10_000, "the first message");
			await jsm.consumers.delete(stream, "hotpath");
			await js.publish(`${stream}.items`, JSON.stringify({ id: "after", price: 2 }));
			await eventually(() => (fake.latest("items").has("after") ? true : undefined), 20_000, "the message published after the delete");
			await eventually(
				async () => {
					const info = await jsm.consumers.info(stream, "hotpath").catch(() => undefined);
					return info && info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
				},
				10_000,
				"the new consumer to have acked everything",
			);
			expect(bridge.output()).toMatch(/consumer "hotpath" was gone; created it again/);
			expect(await bridge.stop()).toBe(0);
		} finally {
			await bridge.kill9();
		}
	});
});
