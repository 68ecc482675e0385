/** D1 schema: the source of truth for records, the registry, API keys and dead letters. */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

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
	},
	(t) => [primaryKey({ columns: [t.dataset, t.key] })],
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
		createdAt: integer("created_at").notNull().default(sql`(unixepoch() * 1000)`),
		replayedAt: integer("replayed_at"),
	},
	(t) => [index("dead_letters_created").on(t.createdAt)],
);
