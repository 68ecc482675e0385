/** D1 schema: the source of truth for records, the registry, API keys and dead letters. */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** Dataset specs (the registry). `spec` is the validated JSON spec. */
export const datasets = sqliteTable("datasets", {
	name: text("name").primaryKey(),
	spec: text("spec").notNull(),
	createdAt: integer("created_at").notNull(),
	updatedAt: integer("updated_at").notNull(),
});

/**
 * One row, bumped by every registry or key change, so isolates can tell cheaply
 * whether their cached registry and key table are still current.
 */
export const controlVersion = sqliteTable("control_version", {
	id: integer("id").primaryKey(),
	version: integer("version").notNull(),
});

export const apiKeys = sqliteTable("api_keys", {
	id: text("id").primaryKey(),
	name: text("name").notNull(),
	/** SHA-256 of the secret, hex. The secret itself is never stored. */
	keyHash: text("key_hash").notNull().unique(),
	/** JSON array of scopes: read, write, admin. */
	scopes: text("scopes").notNull(),
	/** JSON array of dataset names the key is limited to, or null for all. */
	datasets: text("datasets"),
	/** JSON {requests, period_seconds}, or null for no limit of its own. */
	rateLimit: text("rate_limit"),
	/** Epoch ms after which the key no longer authenticates, or null. */
	expiresAt: integer("expires_at"),
	createdAt: integer("created_at").notNull(),
	revokedAt: integer("revoked_at"),
});

/**
 * Current state of one key in one dataset, with the clocks the merge rules need.
 * A clock is (event_time ms, event id); see src/ingest/merge.ts.
 */
export const records = sqliteTable(
	"records",
	{
		dataset: text("dataset").notNull(),
		key: text("key").notNull(),
		/** Materialised value as JSON; null when the record is a tombstone. */
		value: text("value"),
		/** Clock of the newest upsert or delete, which every older write loses to. */
		baseTime: integer("base_time"),
		baseId: text("base_id"),
		baseDeleted: integer("base_deleted").notNull().default(0),
		/** JSON map field -> [time, id] for fields patched after the base. */
		fieldClocks: text("field_clocks").notNull().default("{}"),
		/** Clock of the newest event applied to this record. */
		eventTime: integer("event_time").notNull(),
		eventId: text("event_id").notNull(),
		/** Bumped on every change: optimistic concurrency in D1 and the version guard in caches. */
		rev: integer("rev").notNull(),
		updatedAt: integer("updated_at").notNull(),
		/**
		 * A random token of the write that set this row. The event-log insert in the same transaction
		 * keys on it, so an event is logged as applied exactly when the state it went into was written.
		 */
		writer: integer("writer"),
	},
	(t) => [primaryKey({ columns: [t.dataset, t.key] })],
);

/**
 * The append-only log of applied events: one row per distinct event id per key, kept for the
 * dataset's `history_days`. It makes an id apply at most once per key (the unique index), and it is
 * what history and point-in-time reads fold, in (key, event_time, event_id) order.
 * `seq` is the rowid: it grows with application order, which retention walks.
 */
export const eventLog = sqliteTable(
	"event_log",
	{
		seq: integer("seq").primaryKey(),
		dataset: text("dataset").notNull(),
		key: text("key").notNull(),
		eventTime: integer("event_time").notNull(),
		eventId: text("event_id").notNull(),
		/** upsert | patch | delete */
		op: text("op").notNull(),
		/** The event's value as JSON (the fields it carried); null for a delete. */
		value: text("value"),
		appliedAt: integer("applied_at").notNull(),
		/** The token of the write that inserted the entry: what makes an aggregate count each fact once. */
		writer: integer("writer"),
		/**
		 * The newest aggregate (its `since`) the writer counted this fact into; a backfill of an
		 * aggregate added later counts exactly the facts whose writer did not know it.
		 */
		aggVersion: integer("agg_version"),
	},
	(t) => [
		uniqueIndex("event_log_id").on(t.dataset, t.key, t.eventId),
		index("event_log_time").on(t.dataset, t.key, t.eventTime, t.eventId),
		// (dataset, seq): the retention walks one dataset's entries in application order, so the
		// entries of a dataset with a longer history are not read again on every cron run.
		index("event_log_dataset").on(t.dataset, t.seq),
	],
);

/** Queue messages that kept failing. Kept for inspection and replay; never dropped. */
export const deadLetters = sqliteTable(
	"dead_letters",
	{
		id: integer("id").primaryKey({ autoIncrement: true }),
		queue: text("queue").notNull(),
		messageId: text("message_id").notNull().unique(),
		body: text("body").notNull(),
		error: text("error"),
		attempts: integer("attempts").notNull(),
		/** JSON array of the datasets the message touches (null when unreadable): what limited keys may see. */
		datasets: text("datasets"),
		createdAt: integer("created_at").notNull().default(sql`(unixepoch() * 1000)`),
		replayedAt: integer("replayed_at"),
	},
	(t) => [
		index("dead_letters_created").on(t.createdAt),
		// Listings and bulk replays of letters not replayed yet walk this, newest first, instead of every
		// letter ever kept (replayed ones too: letters are never dropped on their own).
		index("dead_letters_unreplayed").on(t.id).where(sql`replayed_at IS NULL`),
	],
);

