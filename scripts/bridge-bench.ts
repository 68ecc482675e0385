/**
 * Bridge benchmark: end to end through `cli/bridge/main.ts` into `npm run dev`, from the first
 * publish until the last record is readable.
 *
 *   node scripts/bridge-bench.ts [--messages 50000] [--rows 100000] [--only nats,redis,pg,fake] [--url URL --key KEY] [--json FILE]
 *
 * - nats, redis: N messages published as fast as the client can (distinct keys; NATS with core
 *   publishes into the stream's subject, Redis with pipelined XADDs of 1,000), the bridge running
 *   as a child process. Reported: publish time, the time until the bridge has acked all of them, the
 *   time until every record is readable (polled with /v1/lookup over the last 1,000 keys, then all
 *   keys checked), messages/s end to end, and the bridge's CPU per message (process.cpuUsage of the
 *   bridge, from its /metrics).
 * - pg: a table of R rows copied by the postgres source's snapshot; rows/s until acked and until readable.
 * - fake: N NATS messages into a local stand-in for POST /v1/events that answers 202 at once: what the
 *   bridge itself costs, without wrangler dev's proxy (a few hundred requests/s) or the queue consumer.
 *
 * Without --url it starts `npm run dev` on a free port with a fresh --persist-to directory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import pg from "pg";
import { freePort } from "./lib/redis-server.ts";

const root = path.join(import.meta.dirname, "..");
const { values: args } = parseArgs({
	options: {
		messages: { type: "string", default: "50000" },
		rows: { type: "string", default: "100000" },
		only: { type: "string", default: "nats,redis,pg,fake" },
		url: { type: "string" },
		key: { type: "string" },
		json: { type: "string" },
		"max-events": { type: "string", default: "2000" },
		"in-flight": { type: "string", default: "4" },
	},
});
const N = Number(args.messages);
const ROWS = Number(args.rows);
const only = new Set((args.only as string).split(","));
const batch = { max_events: Number(args["max-events"]), max_wait_ms: 50, max_in_flight: Number(args["in-flight"]) };
const PG_URL = "postgres://postgres@127.0.0.1:5432/test";
const id = Date.now().toString(36);
const work = mkdtempSync(path.join(tmpdir(), "hotpath-bridge-bench-"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[bridge-bench] ${line}\n`);

interface Metrics {
	process: { cpu_user_ms: number; cpu_system_ms: number };
	sources: Record<string, { received: number; acked: number; rejected: number }>;
}

/** `npm run dev` on a free port, or the server given with --url/--key. */
async function devServer(): Promise<{ url: string; key: string; stop: () => Promise<void> }> {
	if (args.url) return { url: args.url, key: args.key ?? process.env.HOTPATH_KEY ?? "", stop: async () => {} };
	const port = await freePort();
	const persist = mkdtempSync(path.join(tmpdir(), "hotpath-bridge-bench-dev-"));
	const dev = spawn("npm", ["run", "dev", "--", "--port", String(port), "--persist-to", persist], {
		cwd: root,
		stdio: ["ignore", "pipe", "pipe"],
		detached: true,
	});
	let out = "";
	dev.stdout?.on("data", (d: Buffer) => (out += d.toString()));
	dev.stderr?.on("data", (d: Buffer) => (out += d.toString()));
	const stop = async () => {
		try {
			if (dev.pid) process.kill(-dev.pid, "SIGTERM");
		} catch {}
		await sleep(1500);
		try {
			if (dev.pid) process.kill(-dev.pid, "SIGKILL");
		} catch {}
		rmSync(persist, { recursive: true, force: true });
	};
	for (let waited = 0; !out.includes("[hotpath] ready at"); waited += 200) {
		if (waited > 120_000 || dev.exitCode !== null) {
			await stop();
			throw new Error(`npm run dev did not start:\n${out.slice(-2000)}`);
		}
		await sleep(200);
	}
	const key = readFileSync(path.join(root, ".dev.vars"), "utf8").match(/HOTPATH_ADMIN_KEY\s*=\s*"?([^"\n]+)/)?.[1] ?? "";
	return { url: `http://127.0.0.1:${port}`, key, stop };
}

