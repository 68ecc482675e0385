// The nats source against the real NATS JetStream on 127.0.0.1:4222 and a fake Hotpath.
import path from "node:path";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, readNdjson, runToExit, scratchDir, spawnBridge, testTarget } from "./harness.ts";

let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;
let fake: FakeHotpath;
const scratch = scratchDir();
const streams: string[] = [];

beforeAll(async () => {
	nc = await connect({ servers: "127.0.0.1:4222" });
	jsm = await jetstreamManager(nc);
	js = jetstream(nc);
	fake = await startFakeHotpath({ datasets: ["items"] });
});

afterAll(async () => {
	for (const s of streams) await jsm.streams.delete(s).catch(() => {});
	await nc?.close();
	await fake?.close();
	scratch.remove();
});

beforeEach(async () => {
	fake.events.length = 0;
	fake.delayMs = 0;
	fake.rejectWhen = undefined;
	await fake.setMode("ok");
});

async function newStream(): Promise<string> {
	const name = `BRIDGE_TEST_${Date.now()}_${Math.random().toString(36).slice(2, 6)}`.toUpperCase();
	await jsm.streams.add({ name, subjects: [`${name}.>`] });
	streams.push(name);
	return name;
}

const config = (stream: string, extra: object = {}) => ({
	...testTarget(fake.url, fake.key),
	batch: { max_events: 100, max_wait_ms: 20, max_in_flight: 4 },
	sources: [
		{
			type: "nats",
			name: "orders",
			dataset: "items",
			map: { key: "/item/id", op: "/op" },
			servers: "127.0.0.1:4222",
			stream,
			subject: `${stream}.>`,
			durable: "hotpath",
			reject_log: path.join(scratch.dir, `rejects-${stream}.ndjson`),
			...extra,
		},
	],
});

const publish = async (stream: string, from: number, to: number) => {
	for (let i = from; i < to; i++) await js.publish(`${stream}.items`, JSON.stringify({ item: { id: `i${i}` }, price: i / 10, op: "upsert" }));
};

const consumerIdle = async (stream: string) => {
	const info = await jsm.consumers.info(stream, "hotpath");
	return { pending: info.num_pending, ackPending: info.num_ack_pending };
};

