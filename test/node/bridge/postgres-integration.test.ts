// The postgres source against the real PostgreSQL on 127.0.0.1:5432 (wal_level = logical) and a fake Hotpath.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeHotpath, type RecordedEvent, startFakeHotpath } from "./fake-hotpath.ts";
import { type BridgeProcess, eventually, runToExit, scratchDir, spawnBridge, testTarget } from "./harness.ts";

const URL = "postgres://postgres@127.0.0.1:5432/test";
let db: pg.Client;
let fake: FakeHotpath;
const scratch = scratchDir();
let running: BridgeProcess[] = [];
let names: { table: string; slot: string; publication: string; state: string };

beforeAll(async () => {
	db = new pg.Client({ connectionString: URL });
	await db.connect();
	fake = await startFakeHotpath({ datasets: ["accounts"] });
});

afterAll(async () => {
	await db?.end();
	await fake?.close();
	scratch.remove();
});

beforeEach(async () => {
	fake.events.length = 0;
	fake.delayMs = 0;
	await fake.setMode("ok");
	const id = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
	names = { table: `bridge_accounts_${id}`, slot: `bridge_test_${id}`, publication: `bridge_test_${id}`, state: path.join(scratch.dir, `state-${id}.json`) };
	await db.query(
		`create table ${names.table} (id int primary key, name text not null, balance numeric(12, 2), visits int8, tags text[], prefs jsonb, seen timestamptz, born date)`,
	);
});

afterEach(async () => {
	for (const b of running) await b.kill9();
	running = [];
	// A leftover slot pins WAL: drop it (once its walsender has gone).
	await eventually(async () => {
		const r = await db.query("select active from pg_replication_slots where slot_name = $1", [names.slot]);
		if (!r.rows.length) return true;
		if (r.rows[0].active) return undefined;
		await db.query("select pg_drop_replication_slot($1)", [names.slot]);
		return true;
	}, 20_000);
	await db.query(`drop publication if exists ${names.publication}`);
	await db.query(`drop table if exists ${names.table}`);
});

const config = (extra: object = {}, batch: object = {}) => ({
	...testTarget(fake.url, fake.key),
	batch: { max_events: 200, max_wait_ms: 20, max_in_flight: 4, ...batch },
	sources: [
		{
			type: "postgres",
			name: "accounts",
			dataset: "accounts",
			url: URL,
			tables: [names.table],
			slot: names.slot,
			publication: names.publication,
			state_file: names.state,
			snapshot_fetch: 100,
			reject_log: path.join(scratch.dir, `rejects-${names.slot}.ndjson`),
			...extra,
		},
	],
});

const start = async (extra: object = {}, batch: object = {}) => {
	const b = await spawnBridge(config(extra, batch), scratch.dir, ["accounts"]);
	running.push(b);
	return b;
};

const insertRows = (from: number, to: number) =>
	db.query(
		`insert into ${names.table} select g, 'n' || g, g * 1.25, g * 10000000000::int8, array['a', 'b' || g], jsonb_build_object('g', g), '2026-01-02T03:04:05.678Z', '2024-02-29' from generate_series($1::int, $2::int) g`,
		[from, to - 1],
	);

/** What the table holds now, as (key -> name). */
async function tableNames(): Promise<Map<string, string>> {
	const r = await db.query(`select id, name from ${names.table}`);
	return new Map(r.rows.map((row) => [String(row.id), row.name as string]));
}

/** Hotpath's converged state per key, as the fake derives it: null for a deleted key. */
function hotpathNames(): Map<string, string | null> {
	const out = new Map<string, string | null>();
	for (const [key, e] of fake.latest("accounts")) out.set(key, e.op === "delete" ? null : ((e.value?.name as string | undefined) ?? "(patch)"));
	return out;
}

/** Every key the table has is present with its name in Hotpath; every key Hotpath has that the table lacks is deleted. */
async function converged(): Promise<true | undefined> {
	const want = await tableNames();
	const have = hotpathNames();
	for (const [k, name] of want) if (have.get(k) !== name) return undefined;
	for (const [k, name] of have) if (!want.has(k) && name !== null) return undefined;
	return true;
}

