// End to end: one bridge process moves messages from the real NATS, Redis, RabbitMQ, Mosquitto and
// PostgreSQL into the real `npm run dev`, and the records are read back over HTTP.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { connect as amqpConnect } from "amqplib";
import { Redis } from "ioredis";
import { connectAsync } from "mqtt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName, useDevServer } from "../dev-server.ts";
import { type BridgeProcess, eventually, scratchDir, spawnBridge } from "./harness.ts";

const server = useDevServer();
const scratch = scratchDir();
const id = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const dataset = uniqueName("bridge_e2e");
const names = {
	stream: `BRIDGE_E2E_${id}`.toUpperCase(),
	redisStream: `bridge-e2e:${id}`,
	queue: `bridge-e2e-${id}`,
	topic: `bridge-e2e/${id}`,
	table: `bridge_e2e_${id}`,
	slot: `bridge_e2e_${id}`,
};
const db = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
const redis = new Redis("redis://127.0.0.1:6379");
let bridge: BridgeProcess | undefined;

const value = (source: string, i: number) => ({ name: `${source} ${i}`, score: i + 0.5, tags: [source, `n${i}`] });

beforeAll(async () => {
	const { url, adminKey } = server();
	const put = await fetch(`${url}/v1/datasets/${dataset}`, {
		method: "PUT",
		headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
		body: JSON.stringify({ key: "id", fields: { name: "string", score: "float", tags: "string[]" } }),
	});
	expect(put.status).toBe(201);
	await db.connect();
	await db.query(`create table ${names.table} (id text primary key, name text, score float8, tags text[])`);
	const nc = await natsConnect({ servers: "127.0.0.1:4222" });
	await (await jetstreamManager(nc)).streams.add({ name: names.stream, subjects: [`${names.stream}.>`] });
	await nc.close();
	const conn = await amqpConnect("amqp://guest:guest@127.0.0.1:5672");
	await (await conn.createChannel()).assertQueue(names.queue, { durable: true });
	await conn.close();
}, 180_000);

afterAll(async () => {
	await bridge?.kill9();
	await db.query("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active", [names.slot]).catch(() => {});
	await db.query(`drop publication if exists ${names.slot}`).catch(() => {});
	await db.query(`drop table if exists ${names.table}`).catch(() => {});
	await db.end();
	await redis.del(names.redisStream);
	redis.disconnect();
	const nc = await natsConnect({ servers: "127.0.0.1:4222" });
	await (await jetstreamManager(nc)).streams.delete(names.stream).catch(() => {});
	await nc.close();
	const conn = await amqpConnect("amqp://guest:guest@127.0.0.1:5672");
	await (await conn.createChannel()).deleteQueue(names.queue);
	await conn.close();
	const session = await connectAsync("mqtt://127.0.0.1:1883", { clientId: `bridge-e2e-${id}`, clean: true, protocolVersion: 5 }).catch(() => undefined);
	await session?.endAsync();
	scratch.remove();
});

async function lookup(keys: string[]): Promise<Map<string, { status: string; value: unknown }>> {
	const { url, adminKey } = server();
	const res = await fetch(`${url}/v1/lookup`, {
		method: "POST",
		headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
		body: JSON.stringify({ requests: [{ dataset, keys }] }),
	});
	const body = (await res.json()) as { results: { records: { key: string; status: string; value: unknown }[] }[] };
	return new Map(body.results[0]?.records.map((r) => [r.key, r]));
}

