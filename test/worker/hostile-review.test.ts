/**
 * A hostile review of the trust routes, tried as a new user would: each case answered something
 * its contract (DESIGN.md, README) rules out.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, env, expectJson, uniqueName } from "./helpers";

/** A dead letter of dataset `ds`, written straight to D1 (replayed at `replayedAt`, or waiting). */
const insertLetter = (ds: string, id: string, replayedAt: number | null) =>
	env.DB.prepare(
		"INSERT INTO dead_letters (queue, message_id, body, error, attempts, datasets, replayed_at) VALUES ('hotpath-events', ?1, '{}', 'test', 1, ?2, ?3)",
	)
		.bind(id, JSON.stringify([ds]), replayedAt)
		.run();

describe("DELETE /v1/dead-letters?replayed=true", () => {
	it("reaches replayed letters older than a page of newer unreplayed ones", async () => {
		const ds = await createDataset();
		const insert = (id: string, replayedAt: number | null) => insertLetter(ds, id, replayedAt);
		// The oldest was replayed; three newer ones wait.
		await insert(uniqueName("replayed"), Date.now());
		for (let i = 0; i < 3; i++) await insert(uniqueName("waiting"), null);
		// A page of 2 holds only letters that wait: the purge must still find the replayed one.
		expect(await expectJson(await call("DELETE", `/v1/dead-letters?dataset=${ds}&replayed=true&limit=2`), 200)).toEqual({ purged: 1 });
		const left = await expectJson<{ dead_letters: { replayed_at: string | null }[] }>(await call("GET", `/v1/dead-letters?dataset=${ds}`), 200);
		expect(left.dead_letters.map((l) => l.replayed_at)).toEqual([null, null, null]);
	});

	it("replayed=false purges only the letters never replayed, and leaves the replayed ones", async () => {
		const ds = await createDataset();
		const insert = (id: string, replayedAt: number | null) => insertLetter(ds, id, replayedAt);
		await insert(uniqueName("replayed"), Date.now());
		for (let i = 0; i < 2; i++) await insert(uniqueName("waiting"), null);
		expect(await expectJson(await call("DELETE", `/v1/dead-letters?dataset=${ds}&replayed=false`), 200)).toEqual({ purged: 2 });
		const left = await expectJson<{ dead_letters: { replayed_at: string | null }[] }>(await call("GET", `/v1/dead-letters?dataset=${ds}`), 200);
		expect(left.dead_letters).toHaveLength(1);
		expect(left.dead_letters[0]?.replayed_at).not.toBeNull();
	});
});

describe("a record that does not exist (404)", () => {
	it("says it may not be reused: Cache-Control no-cache and Vary: Authorization, as every other non-present answer", async () => {
		const ds = await createDataset();
		const res = await call("GET", `/v1/datasets/${ds}/records/nobody`);
		expect(res.status).toBe(404);
		expect(res.headers.get("cache-control")).toBe("no-cache");
		expect(res.headers.get("vary")).toBe("Authorization");
		expect(res.headers.get("content-type")).toBe("application/problem+json");
		await res.body?.cancel();
	});
});

describe("bulk replay and purge of dead letters while D1 refuses", () => {
	it("say they reached only the letters waiting in KV (incomplete), as the listing does, rather than passing them off as all", async () => {
		const ds = await createDataset();
		// One letter in D1, one waiting in KV.
		await env.DB.prepare("INSERT INTO dead_letters (queue, message_id, body, error, attempts, datasets) VALUES ('hotpath-events', ?1, '{}', 'test', 1, ?2)")
			.bind(uniqueName("in-d1"), JSON.stringify([ds]))
			.run();
		const waiting = uniqueName("in-kv");
		const body = JSON.stringify({ v: 1, events: [{ id: "e1", dataset: ds, key: "k", op: "upsert", time: Date.now(), value: { a: 1 } }] });
		await env.RECORDS_KV.put(
			`dlq:${waiting}`,
			JSON.stringify({ queue: "hotpath-events-dlq", messageId: waiting, body, error: "test", attempts: 1, createdAt: Date.now(), datasets: [ds] }),
			{
				metadata: { datasets: [ds], created_at: Date.now() },
			},
		);
		await env.DB.prepare("ALTER TABLE dead_letters RENAME TO dead_letters_away").run();
		try {
			const replay = await expectJson<{ replayed: number; incomplete?: string }>(await call("POST", `/v1/dead-letters/replay?dataset=${ds}`), 200);
			expect(replay.replayed).toBe(1);
			expect(replay.incomplete).toMatch(/D1 refused/);
			const purge = await expectJson<{ purged: number; incomplete?: string }>(await call("DELETE", `/v1/dead-letters?dataset=${ds}`), 200);
			expect(purge.incomplete).toMatch(/D1 refused/);
		} finally {
			await env.DB.prepare("ALTER TABLE dead_letters_away RENAME TO dead_letters").run();
		}
		// With D1 back, nothing says incomplete.
		const purged = await expectJson<{ purged: number; incomplete?: string }>(await call("DELETE", `/v1/dead-letters?dataset=${ds}`), 200);
		expect(purged.incomplete).toBeUndefined();
		expect(purged.purged).toBeGreaterThanOrEqual(1);
	});
});
