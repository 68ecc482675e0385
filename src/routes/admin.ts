/** Admin views: per-tier counters, and the dead letters with their replay. */
import { desc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import { requireScope } from "../auth/middleware";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { deadLetters } from "../storage/schema";

export const adminRoutes = new Hono<AppEnv>();

// Scoped per route rather than with use(): this router is mounted at /v1, and a catch-all
// middleware would answer every unknown /v1 path with a 401 instead of a 404.
const admin = requireScope("admin");

adminRoutes.get("/stats", admin, (c) => {
	const { stats, reader, settings } = c.get("services");
	return c.json({
		since: new Date(stats.startedAt).toISOString(),
		scope: "this isolate",
		tiers: stats.tiers,
		l0: { entries: reader.l0.size, max_entries: reader.l0.maxEntries, ttl_seconds: settings.L0_TTL_SECONDS, fast_lane_hits: stats.fastLaneHits },
	});
});

adminRoutes.get("/dead-letters", admin, async (c) => {
	const limit = Math.min(500, Math.max(1, Number(c.req.query("limit") ?? 100) || 100));
	const rows = await drizzle(c.env.DB).select().from(deadLetters).orderBy(desc(deadLetters.id)).limit(limit).all();
	return c.json({
		dead_letters: rows.map((r) => ({
			id: r.id,
			queue: r.queue,
			message_id: r.messageId,
			error: r.error,
			attempts: r.attempts,
			created_at: new Date(r.createdAt).toISOString(),
			replayed_at: r.replayedAt === null ? null : new Date(r.replayedAt).toISOString(),
			body: JSON.parse(r.body),
		})),
	});
});

/** Puts a dead letter back on the events queue. Events are idempotent, so replaying twice is harmless. */
adminRoutes.post("/dead-letters/:id/replay", admin, async (c) => {
	const id = Number(c.req.param("id"));
	if (!Number.isSafeInteger(id)) throw new ApiError("bad_request", "dead letter id must be an integer");
	const db = drizzle(c.env.DB);
	const row = await db.select().from(deadLetters).where(eq(deadLetters.id, id)).get();
	if (!row) throw new ApiError("not_found", `no dead letter ${id}`);
	// Stored bodies are JSON text; sent as text, the consumer reads them like any producer message.
	await c.env.EVENTS_QUEUE.send(row.body, { contentType: "text" });
	const now = Date.now();
	await db.update(deadLetters).set({ replayedAt: now }).where(eq(deadLetters.id, id));
	return c.json({ id, replayed_at: new Date(now).toISOString() });
});