describe("the bridge against npm run dev", () => {
	it("moves messages from every real source into Hotpath, where they are readable with their values", async () => {
		const { url, adminKey } = server();
		// Rows present before the bridge starts come with the snapshot.
		for (let i = 0; i < 20; i++) {
			const v = value("pg", i);
			await db.query(`insert into ${names.table} values ($1, $2, $3, $4)`, [`pg-${i}`, v.name, v.score, v.tags]);
		}
		const source = { dataset, reject_log: `${scratch.dir}/rejects.ndjson` };
		bridge = await spawnBridge(
			{
				target: { url, key: adminKey },
				sources: [
					{ ...source, type: "nats", name: "nats", map: { key: "/id" }, servers: "127.0.0.1:4222", stream: names.stream, durable: "hotpath" },
					{
						...source,
						type: "redis-streams",
						name: "redis",
						map: { key: "/id" },
						url: "redis://127.0.0.1:6379",
						stream: names.redisStream,
						group: "hotpath",
						consumer: "e2e",
					},
					{ ...source, type: "amqp", name: "amqp", map: { key: "/id" }, url: "amqp://guest:guest@127.0.0.1:5672", queue: names.queue },
					{
						...source,
						type: "mqtt",
						name: "mqtt",
						map: { key: "/id" },
						url: "mqtt://127.0.0.1:1883",
						topic: `${names.topic}/#`,
						client_id: `bridge-e2e-${id}`,
					},
					{
						...source,
						type: "postgres",
						name: "pg",
						url: "postgres://postgres@127.0.0.1:5432/test",
						tables: [names.table],
						slot: names.slot,
						publication: names.slot,
						state_file: `${scratch.dir}/pg-state.json`,
					},
				],
			},
			scratch.dir,
			["nats", "redis", "amqp", "mqtt", "pg"],
		);

		const nc = await natsConnect({ servers: "127.0.0.1:4222" });
		const js = jetstream(nc);
		const conn = await amqpConnect("amqp://guest:guest@127.0.0.1:5672");
		const ch = await conn.createChannel();
		const mqtt = await connectAsync("mqtt://127.0.0.1:1883", { clientId: `bridge-e2e-pub-${id}` });
		for (let i = 0; i < 20; i++) {
			await js.publish(`${names.stream}.x`, JSON.stringify({ id: `nats-${i}`, ...value("nats", i) }));
			await redis.xadd(names.redisStream, "*", "json", JSON.stringify({ id: `redis-${i}`, ...value("redis", i) }));
			ch.sendToQueue(names.queue, Buffer.from(JSON.stringify({ id: `amqp-${i}`, ...value("amqp", i) })), { messageId: `m${i}` });
			await mqtt.publishAsync(`${names.topic}/x`, JSON.stringify({ id: `mqtt-${i}`, ...value("mqtt", i) }), { qos: 1 });
		}
		// Changes after the snapshot: an update, a delete, an insert.
		await db.query(`update ${names.table} set score = 99.5 where id = 'pg-3'`);
		await db.query(`delete from ${names.table} where id = 'pg-4'`);
		await db.query(`insert into ${names.table} values ('pg-20', 'pg 20', 20.5, '{pg,n20}')`);
		await nc.close();
		await conn.close();
		await mqtt.endAsync();

		const keys = ["nats", "redis", "amqp", "mqtt", "pg"].flatMap((s) => Array.from({ length: 20 }, (_, i) => `${s}-${i}`));
		keys.push("pg-20");
		const records = await eventually(
			async () => {
				const r = await lookup(keys);
				const present = [...r.values()].filter((x) => x.status === "present").length;
				const pg3 = r.get("pg-3")?.value as { score?: number } | undefined;
				return present === keys.length - 1 && pg3?.score === 99.5 ? r : undefined;
			},
			60_000,
			"every record readable",
		);
		for (const s of ["nats", "redis", "amqp", "mqtt"]) {
			for (const i of [0, 7, 19]) expect(records.get(`${s}-${i}`)).toMatchObject({ status: "present", value: value(s, i) });
		}
		expect(records.get("pg-0")).toMatchObject({ status: "present", value: value("pg", 0) });
		expect(records.get("pg-3")).toMatchObject({ status: "present", value: { ...value("pg", 3), score: 99.5 } });
		expect(records.get("pg-4")?.status).toBe("not_found");
		expect(records.get("pg-20")).toMatchObject({ status: "present", value: value("pg", 20) });

		const metrics = await bridge.metrics();
		for (const s of ["nats", "redis", "amqp", "mqtt"]) expect(metrics.sources[s]).toMatchObject({ sent: 20, acked: 20, rejected: 0, pending: 0 });
		expect(metrics.sources.pg).toMatchObject({ sent: 23, acked: 23, rejected: 0, pending: 0 });
		expect(await bridge.stop()).toBe(0);
	}, 120_000);
});
