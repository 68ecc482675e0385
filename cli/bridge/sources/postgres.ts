/**
 * PostgreSQL change data capture: logical replication with pgoutput.
 *
 * 1. The publication (insert, update, delete of the configured tables) and the slot are created when
 *    missing. Nothing is confirmed to the slot before the snapshot is done, so it keeps every change
 *    from its creation on.
 * 2. The snapshot: a temporary slot made with EXPORT_SNAPSHOT gives a snapshot that is exactly the
 *    state at its consistent point, which is at or after the main slot's start. Each table is read in
 *    that snapshot (REPEATABLE READ, a cursor) and sent as upserts with event_time T (server time
 *    taken before the temporary slot, minus 1 ms) and id `pg:<its LSN>:<table>:snapshot`.
 * 3. Then the main slot is streamed from its confirmed LSN: inserts and updates as upserts (a patch
 *    when an unchanged TOASTed column was left out), deletes as deletes, keyed by the primary key,
 *    id `pg:<commit LSN>:<table>:<n>`, event_time the commit time, kept non-decreasing in commit order
 *    and above T. So every streamed change wins over the snapshot, and among themselves changes apply
 *    in commit order (ties on time break on the id, which sorts by LSN): replaying changes the snapshot
 *    already holds ends at the same state, and a delete replayed after a snapshot row (or a partial
 *    snapshot from an earlier attempt) removes it. Nothing is lost and nothing applies twice.
 * 4. A transaction's end LSN is confirmed (standby status update) only when Hotpath has answered for
 *    all its changes and for every transaction before it. When idle, the server's keepalive position
 *    is confirmed, so unrelated WAL is not held.
 *
 * The state file remembers whether the slot's snapshot is done, T, and the event_time reached at the
 * confirmed LSN (so a restart replays with the very same times and ids). A crash mid-snapshot means a
 * new snapshot on the next start, which the rules above make safe.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from "pg-logical-replication";
import type { PostgresConfig } from "../config.ts";
import { boundedId } from "../ids.ts";
import { OrderedAcks } from "../ordered-acks.ts";
import { loadTypes, type PgType, toJsonValue } from "./pg-values.ts";
import type { Delivery, Op, Source, SourceSink } from "./source.ts";

interface Txn {
	commitLsn: string;
	endLsn?: string;
	/** Changes handed over and not yet acked. */
	pending: number;
	committed: boolean;
	/** The event_time of its last change (the clamp's value once it is done). */
	lastTime: number;
}

export interface PgDelivery extends Delivery {
	txn?: Txn;
	snapshot?: boolean;
	/** Stream generation: after a reconnect, acks of the previous one are moot (those changes come again). */
	generation: number;
}

interface TableInfo {
	qualified: string;
	schema: string;
	name: string;
	dataset: string;
	primaryKey: string[];
	partitioned: boolean;
	/** The columns pgoutput sends (not generated ones), as the snapshot selects them. */
	columns: string[];
}

interface BridgeState {
	slot: string;
	/** `tables`: the tables it covers (qualified names); a table added to the config later gets a snapshot of its own. */
	snapshot?: { done: boolean; time: number; lsn: string; tables?: string[] };
	confirmed_lsn?: string;
	/** The event_time of the last change at confirmed_lsn. */
	last_event_time?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;

/** LSN text `X/Y` as a number. */
export const lsnValue = (lsn: string): bigint => {
	const [hi, lo] = lsn.split("/");
	return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};
/** `XXXXXXXX/XXXXXXXX`: zero-padded, so LSNs in ids compare as text the way they compare as numbers. */
export const padLsn = (lsn: string | bigint): string => {
	const v = typeof lsn === "bigint" ? lsn : lsnValue(lsn);
	return `${(v >> 32n).toString(16).toUpperCase().padStart(8, "0")}/${(v & 0xffffffffn).toString(16).toUpperCase().padStart(8, "0")}`;
};

/** pg's ClientConfig without `replication` in its types. */
type ReplicationConfig = pg.ClientConfig & { replication?: "database" };

/**
 * The record key of a row's primary key values: one column, its value; several, the values joined
 * by ":", in each value a backslash doubled and a colon escaped with a backslash (a value without either is as it is), so that
 * ("a:b", "c") and ("a", "b:c") stay two records instead of one overwriting the other.
 */
export function primaryKeyText(parts: readonly unknown[]): string {
	const text = parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p)));
	if (text.length === 1) return text[0] as string;
	return text.map((t) => t.replaceAll("\\", "\\\\").replaceAll(":", "\\:")).join(":");
}