/**
 * One rebuild per dataset: the KV and Redis copies rewritten (or dropped) from D1, a page at a
 * time through the queue. `job` tells the pages of the current run from those of an older one.
 */
export const rebuilds = sqliteTable("rebuilds", {
	dataset: text("dataset").primaryKey(),
	job: text("job").notNull(),
	/** refill | drop */
	mode: text("mode").notNull(),
	/** running | done | failed */
	status: text("status").notNull(),
	keysDone: integer("keys_done").notNull().default(0),
	pagesDone: integer("pages_done").notNull().default(0),
	totalKeys: integer("total_keys").notNull(),
	startedAt: integer("started_at").notNull(),
	finishedAt: integer("finished_at"),
	error: text("error"),
	/** When the run last showed life (a page worked, or waiting its turn); a run silent past its lease was lost (null: started_at). */
	heartbeatAt: integer("heartbeat_at"),
});

/**
 * Per key, the merge state of every event the retention pruned from the log: what history and
 * point-in-time reads fold the retained events onto. Pruning moves events here, never loses them.
 */
export const historyBase = sqliteTable(
	"history_base",
	{
		dataset: text("dataset").notNull(),
		key: text("key").notNull(),
		/** JSON of the merge state (value, base clock, field clocks, clock). */
		state: text("state").notNull(),
		/** The latest event_time folded in. */
		throughTime: integer("through_time").notNull(),
		updatedAt: integer("updated_at").notNull(),
	},
	(t) => [primaryKey({ columns: [t.dataset, t.key] })],
);

/**
 * Aggregate tiles: per key, aggregate and resolution (a minute, an hour, a day), the count, sum,
 * min and max of the facts whose event_time falls in the tile. Updated in the same transaction as
 * the facts' log rows, counting only facts that transaction newly logged.
 */
export const aggTiles = sqliteTable(
	"agg_tiles",
	{
		dataset: text("dataset").notNull(),
		key: text("key").notNull(),
		agg: text("agg").notNull(),
		res: integer("res").notNull(),
		start: integer("start").notNull(),
		cnt: integer("cnt").notNull(),
		sum: real("sum").notNull(),
		mn: real("mn"),
		mx: real("mx"),
	},
	// The retention drops tiles by (res, start): without this index every cron run read every tile.
	(t) => [primaryKey({ columns: [t.dataset, t.key, t.agg, t.res, t.start] }), index("agg_tiles_res_start").on(t.res, t.start)],
);

/** HyperLogLog registers of `distinct` aggregates per tile (only those set): merged with max(), so idempotent. */
export const aggHll = sqliteTable(
	"agg_hll",
	{
		dataset: text("dataset").notNull(),
		key: text("key").notNull(),
		agg: text("agg").notNull(),
		res: integer("res").notNull(),
		start: integer("start").notNull(),
		idx: integer("idx").notNull(),
		rank: integer("rank").notNull(),
	},
	(t) => [primaryKey({ columns: [t.dataset, t.key, t.agg, t.res, t.start, t.idx] }), index("agg_hll_res_start").on(t.res, t.start)],
);

/**
 * Backfills of aggregates added to a dataset: the facts logged before the aggregate started counting
 * (`before`), folded into its tiles a page of keys at a time. `cursor` is the last key done: a page
 * writes its tiles only while the cursor is where it started, so a redelivered page counts nothing twice.
 */
export const aggBackfills = sqliteTable(
	"agg_backfills",
	{
		job: text("job").primaryKey(),
		dataset: text("dataset").notNull(),
		/** JSON array of the aggregate names. */
		aggs: text("aggs").notNull(),
		/** The aggregates' `since`: facts whose agg_version is below it were not counted into them. */
		before: integer("before").notNull(),
		cursor: text("cursor"),
		keysDone: integer("keys_done").notNull().default(0),
		done: integer("done").notNull().default(0),
		startedAt: integer("started_at").notNull(),
		/**
		 * 1 when the PUT that started the job created the dataset: no fact predates it, only those a
		 * consumer on the registry of a moment before logged, so reads do not look in the log for
		 * facts it has not counted (that would read every fact of a key for the job's first 30 s).
		 */
		newDataset: integer("new_dataset").notNull().default(0),
	},
	// Every aggregate read looks for its dataset's running jobs (their facts are not in the tiles
	// yet): a seek of the few running ones, not a scan of every job ever recorded.
	(t) => [index("agg_backfills_running").on(t.dataset).where(sql`done = 0`)],
);

/**
 * Leases on maintenance jobs that must not run twice at once (the event log's pruning): one holder
 * at a time, until `until` (epoch ms), handed from step to step of a job (src/storage/leases.ts).
 */
export const maintenanceLeases = sqliteTable("maintenance_leases", {
	name: text("name").primaryKey(),
	holder: text("holder").notNull(),
	until: integer("until").notNull(),
});

/**
 * When the first request under an Idempotency-Key was received (epoch ms), by scope: a digest of
 * the sending key's id and the header. A resend's events without event_time take this time, not
 * their own, so they are the original's events exactly (src/storage/idempotency.ts). Rows older than
 * the longest history_days are pruned by the cron trigger.
 */
export const idempotencyReceipts = sqliteTable(
	"idempotency_receipts",
	{
		scope: text("scope").primaryKey(),
		receivedAt: integer("received_at").notNull(),
	},
	(t) => [index("idempotency_receipts_received_at").on(t.receivedAt)],
);
