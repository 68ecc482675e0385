// The mqtt source against the real Mosquitto on 127.0.0.1:1883 and a fake Hotpath.
import { createHash } from "node:crypto";
import path from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { freePort } from "../../../scripts/lib/redis-server.ts";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, readNdjson, runToExit, scratchDir, spawnBridge, testTarget } from "./harness.ts";

const URL = "mqtt://127.0.0.1:1883";
let publisher: MqttClient;
let fake: FakeHotpath;
const scratch = scratchDir();
const clientIds: string[] = [];

beforeAll(async () => {
	publisher = await connectAsync(URL, { clientId: `bridge-test-pub-${Date.now()}` });
	fake = await startFakeHotpath({ datasets: ["sensors"] });
});

afterAll(async () => {
	// End the persistent sessions the tests left at the broker.
	for (const clientId of clientIds) {
		const c = await connectAsync(URL, { clientId, clean: true, protocolVersion: 5, properties: { sessionExpiryInterval: 0 } }).catch(() => undefined);
		await c?.endAsync();
	}
	await publisher?.endAsync();
	await fake?.close();
	scratch.remove();
});

beforeEach(async () => {
	fake.events.length = 0;
	fake.delayMs = 0;
	await fake.setMode("ok");
});

const newTopic = () => {
	const id = `${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;
	clientIds.push(`hotpath-bridge-${id}`);
	return { base: `bridge-test/${id}`, clientId: `hotpath-bridge-${id}` };
};

const config = (t: { base: string; clientId: string }, batch: object = {}) => ({
	...testTarget(fake.url, fake.key),
	batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4, ...batch },
	sources: [
		{
			type: "mqtt",
			name: "sensors",
			dataset: "sensors",
			map: { key: "/sensor" },
			url: URL,
			topic: `${t.base}/#`,
			client_id: t.clientId,
			reject_log: path.join(scratch.dir, `rejects-${t.clientId}.ndjson`),
		},
	],
});

const publish = async (base: string, from: number, to: number) => {
	await Promise.all(
		Array.from({ length: to - from }, (_, j) =>
			publisher.publishAsync(`${base}/temp`, JSON.stringify({ sensor: `s${from + j}`, celsius: from + j }), { qos: 1 }),
		),
	);
};