export class PostgresSource implements Source<PgDelivery> {
	private readonly c: PostgresConfig;
	private readonly stateFile: string;
	private db: pg.Client | undefined;
	private readonly tables = new Map<string, TableInfo>();
	private types = new Map<number, PgType>();
	private state: BridgeState;
	private sink: SourceSink<PgDelivery> | undefined;
	private service: LogicalReplicationService | undefined;
	private run: Promise<void> | undefined;
	private stopping = false;
	private closing = false;
	private generation = 0;

	// Snapshot bookkeeping.
	private snapshotPending = 0;
	private snapshotAcked: (() => void) | undefined;

	// Stream bookkeeping.
	private txns = new OrderedAcks<Txn>();
	private openTxn: { txn: Txn; n: number; commitMs: number } | undefined;
	/** The clamp: event_time never goes below this (the last change's time, or the snapshot's T + 1). */
	private lastTime = 0;
	private confirmed: string | undefined;
	private confirmTimer: NodeJS.Timeout | undefined;
	private restarting = false;

	constructor(config: PostgresConfig, name: string) {
		this.c = config;
		this.stateFile = path.resolve(config.state_file ?? `bridge-state-${name}.json`);
		this.state = this.readState();
	}

	private readState(): BridgeState {
		try {
			const s = JSON.parse(readFileSync(this.stateFile, "utf8")) as BridgeState;
			if (s.slot === this.c.slot) return s;
		} catch {}
		return { slot: this.c.slot };
	}

	private writeState(): void {
		const tmp = `${this.stateFile}.tmp`;
		writeFileSync(tmp, `${JSON.stringify(this.state, null, "\t")}\n`);
		renameSync(tmp, this.stateFile);
	}

	private async connectDb(): Promise<pg.Client> {
		const db = new pg.Client({ connectionString: this.c.url, application_name: "hotpath-bridge" });
		db.on("error", () => {});
		await db.connect();
		return db;
	}

	private async query(sql: string, params: unknown[] = []): Promise<pg.QueryResult<Record<string, unknown>>> {
		if (!this.db) this.db = await this.connectDb();
		try {
			return await this.db.query(sql, params);
		} catch (e) {
			// A broken connection is replaced once; a failing statement fails.
			if (!/terminat|ECONN|Connection/i.test((e as Error).message)) throw e;
			await this.db.end().catch(() => {});
			this.db = await this.connectDb();
			return this.db.query(sql, params);
		}
	}

	async start(sink: SourceSink<PgDelivery>): Promise<void> {
		this.sink = sink;
		const c = this.c;
		const wal = (await this.query("show wal_level")).rows[0]?.wal_level;
		if (wal !== "logical") throw new Error(`PostgreSQL has wal_level = ${wal}; logical replication needs wal_level = logical (see docs/BRIDGES.md)`);
		await this.resolveTables();
		await this.ensurePublication();
		const slot = (await this.query("select plugin, database from pg_replication_slots where slot_name = $1", [c.slot])).rows[0];
		if (!slot) {
			await this.query("select pg_create_logical_replication_slot($1, 'pgoutput')", [c.slot]);
			// A new slot: whatever the state file said about an older one with this name is void.
			this.state = { slot: c.slot };
			this.writeState();
		} else if (slot.plugin !== "pgoutput") {
			throw new Error(`replication slot "${c.slot}" uses ${slot.plugin}, not pgoutput`);
		}
		this.lastTime = Math.max(this.state.last_event_time ?? 0, (this.state.snapshot?.time ?? -1) + 1);
		this.run = (async () => {
			const snap = this.state.snapshot;
			if (snap?.done && !snap.tables) {
				// A state file from before the list: its snapshot covered the tables configured then, taken to be these.
				snap.tables = [...this.tables.keys()];
				this.writeState();
			}
			const covered = new Set(snap?.done ? snap.tables : []);
			const missing = [...this.tables.values()].filter((t) => !covered.has(t.qualified));
			if (c.snapshot && missing.length) {
				if (!snap?.done && slot) sink.warn(`slot "${c.slot}" exists but ${this.stateFile} has no finished snapshot for it: taking one now`);
				// Rows a table had before it was added to the config are not in the slot's changes: they need a snapshot too.
				else if (snap?.done) sink.warn(`taking a snapshot of ${missing.map((t) => t.qualified).join(", ")} (not in the slot's earlier snapshot)`);
				if (!(await this.snapshot(sink, missing))) return;
			}
			if (!this.stopping) await this.startStream();
		})().catch((e) => sink.fail(e as Error));
	}