/** The bridge as a child process, started and waiting for messages. */
async function startBridge(
	config: object,
	names: string[],
): Promise<{ proc: ChildProcess; metrics: () => Promise<Metrics>; stop: () => Promise<number | null> }> {
	const file = path.join(work, `bridge-${names.join("-")}.json`);
	writeFileSync(file, JSON.stringify(config));
	const port = await freePort();
	const proc = spawn(
		process.execPath,
		[path.join(root, "cli", "bridge", "main.ts"), "--config", file, "--status-port", String(port), "--status-interval", "0"],
		{
			cwd: work,
			stdio: ["ignore", "ignore", "pipe"],
		},
	);
	let out = "";
	proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
	const exited = new Promise<number | null>((resolve) => proc.once("exit", resolve));
	while (!names.every((n) => out.includes(`${n}: started`))) {
		if (proc.exitCode !== null) throw new Error(`the bridge exited:\n${out}`);
		await sleep(50);
	}
	return {
		proc,
		metrics: async () => (await (await fetch(`http://127.0.0.1:${port}/metrics`)).json()) as Metrics,
		stop: async () => {
			proc.kill("SIGTERM");
			return exited;
		},
	};
}

const cpuMs = (m: Metrics) => m.process.cpu_user_ms + m.process.cpu_system_ms;

async function lookupPresent(server: { url: string; key: string }, dataset: string, keys: string[]): Promise<number> {
	let present = 0;
	for (let i = 0; i < keys.length; i += 1000) {
		const res = await fetch(`${server.url}/v1/lookup`, {
			method: "POST",
			headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" },
			body: JSON.stringify({ requests: [{ dataset, keys: keys.slice(i, i + 1000), fields: ["n"] }] }),
		});
		const body = (await res.json()) as { results: { records: { status: string }[] }[] };
		present += body.results[0]?.records.filter((r) => r.status === "present").length ?? 0;
	}
	return present;
}

/** Polls the last 1,000 keys until all are readable, then checks every key; the time is when the last check began that found them all. */
async function waitReadable(server: { url: string; key: string }, dataset: string, keys: string[], t0: number): Promise<number> {
	const tail = keys.slice(-1000);
	for (;;) {
		if ((await lookupPresent(server, dataset, tail)) === tail.length) break;
		if (performance.now() - t0 > 600_000) throw new Error("records not readable after 10 minutes");
		await sleep(100);
	}
	let t = performance.now() - t0;
	for (;;) {
		const present = await lookupPresent(server, dataset, keys);
		if (present === keys.length) return t;
		log(`  ${keys.length - present} record(s) not readable yet; polling again`);
		await sleep(100);
		// Not all there at the first check: the time is when a full check finds them all.
		t = performance.now() - t0;
	}
}

async function waitAcked(bridge: { metrics: () => Promise<Metrics> }, name: string, n: number, t0: number): Promise<{ ms: number; metrics: Metrics }> {
	for (;;) {
		const m = await bridge.metrics();
		if ((m.sources[name]?.acked ?? 0) >= n) return { ms: performance.now() - t0, metrics: m };
		await sleep(20);
	}
}

async function createDataset(server: { url: string; key: string }, name: string): Promise<void> {
	const res = await fetch(`${server.url}/v1/datasets/${name}`, {
		method: "PUT",
		headers: { authorization: `Bearer ${server.key}`, "content-type": "application/json" },
		body: JSON.stringify({ key: "id", fields: { n: "int", score: "float", tag: "string" } }),
	});
	if (res.status !== 201) throw new Error(`PUT /v1/datasets/${name}: ${res.status} ${await res.text()}`);
}

const message = (prefix: string, i: number) => JSON.stringify({ id: `${prefix}-${i}`, n: i, score: i / 7, tag: `t${i % 100}` });