describe("mqtt source", () => {
	it("a broker that cannot be reached at start: exit 1 naming it, without the URL's password", async () => {
		const port = await freePort();
		const c = config({ base: "rc-unreachable", clientId: `rc-unreachable-${Date.now()}` });
		const run = await runToExit({ ...c, sources: [{ ...c.sources[0], url: `mqtt://user:s3cret@127.0.0.1:${port}` }] }, scratch.dir);
		expect(run.code).toBe(1);
		expect(run.output).toContain(`MQTT broker at mqtt://user:***@127.0.0.1:${port}: connect ECONNREFUSED`);
		expect(run.output).not.toContain("s3cret");
	}, 30_000);

	it("delivers QoS 1 messages with the right values; unmappable ones are logged, counted and acked", async () => {
		const t = newTopic();
		const bridge = await spawnBridge(config(t), scratch.dir, ["sensors"]);
		await publish(t.base, 0, 200);
		await publisher.publishAsync(`${t.base}/temp`, "garbage", { qos: 1 });
		await publisher.publishAsync(`${t.base}/temp`, JSON.stringify({ celsius: 1 }), { qos: 1 });
		await eventually(() => (fake.ids().size === 200 ? true : undefined), 20_000, "200 events");
		await eventually(async () => ((await bridge.metrics()).sources.sensors?.acked === 202 ? true : undefined));
		expect((await bridge.metrics()).sources.sensors).toMatchObject({ received: 202, sent: 200, rejected: 2, pending: 0, lag: null });
		expect(await bridge.stop()).toBe(0);

		const payload = JSON.stringify({ sensor: "s9", celsius: 9 });
		const hash = createHash("sha256").update(payload).digest("hex").slice(0, 32);
		expect(fake.events.find((e) => e.key === "s9")).toMatchObject({ id: `mqtt:${t.base}/temp:h:${hash}`, dataset: "sensors", value: { celsius: 9 } });
		const rejects = readNdjson(path.join(scratch.dir, `rejects-${t.clientId}.ndjson`));
		expect(rejects.map((r) => r.error)).toEqual([expect.stringContaining("not valid JSON"), 'no key at "/sensor"']);
	}, 60_000);

	it("kill -9 mid-stream, messages published while it is down, then a restart: nothing is lost (persistent session)", async () => {
		const t = newTopic();
		// Small batches answered slowly (about 80 messages/s) keep the bridge well behind when it is killed.
		fake.delayMs = 1000;
		const first = await spawnBridge(config(t, { max_events: 20 }), scratch.dir, ["sensors"]);
		await publish(t.base, 0, 400);
		await eventually(() => (fake.ids().size >= 50 ? true : undefined), 20_000, "some events");
		await first.kill9();
		expect(fake.ids().size).toBeLessThan(400);
		// Published while no bridge runs: the broker keeps them in the session.
		await publish(t.base, 400, 600);

		fake.delayMs = 0;
		const second = await spawnBridge(config(t), scratch.dir, ["sensors"]);
		await eventually(() => (fake.ids().size === 600 ? true : undefined), 30_000, "all 600 ids");
		await eventually(async () => ((await second.metrics()).sources.sensors?.pending === 0 ? true : undefined));
		expect(await second.stop()).toBe(0);

		// Nothing left unacknowledged: a third run gets nothing. (POSTs the killed bridge had in flight
		// may still land at the stand-in; they were never acked, so they came again and count once.)
		const third = await spawnBridge(config(t), scratch.dir, ["sensors"]);
		await new Promise((r) => setTimeout(r, 1500));
		expect((await third.metrics()).sources.sensors?.received).toBe(0);
		expect(await third.stop()).toBe(0);
		expect(fake.ids().size).toBe(600);
	}, 90_000);

	it("Hotpath down for a while, then up: nothing is acknowledged meanwhile and nothing is lost", async () => {
		const t = newTopic();
		const bridge = await spawnBridge(config(t), scratch.dir, ["sensors"]);
		await fake.setMode("down");
		await publish(t.base, 0, 300);
		await eventually(async () => ((await bridge.metrics()).target.retries >= 3 ? true : undefined), 20_000, "retries");
		expect((await bridge.metrics()).sources.sensors).toMatchObject({ acked: 0, sent: 0 });
		await fake.setMode("ok");
		await eventually(() => (fake.ids().size === 300 ? true : undefined), 20_000, "all 300 ids");
		await eventually(async () => ((await bridge.metrics()).sources.sensors?.acked === 300 ? true : undefined));
		expect(await bridge.stop()).toBe(0);
	}, 60_000);

	it("delivers messages published with QoS 0 too (the broker hands them over at QoS 0, with nothing to acknowledge)", async () => {
		// mqtt.js hands QoS 0 messages only to 'message' listeners, never to customHandleAcks: the bridge dropped every one.
		const t = newTopic();
		const bridge = await spawnBridge(config(t), scratch.dir, ["sensors"]);
		for (let i = 0; i < 5; i++) await publisher.publishAsync(`${t.base}/temp`, JSON.stringify({ sensor: `q${i}`, celsius: i }), { qos: 0 });
		await publisher.publishAsync(`${t.base}/temp`, JSON.stringify({ sensor: "q-one", celsius: 1 }), { qos: 1 });
		await eventually(() => (fake.ids().size === 6 ? true : undefined), 20_000, "6 events");
		expect(
			fake.events
				.filter((e) => e.key.startsWith("q"))
				.map((e) => e.key)
				.sort(),
		).toEqual(["q-one", "q0", "q1", "q2", "q3", "q4"]);
		await eventually(async () => ((await bridge.metrics()).sources.sensors?.pending === 0 ? true : undefined));
		expect((await bridge.metrics()).sources.sensors).toMatchObject({ received: 6, sent: 6, acked: 6, rejected: 0 });
		expect(await bridge.stop()).toBe(0);
	}, 60_000);
});