	/** Each configured table: it exists, has a primary key, and says which dataset it goes to. */
	private async resolveTables(): Promise<void> {
		for (const t of this.c.tables) {
			const spec = typeof t === "string" ? { table: t, dataset: undefined } : t;
			const dot = spec.table.indexOf(".");
			const schema = dot > 0 ? spec.table.slice(0, dot) : "public";
			const name = dot > 0 ? spec.table.slice(dot + 1) : spec.table;
			const rel = (
				await this.query(
					"select c.oid::int as oid, c.relreplident, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')",
					[schema, name],
				)
			).rows[0];
			if (!rel) throw new Error(`table ${schema}.${name} does not exist`);
			if (rel.relreplident === "n") throw new Error(`table ${schema}.${name} has REPLICA IDENTITY NOTHING: updates and deletes cannot be replicated`);
			const pk = (
				await this.query(
					"select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) where i.indrelid = $1 and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)",
					[rel.oid],
				)
			).rows.map((r) => r.attname as string);
			if (!pk.length) throw new Error(`table ${schema}.${name} has no primary key: the bridge keys records by it`);
			if (rel.relreplident === "i") {
				// The replica identity index's columns are all a delete (or a key-changing update) carries: without the primary key, it would be rejected.
				const idx = (
					await this.query(
						"select c.relname, i.indisprimary from pg_index i join pg_class c on c.oid = i.indexrelid where i.indrelid = $1 and i.indisreplident",
						[rel.oid],
					)
				).rows[0];
				if (idx && !idx.indisprimary) {
					throw new Error(
						`table ${schema}.${name} has REPLICA IDENTITY USING INDEX ${idx.relname}, not its primary key: deletes would not carry the primary key (use REPLICA IDENTITY DEFAULT or FULL)`,
					);
				}
			}
			// PostgreSQL before 18 does not publish generated columns: the snapshot leaves them out too, or the
			// first streamed update (an upsert without them) would drop a field the snapshot had set.
			const cols = (
				await this.query("select attname from pg_attribute where attrelid = $1 and attnum > 0 and not attisdropped and attgenerated = '' order by attnum", [
					rel.oid,
				])
			).rows.map((r) => r.attname as string);
			const qualified = `${schema}.${name}`;
			this.tables.set(qualified, {
				qualified,
				schema,
				name,
				dataset: (spec.dataset ?? this.c.dataset) as string,
				primaryKey: pk,
				partitioned: rel.relkind === "p",
				columns: cols,
			});
		}
	}

	private async ensurePublication(): Promise<void> {
		const { publication } = this.c;
		const list = [...this.tables.values()].map((t) => `${ident(t.schema)}.${ident(t.name)}`).join(", ");
		const pub = (await this.query("select puballtables, pubviaroot from pg_publication where pubname = $1", [publication])).rows[0];
		// A partitioned table's changes are decoded under its partitions' names, which the stream would not know
		// (and would skip, then confirm): published via the root, they come under the configured table's name.
		if (!pub) {
			await this.query(
				`create publication ${ident(publication)} for table ${list} with (publish = 'insert, update, delete', publish_via_partition_root = true)`,
			);
			return;
		}
		if (!pub.pubviaroot && [...this.tables.values()].some((t) => t.partitioned)) {
			this.sink?.warn(`setting publish_via_partition_root on publication "${publication}" (a configured table is partitioned)`);
			await this.query(`alter publication ${ident(publication)} set (publish_via_partition_root = true)`);
		}
		if (pub.puballtables) return;
		const have = new Set(
			(await this.query("select schemaname || '.' || tablename as t from pg_publication_tables where pubname = $1", [publication])).rows.map((r) => r.t),
		);
		for (const t of this.tables.values()) {
			if (have.has(t.qualified)) continue;
			this.sink?.warn(`adding ${t.qualified} to publication "${publication}"`);
			await this.query(`alter publication ${ident(publication)} add table ${ident(t.schema)}.${ident(t.name)}`);
		}
	}