const slotInfo = async () =>
	(
		await db.query(
			"select confirmed_flush_lsn::text as confirmed, pg_current_wal_lsn()::text as current, (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 as lag from pg_replication_slots where slot_name = $1",
			[names.slot],
		)
	).rows[0] as { confirmed: string; current: string; lag: string };

const events = (pred: (e: RecordedEvent) => boolean) => fake.events.filter(pred);

describe("postgres source", () => {
	it("snapshot, then inserts, updates (and primary key changes) and deletes, with column types mapped and commit times", async () => {
		await insertRows(1, 301);
		const bridge = await start();
		await eventually(() => (fake.ids().size === 1 && fake.events.length === 300 ? true : undefined), 20_000, "the 300 snapshot rows");
		const snap = fake.events[0] as RecordedEvent;
		// One id for the whole snapshot (an id is applied at most once per key), and one time, before any change.
		expect(snap.id).toMatch(new RegExp(`^pg:[0-9A-F]{8}/[0-9A-F]{8}:public\\.${names.table}:snapshot$`));
		const state = JSON.parse(readFileSync(names.state, "utf8"));
		await eventually(() => (JSON.parse(readFileSync(names.state, "utf8")).snapshot?.done ? true : undefined));
		expect(state.snapshot.time).toBe(snap.event_time);

		await db.query(`update ${names.table} set name = 'renamed', balance = 99.99 where id = 5`);
		await db.query(`delete from ${names.table} where id = 6`);
		await db.query(`update ${names.table} set id = 1000 where id = 7`);
		await db.query("begin");
		await insertRows(301, 311);
		await db.query(`update ${names.table} set name = 'twice' where id = 301`);
		await db.query(`delete from ${names.table} where id = 302`);
		await db.query("commit");
		await eventually(converged, 20_000, "Hotpath to match the table");

		const five = events((e) => e.key === "5" && e.op === "upsert");
		expect(five).toHaveLength(2);
		expect(five[0]?.value).toEqual({
			name: "n5",
			balance: 6.25,
			visits: 50000000000,
			tags: ["a", "b5"],
			prefs: { g: 5 },
			seen: "2026-01-02T03:04:05.678Z",
			born: "2024-02-29",
		});
		// The stream gives the same types as the snapshot; the primary key is the key, not a field.
		expect(five[1]?.value).toMatchObject({ name: "renamed", balance: 99.99, visits: 50000000000, prefs: { g: 5 } });
		expect(five[1]?.id).toMatch(/^pg:[0-9A-F]{8}\/[0-9A-F]{8}:public\.bridge_accounts_\w+:0000000000$/);
		expect(five[1]?.event_time as number).toBeGreaterThan(snap.event_time as number);
		expect(Math.abs((five[1]?.event_time as number) - Date.now())).toBeLessThan(60_000);
		expect(events((e) => e.key === "6").map((e) => e.op)).toEqual(["upsert", "delete"]);
		// A primary key change: a delete of the old key, an upsert of the new one.
		expect(events((e) => e.key === "7").map((e) => e.op)).toEqual(["upsert", "delete"]);
		expect(events((e) => e.key === "1000").map((e) => e.op)).toEqual(["upsert"]);
		// One transaction: one commit LSN, numbered changes in order, one commit time.
		const txn = events((e) => Number(e.key) >= 301 && Number(e.key) <= 310);
		expect(new Set(txn.map((e) => e.id.split(":").slice(0, 3).join(":"))).size).toBe(1);
		expect(new Set(txn.map((e) => e.event_time)).size).toBe(1);
		expect(txn.map((e) => e.id)).toEqual([...txn.map((e) => e.id)].sort());

		await eventually(async () => ((await bridge.metrics()).sources.accounts?.lag === 0 ? true : undefined), 10_000, "lag 0");
		expect(await bridge.stop()).toBe(0);
		const slot = await slotInfo();
		expect(Number(slot.lag)).toBe(0);
	}, 60_000);

	it("a restart resumes from the confirmed LSN: no second snapshot, nothing confirmed sent again, changes made meanwhile arrive", async () => {
		await insertRows(1, 51);
		const first = await start();
		await eventually(() => (fake.events.length === 50 ? true : undefined), 20_000, "the snapshot");
		await db.query(`update ${names.table} set name = 'before-stop' where id = 1`);
		await eventually(converged, 20_000, "convergence");
		await eventually(async () => (Number((await slotInfo()).lag) === 0 ? true : undefined), 10_000, "the slot to be confirmed");
		expect(await first.stop()).toBe(0);
		const seen = fake.ids();
		const count = fake.events.length;

		await db.query(`update ${names.table} set name = 'while-down' where id = 2`);
		await db.query(`delete from ${names.table} where id = 3`);
		await insertRows(51, 53);
		await start();
		await eventually(converged, 20_000, "convergence after the restart");
		const after = fake.events.slice(count);
		expect(after.map((e) => `${e.key}:${e.op}`).sort()).toEqual(["2:upsert", "3:delete", "51:upsert", "52:upsert"]);
		expect(after.some((e) => seen.has(e.id))).toBe(false);
	}, 60_000);

	it("kill -9 mid-stream, then a restart: Hotpath converges to the table and the slot is confirmed to the end", async () => {
		await insertRows(1, 11);
		// Small batches answered slowly keep the bridge well behind the changes when it is killed.
		fake.delayMs = 300;
		const first = await start({}, { max_events: 20 });
		await eventually(() => (fake.events.length >= 10 ? true : undefined), 20_000, "the snapshot");
		// 300 transactions of inserts, updates and deletes.
		for (let i = 0; i < 100; i++) {
			await insertRows(100 + i * 10, 110 + i * 10);
			await db.query(`update ${names.table} set name = 'u' || id where id between $1 and $2`, [100 + i * 10, 104 + i * 10]);
			await db.query(`delete from ${names.table} where id = $1`, [109 + i * 10]);
		}
		await eventually(() => (fake.events.length >= 300 ? true : undefined), 20_000, "some changes");
		await first.kill9();
		expect(await converged()).toBeUndefined();

		fake.delayMs = 0;
		const second = await start();
		await eventually(converged, 30_000, "Hotpath to match the table");
		await eventually(async () => (Number((await slotInfo()).lag) === 0 ? true : undefined), 10_000, "the slot to be confirmed to the end");
		expect(await second.stop()).toBe(0);
	}, 90_000);

	it("kill -9 during the snapshot: the next start takes a new one, and deletes made meanwhile still win", async () => {
		await insertRows(1, 2001);
		fake.delayMs = 300;
		const first = await start({}, { max_events: 20 });
		await eventually(() => (fake.events.length >= 200 ? true : undefined), 20_000, "part of the snapshot");
		await first.kill9();
		expect(JSON.parse(readFileSync(names.state, "utf8")).snapshot.done).toBe(false);
		// Rows the first snapshot already sent are deleted or changed while the bridge is down.
		const sent = [...fake.latest("accounts").keys()].slice(0, 20);
		await db.query(`delete from ${names.table} where id = any($1::int[])`, [sent]);
		await db.query(`update ${names.table} set name = 'changed' where id between 1500 and 1510`);

		fake.delayMs = 0;
		const second = await start();
		await eventually(converged, 30_000, "Hotpath to match the table");
		await eventually(() => (JSON.parse(readFileSync(names.state, "utf8")).snapshot.done ? true : undefined));
		expect(second.output()).toMatch(/taking one now/);
		for (const k of sent) expect(hotpathNames().get(k)).toBeNull();
		expect(await second.stop()).toBe(0);
	}, 90_000);

	it("Hotpath down for a while, then up: nothing is confirmed meanwhile and nothing is lost", async () => {
		const bridge = await start({ snapshot: false });
		await eventually(async () => ((await slotInfo())?.confirmed ? true : undefined));
		await fake.setMode("down");
		const before = await slotInfo();
		await insertRows(1, 201);
		await eventually(async () => ((await bridge.metrics()).target.retries >= 3 ? true : undefined), 20_000, "retries");
		expect((await slotInfo()).confirmed).toBe(before.confirmed);
		expect((await bridge.metrics()).sources.accounts).toMatchObject({ acked: 0, sent: 0 });
		await fake.setMode("ok");
		await eventually(converged, 20_000, "Hotpath to match the table");
		await eventually(async () => (Number((await slotInfo()).lag) === 0 ? true : undefined), 10_000, "the slot to be confirmed");
		expect(await bridge.stop()).toBe(0);
		expect(existsSync(names.state)).toBe(true);
	}, 60_000);
});