interface StreamResult {
	messages: number;
	publish_s: number;
	acked_s: number;
	readable_s?: number;
	msgs_per_s_acked: number;
	msgs_per_s_end_to_end?: number;
	bridge_cpu_us_per_msg: number;
}

function summarise(n: number, publishMs: number, acked: { ms: number; metrics: Metrics }, cpu0: number, readableMs?: number): StreamResult {
	const r: StreamResult = {
		messages: n,
		publish_s: +(publishMs / 1000).toFixed(2),
		acked_s: +(acked.ms / 1000).toFixed(2),
		msgs_per_s_acked: Math.round(n / (acked.ms / 1000)),
		bridge_cpu_us_per_msg: +(((cpuMs(acked.metrics) - cpu0) * 1000) / n).toFixed(1),
	};
	if (readableMs !== undefined) {
		r.readable_s = +(readableMs / 1000).toFixed(2);
		r.msgs_per_s_end_to_end = Math.round(n / (readableMs / 1000));
	}
	return r;
}

async function natsRun(target: { url: string; key: string }, dataset: string, readable: boolean): Promise<StreamResult> {
	const nc = await natsConnect({ servers: "127.0.0.1:4222" });
	const jsm = await jetstreamManager(nc);
	const stream = `BRIDGE_BENCH_${id}_${dataset}`.toUpperCase();
	await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
	try {
		const bridge = await startBridge(
			{
				target,
				batch,
				sources: [
					{
						type: "nats",
						name: "nats",
						dataset,
						map: { key: "/id" },
						servers: "127.0.0.1:4222",
						stream,
						durable: "bench",
						reject_log: `${work}/rejects-nats.ndjson`,
					},
				],
			},
			["nats"],
		);
		const cpu0 = cpuMs(await bridge.metrics());
		const t0 = performance.now();
		// Core NATS publishes into the stream's subject (JetStream stores them), flushed every 5,000.
		for (let i = 0; i < N; i++) {
			nc.publish(`${stream}.x`, message("nats", i));
			if (i % 5000 === 4999) await nc.flush();
		}
		await nc.flush();
		const publishMs = performance.now() - t0;
		const stored = (await jsm.streams.info(stream)).state.messages;
		if (stored !== N) throw new Error(`the stream holds ${stored} messages, not ${N}`);
		const acked = await waitAcked(bridge, "nats", N, t0);
		const readableMs = readable
			? await waitReadable(
					target,
					dataset,
					Array.from({ length: N }, (_, i) => `nats-${i}`),
					t0,
				)
			: undefined;
		await bridge.stop();
		return summarise(N, publishMs, acked, cpu0, readableMs);
	} finally {
		await jsm.streams.delete(stream).catch(() => {});
		await nc.close();
	}
}

async function redisRun(target: { url: string; key: string }, dataset: string): Promise<StreamResult> {
	const redis = new Redis("redis://127.0.0.1:6379");
	const stream = `bridge-bench:${id}`;
	try {
		const bridge = await startBridge(
			{
				target,
				batch,
				sources: [
					{
						type: "redis-streams",
						name: "redis",
						dataset,
						map: { key: "/id" },
						url: "redis://127.0.0.1:6379",
						stream,
						group: "bench",
						consumer: "bench-1",
						reject_log: `${work}/rejects-redis.ndjson`,
					},
				],
			},
			["redis"],
		);
		const cpu0 = cpuMs(await bridge.metrics());
		const t0 = performance.now();
		for (let i = 0; i < N; i += 1000) {
			const p = redis.pipeline();
			for (let j = i; j < Math.min(N, i + 1000); j++) p.xadd(stream, "*", "json", message("redis", j));
			await p.exec();
		}
		const publishMs = performance.now() - t0;
		const acked = await waitAcked(bridge, "redis", N, t0);
		const readableMs = await waitReadable(
			target,
			dataset,
			Array.from({ length: N }, (_, i) => `redis-${i}`),
			t0,
		);
		await bridge.stop();
		return summarise(N, publishMs, acked, cpu0, readableMs);
	} finally {
		await redis.del(stream);
		redis.disconnect();
	}
}