	/** The row as the dataset sees it: converted values; the key from the primary key; the value without it. */
	private rowDelivery(
		table: TableInfo,
		row: Record<string, unknown>,
		columns: { name: string; typeOid: number }[],
		base: { id: string; op: Op; time: number; generation: number },
	): PgDelivery {
		const message: Record<string, unknown> = {};
		for (const col of columns) {
			const v = row[col.name];
			if (v !== undefined) message[col.name] = toJsonValue(v, col.typeOid, this.types);
		}
		const d: PgDelivery = { ...base, dataset: table.dataset, message };
		const parts = table.primaryKey.map((k) => message[k]);
		if (parts.some((p) => p === undefined || p === null)) {
			d.error = `no primary key value (${table.primaryKey.join(", ")}) in the change`;
			return d;
		}
		d.key = primaryKeyText(parts);
		if (base.op !== "delete") {
			const value: Record<string, unknown> = {};
			for (const [k, v] of Object.entries(message)) if (!table.primaryKey.includes(k)) value[k] = v;
			d.value = value;
		}
		return d;
	}

	private async ensureTypes(oids: number[]): Promise<void> {
		const missing = oids.filter((o) => !this.types.has(o));
		if (!missing.length) return;
		const loaded = await loadTypes((sql, params) => this.query(sql, params), missing);
		for (const [oid, t] of loaded) this.types.set(oid, t);
	}