describe("nats source", () => {
	it("delivers messages with the right values; unmappable ones are logged, counted and acked without blocking", async () => {
		const stream = await newStream();
		await js.publish(`${stream}.items`, "not json");
		await js.publish(`${stream}.items`, JSON.stringify({ price: 1 }));
		await js.publish(`${stream}.items`, JSON.stringify({ item: { id: { nested: true } } }));
		await js.publish(`${stream}.items`, JSON.stringify({ item: { id: "bad-op" }, op: "explode" }));
		await publish(stream, 0, 300);
		await js.publish(`${stream}.items`, JSON.stringify({ item: { id: 42 }, price: 4.2, op: "patch" }));
		await js.publish(`${stream}.items`, JSON.stringify({ item: { id: "i0" }, op: "delete" }));

		const bridge = await spawnBridge(config(stream), scratch.dir, ["orders"]);
		await eventually(() => (fake.ids().size === 302 ? true : undefined), 20_000, "302 events");
		const m = await eventually(async () => {
			const s = (await bridge.metrics()).sources.orders;
			return s?.acked === 306 ? s : undefined;
		});
		expect(m).toMatchObject({ received: 306, sent: 302, acked: 306, rejected: 4, pending: 0 });
		const prometheus = await (await fetch(`http://127.0.0.1:${bridge.port}/metrics?format=prometheus`)).text();
		expect(prometheus).toContain('hotpath_bridge_acked_total{source="orders"} 306');
		expect(prometheus).toContain('hotpath_bridge_rejected_total{source="orders"} 4');
		expect(await bridge.stop()).toBe(0);

		const byKey = new Map(fake.events.map((e) => [`${e.key}/${e.op}`, e]));
		const i7 = byKey.get("i7/upsert");
		expect(i7).toMatchObject({ dataset: "items", key: "i7", op: "upsert", value: { item: { id: "i7" }, price: 0.7 } });
		// The id is the stream sequence, zero-padded so ids sort in stream order; the time is the stream's.
		expect(i7?.id).toBe(`nats:${stream}:${String(4 + 8).padStart(20, "0")}`);
		expect(typeof i7?.event_time).toBe("number");
		expect(Math.abs((i7?.event_time as number) - Date.now())).toBeLessThan(60_000);
		// op is taken out of the whole-message value; an integer key becomes a string.
		expect(byKey.get("42/patch")).toMatchObject({ key: "42", op: "patch", value: { item: { id: 42 }, price: 4.2 } });
		expect(byKey.get("i0/delete")?.value).toBeUndefined();

		const rejects = readNdjson(path.join(scratch.dir, `rejects-${stream}.ndjson`));
		expect(rejects.map((r) => r.error)).toEqual([
			expect.stringContaining("not valid JSON"),
			'no key at "/item/id"',
			expect.stringContaining("must be a non-empty string or an integer"),
			expect.stringContaining("must be upsert, patch or delete"),
		]);
		expect(rejects[0]).toMatchObject({ source: "orders", by: "bridge", raw: "not json", id: `nats:${stream}:${"1".padStart(20, "0")}` });
		expect(await consumerIdle(stream)).toEqual({ pending: 0, ackPending: 0 });
	}, 60_000);

	it("events Hotpath rejects are logged, counted and acked; a missing dataset stops the bridge with exit 1", async () => {
		const stream = await newStream();
		fake.rejectWhen = (e) => (e.key === "i3" ? "value.price: must be a float" : undefined);
		await publish(stream, 0, 10);
		const bridge = await spawnBridge(config(stream), scratch.dir, ["orders"]);
		await eventually(async () => ((await bridge.metrics()).sources.orders?.acked === 10 ? true : undefined));
		expect((await bridge.metrics()).sources.orders).toMatchObject({ sent: 9, rejected: 1, acked: 10 });
		expect(await bridge.stop()).toBe(0);
		const rejects = readNdjson(path.join(scratch.dir, `rejects-${stream}.ndjson`));
		expect(rejects).toEqual([
			expect.objectContaining({ by: "hotpath", error: "value.price: must be a float", message: expect.objectContaining({ key: "i3" }) }),
		]);
		expect(await consumerIdle(stream)).toEqual({ pending: 0, ackPending: 0 });

		const missing = { ...config(stream), sources: [{ ...config(stream).sources[0], dataset: "no_such_dataset" }] };
		const bad = await runToExit(missing, scratch.dir);
		expect(bad.code).toBe(1);
		expect(bad.output).toMatch(/fatal: dataset "no_such_dataset" does not exist/);
	}, 60_000);

	it("kill -9 mid-stream, then a restart: nothing is lost and nothing is left unacknowledged", async () => {
		const stream = await newStream();
		await publish(stream, 0, 2000);
		// Slow answers keep the bridge well behind the stream when it is killed.
		fake.delayMs = 300;
		// A short ack_wait (kept alive with working() while a batch waits), so the redelivery after the kill comes soon.
		const first = await spawnBridge(config(stream, { ack_wait_ms: 3000 }), scratch.dir, ["orders"]);
		await eventually(() => (fake.ids().size >= 300 ? true : undefined), 20_000, "some events");
		await first.kill9();
		const before = fake.ids().size;
		expect(before).toBeLessThan(2000);
		const info = await consumerIdle(stream);
		expect(info.pending + info.ackPending).toBeGreaterThan(0);

		fake.delayMs = 0;
		const second = await spawnBridge(config(stream, { ack_wait_ms: 3000 }), scratch.dir, ["orders"]);
		// What the killed bridge had received but not acked comes again after ack_wait.
		await eventually(() => (fake.ids().size === 2000 ? true : undefined), 30_000, "all 2000 ids");
		await eventually(async () => ((await second.metrics()).sources.orders?.pending === 0 ? true : undefined));
		expect(await second.stop()).toBe(0);
		expect(await consumerIdle(stream)).toEqual({ pending: 0, ackPending: 0 });
		expect(fake.latest("items").get("i1999")?.value).toEqual({ item: { id: "i1999" }, price: 199.9 });
	}, 90_000);

	it("Hotpath down for a while, then up: nothing is acknowledged meanwhile and nothing is lost", async () => {
		const stream = await newStream();
		const bridge = await spawnBridge(config(stream), scratch.dir, ["orders"]);
		await fake.setMode("down");
		await publish(stream, 0, 500);
		await eventually(async () => ((await bridge.metrics()).target.retries >= 3 ? true : undefined), 20_000, "retries");
		const during = await bridge.metrics();
		expect(during.target.failing).toBe(true);
		expect(during.sources.orders).toMatchObject({ acked: 0, sent: 0 });
		expect((await consumerIdle(stream)).ackPending).toBeGreaterThan(0);

		await fake.setMode("503");
		await new Promise((r) => setTimeout(r, 1000));
		expect((await bridge.metrics()).sources.orders?.acked).toBe(0);
		await fake.setMode("ok");
		await eventually(() => (fake.ids().size === 500 ? true : undefined), 20_000, "all 500 ids");
		await eventually(async () => ((await bridge.metrics()).sources.orders?.acked === 500 ? true : undefined));
		expect(await bridge.stop()).toBe(0);
		expect(await consumerIdle(stream)).toEqual({ pending: 0, ackPending: 0 });
		expect(bridge.output()).toMatch(/Hotpath not answering/);
		expect(bridge.output()).toMatch(/Hotpath answers again/);
	}, 60_000);

	it("a stop while Hotpath is down gives up after --drain-timeout, acknowledging nothing, and exits 1", async () => {
		const stream = await newStream();
		const bridge = await spawnBridge(config(stream), scratch.dir, ["orders"], ["--drain-timeout", "1"]);
		await fake.setMode("503");
		await publish(stream, 0, 50);
		await eventually(async () => ((await bridge.metrics()).sources.orders?.received === 50 ? true : undefined));
		expect(await bridge.stop("SIGINT")).toBe(1);
		expect(bridge.output()).toMatch(/gave up draining after 1 s: 50 message\(s\) left unacknowledged/);
		expect((await consumerIdle(stream)).ackPending).toBe(50);
	}, 30_000);
});
