/**
 * What listing the dead letters not replayed yet costs D1 in rows read (D1 bills them) must not
 * grow with the letters replayed already: letters are never dropped on their own, so those pile up,
 * and a bulk replay lists the unreplayed ones on every call.
 */
import { describe, expect, it } from "vitest";
import { BULK_BODY_BYTES } from "../../src/ingest/dead-letters";
import { listD1DeadLetters } from "../../src/storage/dead-letters";
import { env, uniqueName } from "./helpers";

/** D1 that keeps the statements run on it (SQL and binds), to run them again for their `meta.rows_read`. */
function recording(db: D1Database): { db: D1Database; statements: { sql: string; args: unknown[] }[] } {
	const statements: { sql: string; args: unknown[] }[] = [];
	const proxy = new Proxy(db, {
		get(target, prop) {
			if (prop === "prepare")
				return (sql: string) => {
					const stmt = target.prepare(sql);
					return new Proxy(stmt, {
						get(s, p) {
							if (p === "bind")
								return (...args: unknown[]) => {
									statements.push({ sql, args });
									return s.bind(...args);
								};
							const v = Reflect.get(s, p);
							return typeof v === "function" ? v.bind(s) : v;
						},
					});
				};
			const v = Reflect.get(target, prop);
			return typeof v === "function" ? v.bind(target) : v;
		},
	});
	return { db: proxy, statements };
}

describe("the cost of listing the dead letters not replayed yet", () => {
	it("reads the unreplayed letters it lists, not every replayed one kept", async () => {
		const tag = uniqueName("dl");
		const now = Date.now();
		const insert = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
INSERT INTO dead_letters (queue, message_id, body, error, attempts, datasets, created_at, replayed_at)
SELECT 'hotpath-events', ?1 || '-' || i, '{}', 'boom', 3, '["x"]', ?3, ?4 FROM n`;
		// Three waiting, older than 5,000 replayed since.
		await env.DB.prepare(insert).bind(`${tag}-waiting`, 3, now, null).run();
		await env.DB.prepare(insert).bind(`${tag}-replayed`, 5000, now, now).run();

		const recorded = recording(env.DB);
		// As a bulk replay lists them: with its byte budget of bodies.
		const { letters } = await listD1DeadLetters(recorded.db, {
			within: null,
			unreplayedOnly: true,
			exceptError: "not this one",
			limit: 1000,
			bodyBytes: BULK_BODY_BYTES,
		});
		const waiting = letters.filter((l) => l.messageId.startsWith(`${tag}-waiting`));
		expect(waiting.map((l) => l.messageId).sort()).toEqual([1, 2, 3].map((i) => `${tag}-waiting-${i}`));
		expect(letters.every((l) => l.replayedAt === null)).toBe(true);

		expect(recorded.statements).toHaveLength(1);
		const [listing] = recorded.statements;
		const { meta } = await env.DB.prepare(listing?.sql ?? "")
			.bind(...(listing?.args ?? []))
			.all();
		// Walking every letter newest first would read the 5,000 replayed ones.
		expect(meta.rows_read).toBeLessThan(500);
	});
});