	/** Copies the tables as of a snapshot exported by a temporary slot. Resolves true once Hotpath has all of it. */
	private async snapshot(sink: SourceSink<PgDelivery>, tables: TableInfo[]): Promise<boolean> {
		const c = this.c;
		const repl = new pg.Client({ connectionString: c.url, replication: "database", application_name: "hotpath-bridge-snapshot" } as ReplicationConfig);
		repl.on("error", () => {});
		const reader = new pg.Client({ connectionString: c.url, application_name: "hotpath-bridge-snapshot" });
		reader.on("error", () => {});
		await repl.connect();
		try {
			await reader.connect();
			const time = Number((await this.query("select (extract(epoch from clock_timestamp()) * 1000)::bigint - 1 as t")).rows[0]?.t);
			const temp = `${c.slot.slice(0, 40)}_snapshot_${process.pid}`;
			// The exported snapshot lives as long as this connection runs no other command.
			const created = (await repl.query(`CREATE_REPLICATION_SLOT ${ident(temp)} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT`)).rows[0] as {
				consistent_point: string;
				snapshot_name: string;
			};
			const lsn = padLsn(created.consistent_point);
			// Until it is done, the state says no snapshot is: a crash means a new one of every table, which is safe.
			this.state.snapshot = { done: false, time, lsn, tables: [...this.tables.keys()] };
			this.writeState();
			this.lastTime = Math.max(this.lastTime, time + 1);

			await reader.query("begin isolation level repeatable read read only");
			await reader.query(`set transaction snapshot '${created.snapshot_name}'`);
			let rows = 0;
			for (const table of tables) {
				await reader.query(
					`declare hotpath_snapshot no scroll cursor for select ${table.columns.map(ident).join(", ")} from ${ident(table.schema)}.${ident(table.name)}`,
				);
				const id = boundedId("pg", `pg:${lsn}:${table.qualified}:snapshot`);
				for (;;) {
					if (this.stopping) return false;
					const res = await reader.query(`fetch ${c.snapshot_fetch} from hotpath_snapshot`);
					if (!res.rows.length) break;
					const columns = res.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID }));
					await this.ensureTypes(columns.map((col) => col.typeOid));
					const out = res.rows.map((row) => ({
						...this.rowDelivery(table, row, columns, { id, op: "upsert", time, generation: this.generation }),
						snapshot: true,
					}));
					this.snapshotPending += out.length;
					rows += out.length;
					await sink.deliver(out);
				}
				await reader.query("close hotpath_snapshot");
			}
			await reader.query("commit");
			if (this.snapshotPending > 0) await new Promise<void>((resolve) => (this.snapshotAcked = resolve));
			if (this.stopping && this.snapshotPending > 0) return false;
			this.state.snapshot.done = true;
			this.writeState();
			sink.warn(`snapshot done: ${rows} row(s) of ${tables.length} table(s) as of ${lsn}`);
			return true;
		} finally {
			await reader.end().catch(() => {});
			// Closing the connection drops the temporary slot.
			await repl.end().catch(() => {});
		}
	}

	private async startStream(): Promise<void> {
		const c = this.c;
		const service = new LogicalReplicationService(
			{ connectionString: c.url, application_name: "hotpath-bridge" },
			{ acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
		);
		this.service = service;
		const generation = ++this.generation;
		this.txns = new OrderedAcks<Txn>();
		this.openTxn = undefined;
		this.lastTime = Math.max(this.state.last_event_time ?? 0, (this.state.snapshot?.time ?? -1) + 1);
		service.on("data", (_lsn: string, msg: Pgoutput.Message) => this.onChange(msg, generation));
		service.on("heartbeat", (lsn: string, _t: number, shouldRespond: boolean) => this.onKeepalive(lsn, shouldRespond));
		service.on("error", (e: Error) => this.onStreamError(e, generation));
		const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [c.publication] });
		// Without a start position the server starts at the slot's confirmed LSN.
		service
			.subscribe(plugin, c.slot)
			.then(() => this.onStreamError(new Error("the replication stream ended"), generation))
			.catch((e: Error) => this.onStreamError(e, generation));
	}

	private onStreamError(e: Error, generation: number): void {
		if (this.closing || this.stopping || generation !== this.generation || this.restarting) return;
		this.restarting = true;
		this.sink?.warn(`replication: ${e.message}; reconnecting from the confirmed LSN (unconfirmed changes come again)`);
		void (async () => {
			await this.service?.stop().catch(() => {});
			for (let delay = 1000; !this.closing && !this.stopping; delay = Math.min(delay * 2, 30_000)) {
				await sleep(delay);
				try {
					this.restarting = false;
					await this.startStream();
					return;
				} catch (err) {
					this.sink?.warn(`replication reconnect failed: ${(err as Error).message}`);
				}
			}
		})();
	}

	private async onChange(msg: Pgoutput.Message, generation: number): Promise<void> {
		// After stop(), or from a stream that has been replaced: not handed over, not confirmed, so it comes again.
		if (this.stopping || generation !== this.generation) return;
		const sink = this.sink as SourceSink<PgDelivery>;
		switch (msg.tag) {
			case "begin": {
				const txn: Txn = { commitLsn: padLsn(msg.commitLsn as string), pending: 0, committed: false, lastTime: this.lastTime };
				this.openTxn = { txn, n: 0, commitMs: Number((msg.commitTime as bigint) / 1000n) };
				this.txns.add(txn);
				return;
			}
			case "commit": {
				const open = this.openTxn;
				if (!open) return;
				this.openTxn = undefined;
				open.txn.endLsn = msg.commitEndLsn as string;
				open.txn.committed = true;
				open.txn.lastTime = this.lastTime;
				if (open.txn.pending === 0) this.txnDone(open.txn);
				return;
			}
			case "insert":
			case "update":
			case "delete": {
				const open = this.openTxn;
				const table = this.tables.get(`${msg.relation.schema}.${msg.relation.name}`);
				if (!open || !table) return;
				const columns = msg.relation.columns;
				await this.ensureTypes(columns.map((col) => col.typeOid));
				// Commit order is the order of truth: times never go down, and ties break on the id, which sorts by LSN.
				this.lastTime = Math.max(this.lastTime, open.commitMs);
				const next = (op: Op) => ({
					id: boundedId("pg", `pg:${open.txn.commitLsn}:${table.qualified}:${String(open.n++).padStart(10, "0")}`),
					op,
					time: this.lastTime,
					generation,
				});
				const out: PgDelivery[] = [];
				if (msg.tag === "delete") {
					out.push(this.rowDelivery(table, (msg.key ?? msg.old ?? {}) as Record<string, unknown>, columns, next("delete")));
				} else {
					const before = msg.tag === "update" ? ((msg.key ?? msg.old) as Record<string, unknown> | null) : null;
					let row = msg.new;
					let toasted = columns.some((col) => row[col.name] === undefined);
					if (before && table.primaryKey.some((k) => before[k] !== undefined && String(before[k]) !== String(msg.new[k]))) {
						// The primary key changed: the record under the old key is deleted.
						out.push(this.rowDelivery(table, before, columns, next("delete")));
						// A patch of the new key would leave out the unchanged TOASTed columns for good (the old record had them):
						// they are read from the row as it is now. Later changes of it come after this one, so this converges.
						if (toasted) {
							const filled = await this.unchangedColumns(table, row, columns);
							if (filled) {
								row = filled;
								toasted = false;
							}
						}
					}
					// An unchanged TOASTed column is not in the change: the others are a patch.
					out.push(this.rowDelivery(table, row, columns, next(toasted ? "patch" : "upsert")));
				}
				for (const d of out) d.txn = open.txn;
				open.txn.pending += out.length;
				await sink.deliver(out);
				return;
			}
			case "truncate":
				sink.warn(`TRUNCATE of ${msg.relations.map((r) => `${r.schema}.${r.name}`).join(", ")} is not replicated: Hotpath keeps those records`);
				return;
			default:
				return;
		}
	}

	/** The change's row with the columns it left out (unchanged TOASTed values) read from the table now; undefined when the row is gone. */
	private async unchangedColumns(table: TableInfo, row: Record<string, unknown>, columns: { name: string }[]): Promise<Record<string, unknown> | undefined> {
		const missing = columns.filter((col) => row[col.name] === undefined).map((col) => col.name);
		const where = table.primaryKey.map((k, i) => `${ident(k)} = $${i + 1}`).join(" and ");
		const res = await this.query(
			`select ${missing.map(ident).join(", ")} from ${ident(table.schema)}.${ident(table.name)} where ${where}`,
			table.primaryKey.map((k) => row[k]),
		);
		const current = res.rows[0];
		return current ? { ...row, ...current } : undefined;
	}

	/** Whether the replication library has nothing received and unprocessed. */
	private streamIdle(): boolean {
		// pg-logical-replication keeps received messages in a queue while flow control pauses the socket.
		const s = this.service as unknown as { _messageQueue?: unknown[]; _processing?: boolean } | undefined;
		return Array.isArray(s?._messageQueue) && s._messageQueue.length === 0 && s._processing === false;
	}

	private onKeepalive(lsn: string, shouldRespond: boolean): void {
		// Nothing in hand: everything up to the server's position is done, so confirm it (WAL of other tables is not held).
		if (!this.stopping && !this.openTxn && this.txns.outstanding === 0 && this.streamIdle() && lsnValue(lsn) > lsnValue(this.confirmed ?? "0/0")) {
			this.confirm(lsn, this.lastTime);
		} else if (shouldRespond) {
			this.sendStatus();
		}
	}

	private txnDone(txn: Txn): void {
		const last = this.txns.ack([txn]);
		if (last?.endLsn) this.confirm(last.endLsn, last.lastTime);
	}

	/** Everything up to `lsn` is in Hotpath: remember it now, tell the server within a second. */
	private confirm(lsn: string, lastTime: number): void {
		this.confirmed = lsn;
		this.state.confirmed_lsn = padLsn(lsn);
		this.state.last_event_time = lastTime;
		this.confirmTimer ??= setTimeout(() => this.sendStatus(), 1000);
	}

	/** The state file first, then the standby status update: a restart never replays with other times than these. */
	private sendStatus(): void {
		clearTimeout(this.confirmTimer);
		this.confirmTimer = undefined;
		if (!this.service || !this.confirmed) return;
		this.writeState();
		// acknowledge(x) reports x + 1 as flushed; the server would then skip a transaction whose commit record starts at x.
		void this.service.acknowledge(padLsn(lsnValue(this.confirmed) - 1n)).catch(() => {});
	}

	async ack(messages: PgDelivery[]): Promise<void> {
		for (const d of messages) {
			if (d.snapshot) {
				this.snapshotPending--;
				if (this.snapshotPending === 0) this.snapshotAcked?.();
				continue;
			}
			if (d.generation !== this.generation || !d.txn) continue;
			d.txn.pending--;
			if (d.txn.committed && d.txn.pending === 0) this.txnDone(d.txn);
		}
	}

	async stop(): Promise<void> {
		this.stopping = true;
		this.snapshotAcked?.();
		await this.run;
	}

	async close(): Promise<void> {
		this.stopping = true;
		this.closing = true;
		this.sendStatus();
		// The status update is written to the socket before the connection closes.
		await this.service?.stop().catch(() => {});
		await this.db?.end().catch(() => {});
	}

	async lag(): Promise<number | null> {
		const row = (
			await this.query("select (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint as lag from pg_replication_slots where slot_name = $1", [this.c.slot])
		).rows[0];
		return row?.lag === undefined || row.lag === null ? null : Number(row.lag);
	}
}