describe("postgres source: more table shapes", () => {
	it("a partitioned table: changes to its partitions after the snapshot arrive too (not only the snapshot)", async () => {
		const parent = `${names.table}_part`;
		await db.query(`create table ${parent} (id int primary key, name text not null) partition by range (id)`);
		await db.query(`create table ${parent}_a partition of ${parent} for values from (0) to (1000)`);
		try {
			await db.query(`insert into ${parent} values (1, 'one')`);
			// A publication made beforehand, as PostgreSQL makes it by default (changes under the partitions' names).
			await db.query(`create publication ${names.publication} for table ${parent}`);
			const bridge = await start({ tables: [parent] });
			await eventually(() => (fake.events.length === 1 ? true : undefined), 20_000, "the snapshot");
			await db.query(`insert into ${parent} values (2, 'two')`);
			await db.query(`update ${parent} set name = 'uno' where id = 1`);
			await eventually(
				() => (fake.latest("accounts").get("2")?.value?.name === "two" && fake.latest("accounts").get("1")?.value?.name === "uno" ? true : undefined),
				10_000,
				"the streamed changes",
			);
			expect(bridge.output()).toMatch(/setting publish_via_partition_root/);
			expect(await bridge.stop()).toBe(0);
		} finally {
			for (const b of running) await b.kill9();
			running = [];
			await eventually(async () => {
				const r = await db.query("select active from pg_replication_slots where slot_name = $1", [names.slot]);
				if (!r.rows.length) return true;
				if (r.rows[0].active) return undefined;
				await db.query("select pg_drop_replication_slot($1)", [names.slot]);
				return true;
			}, 20_000);
			await db.query(`drop publication if exists ${names.publication}`);
			await db.query(`drop table if exists ${parent}`);
		}
	}, 60_000);

	it("a table whose REPLICA IDENTITY is an index other than the primary key is refused at start (its deletes carry no primary key)", async () => {
		await db.query(`create unique index ${names.table}_name on ${names.table} (name)`);
		await db.query(`alter table ${names.table} replica identity using index ${names.table}_name`);
		const { code, output } = await runToExit(config(), scratch.dir, ["--status-interval", "0"], { timeoutMs: 20_000 });
		expect(code).toBe(1);
		expect(output).toMatch(new RegExp(`${names.table} has REPLICA IDENTITY USING INDEX ${names.table}_name`));
	}, 30_000);

	it("an update that leaves a TOASTed column unchanged is a patch of the other columns, and keeps the big value", async () => {
		await db.query(`alter table ${names.table} alter column name set storage external`);
		const big = "x".repeat(100_000);
		await db.query(`insert into ${names.table} (id, name, visits) values (1, $1, 5)`, [big]);
		const bridge = await start();
		await eventually(() => (fake.events.length === 1 ? true : undefined), 20_000, "the snapshot");
		await db.query(`update ${names.table} set visits = 6 where id = 1`);
		await eventually(() => (fake.events.length === 2 ? true : undefined), 10_000, "the update");
		const upd = fake.events[1] as RecordedEvent;
		expect(upd.op).toBe("patch");
		expect(upd.value).toMatchObject({ visits: 6 });
		expect(upd.value).not.toHaveProperty("name");
		expect(await bridge.stop()).toBe(0);
	}, 60_000);

	it("a primary key change that leaves a TOASTed column unchanged: the record under the new key keeps the big value", async () => {
		await db.query(`alter table ${names.table} alter column name set storage external`);
		const big = "y".repeat(100_000);
		await db.query(`insert into ${names.table} (id, name, visits) values (1, $1, 5)`, [big]);
		const bridge = await start();
		await eventually(() => (fake.events.length === 1 ? true : undefined), 20_000, "the snapshot");
		await db.query(`update ${names.table} set id = 2, visits = 6 where id = 1`);
		await eventually(() => (fake.events.length >= 3 ? true : undefined), 10_000, "the update");
		expect(fake.latest("accounts").get("1")?.op).toBe("delete");
		const moved = fake.latest("accounts").get("2")?.value;
		expect(moved?.visits).toBe(6);
		// (Not toEqual(big): a failure would print 100 000 characters.)
		expect((moved?.name as string | undefined)?.length).toBe(big.length);
		expect(moved?.name === big).toBe(true);
		expect(await bridge.stop()).toBe(0);
	}, 60_000);

	it("a generated column (which pgoutput does not send) is left out of the snapshot too: no field that the first update would drop", async () => {
		await db.query(`alter table ${names.table} add column doubled int8 generated always as (visits * 2) stored`);
		await db.query(`insert into ${names.table} (id, name, visits) values (1, 'one', 5)`);
		const bridge = await start();
		await eventually(() => (fake.events.length === 1 ? true : undefined), 20_000, "the snapshot");
		await db.query(`update ${names.table} set visits = 6 where id = 1`);
		await eventually(() => (fake.events.length === 2 ? true : undefined), 10_000, "the update");
		const [snap, upd] = fake.events as RecordedEvent[];
		expect(upd?.value).not.toHaveProperty("doubled");
		expect(Object.keys(snap?.value ?? {}).sort()).toEqual(Object.keys(upd?.value ?? {}).sort());
		expect(await bridge.stop()).toBe(0);
	}, 60_000);

	it("a table added to the config after the slot's snapshot: its existing rows arrive (a snapshot of that table alone), then its changes", async () => {
		const second = `${names.table}_added`;
		await db.query(`create table ${second} (id int primary key, name text not null)`);
		try {
			await insertRows(1, 4);
			const first = await start();
			await eventually(() => (fake.events.length === 3 ? true : undefined), 20_000, "the first snapshot");
			await eventually(() => (JSON.parse(readFileSync(names.state, "utf8")).snapshot?.done ? true : undefined));
			expect(await first.stop()).toBe(0);
			running = [];
			await db.query(`insert into ${second} values (1001, 'old-a'), (1002, 'old-b')`);
			await db.query(`update ${names.table} set name = 'meanwhile' where id = 1`);
			const bridge = await start({ tables: [names.table, second] });
			await eventually(
				() =>
					fake.latest("accounts").get("1002")?.value?.name === "old-b" && fake.latest("accounts").get("1")?.value?.name === "meanwhile" ? true : undefined,
				20_000,
				"the added table's rows",
			);
			// The first table is not copied again.
			expect(fake.events.filter((e) => e.key === "2")).toHaveLength(1);
			await db.query(`insert into ${second} values (1003, 'new')`);
			await eventually(() => (fake.latest("accounts").get("1003")?.value?.name === "new" ? true : undefined), 10_000, "a change of the added table");
			expect(bridge.output()).toMatch(/taking a snapshot of public\.\w+_added/);
			expect(await bridge.stop()).toBe(0);
		} finally {
			for (const b of running) await b.kill9();
			running = [];
			await eventually(async () => {
				const r = await db.query("select active from pg_replication_slots where slot_name = $1", [names.slot]);
				if (!r.rows.length) return true;
				if (r.rows[0].active) return undefined;
				await db.query("select pg_drop_replication_slot($1)", [names.slot]);
				return true;
			}, 20_000);
			await db.query(`drop publication if exists ${names.publication}`);
			await db.query(`drop table if exists ${second}`);
		}
	}, 60_000);
});