async function pgRun(target: { url: string; key: string }, dataset: string): Promise<Record<string, number>> {
	const db = new pg.Client({ connectionString: PG_URL });
	await db.connect();
	const table = `bridge_bench_${id}`;
	const slot = `bridge_bench_${id}`;
	try {
		await db.query(`create table ${table} (id text primary key, n int, score float8, tag text)`);
		await db.query(`insert into ${table} select 'pg-' || g, g, g / 7.0, 't' || (g % 100) from generate_series(0, $1::int - 1) g`, [ROWS]);
		const t0 = performance.now();
		const bridge = await startBridge(
			{
				target,
				batch,
				sources: [
					{
						type: "postgres",
						name: "pg",
						dataset,
						url: PG_URL,
						tables: [table],
						slot,
						publication: slot,
						state_file: `${work}/pg-state.json`,
						reject_log: `${work}/rejects-pg.ndjson`,
					},
				],
			},
			["pg"],
		);
		const acked = await waitAcked(bridge, "pg", ROWS, t0);
		const readableMs = await waitReadable(
			target,
			dataset,
			Array.from({ length: ROWS }, (_, i) => `pg-${i}`),
			t0,
		);
		await bridge.stop();
		return {
			rows: ROWS,
			acked_s: +(acked.ms / 1000).toFixed(2),
			readable_s: +(readableMs / 1000).toFixed(2),
			rows_per_s_acked: Math.round(ROWS / (acked.ms / 1000)),
			rows_per_s_end_to_end: Math.round(ROWS / (readableMs / 1000)),
			bridge_cpu_us_per_row: +((cpuMs(acked.metrics) * 1000) / ROWS).toFixed(1),
		};
	} finally {
		await db.query("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active", [slot]).catch(() => {});
		await db.query(`drop publication if exists ${slot}`);
		await db.query(`drop table if exists ${table}`);
		await db.end();
	}
}

/** A stand-in for POST /v1/events that answers 202 at once: the bridge's own cost. */
async function fakeTarget(): Promise<{ url: string; key: string; close: () => void }> {
	const server = createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on("data", (c: Buffer) => chunks.push(c));
		req.on("end", () => {
			if (req.method === "GET") return res.writeHead(200, { "content-type": "application/json" }).end("{}");
			const accepted = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown[]).length;
			res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ accepted, rejected: [] }));
		});
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, key: "bench", close: () => server.close() };
}

const results: Record<string, unknown> = {
	when: new Date().toISOString(),
	command: `node scripts/bridge-bench.ts ${process.argv.slice(2).join(" ")}`.trim(),
	batch,
};
try {
	if (only.has("fake")) {
		const fake = await fakeTarget();
		log(`fake target: ${N} NATS messages`);
		results.fake_nats = await natsRun(fake, "bench", false);
		log(JSON.stringify(results.fake_nats));
		fake.close();
	}
	if (only.has("nats") || only.has("redis") || only.has("pg")) {
		const server = await devServer();
		const target = { url: server.url, key: server.key };
		try {
			if (only.has("nats")) {
				const ds = `bench_nats_${id}`;
				await createDataset(target, ds);
				log(`npm run dev: ${N} NATS messages`);
				results.nats = await natsRun(target, ds, true);
				log(JSON.stringify(results.nats));
			}
			if (only.has("redis")) {
				const ds = `bench_redis_${id}`;
				await createDataset(target, ds);
				log(`npm run dev: ${N} Redis Streams entries`);
				results.redis = await redisRun(target, ds);
				log(JSON.stringify(results.redis));
			}
			if (only.has("pg")) {
				const ds = `bench_pg_${id}`;
				await createDataset(target, ds);
				log(`npm run dev: PostgreSQL snapshot of ${ROWS} rows`);
				results.pg_snapshot = await pgRun(target, ds);
				log(JSON.stringify(results.pg_snapshot));
			}
		} finally {
			await server.stop();
		}
	}
} finally {
	rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
if (args.json) writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
