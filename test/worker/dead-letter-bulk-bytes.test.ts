/**
 * Bulk replay of dead letters holds their bodies in the Worker's memory (128 MB in production). A
 * D1 outage leaves thousands of letters of up to a queue message each (~110 KB), and a refused
 * key's letter can reach D1's 2 MB row: 1,000 of them in one call could not fit. A call replays
 * letters up to a byte budget of bodies and says `more` when others wait; purge never reads bodies.
 */
import { describe, expect, it } from "vitest";
import { BULK_BODY_BYTES } from "../../src/ingest/dead-letters";
import { storeDeadLetterKv } from "../../src/storage/dead-letters";
import { call, createDataset, env, expectJson, uniqueName } from "./helpers";

/** A letter of `n` events of about 100 KB each, every one for its own key of `dataset`. */
function bigLetter(dataset: string, n: number): string {
	const events = Array.from({ length: n }, (_, i) => ({
		id: uniqueName("e"),
		dataset,
		key: uniqueName(`k${i}`),
		op: "upsert",
		time: Date.now(),
		value: { blob: "x".repeat(100_000) },
	}));
	return JSON.stringify({ v: 1, events });
}

async function insertLetters(bodies: string[], dataset: string): Promise<void> {
	for (const body of bodies) {
		await env.DB.prepare("INSERT INTO dead_letters (queue, message_id, body, error, attempts, datasets) VALUES ('hotpath-events', ?1, ?2, 'test', 5, ?3)")
			.bind(uniqueName("m"), body, JSON.stringify([dataset]))
			.run();
	}
}

/**
 * Bulk-replays the dataset's letters call after call while the answers say more: the first call
 * stops at the body budget (one letter of about 1 MB past it at most), and every letter is
 * replayed by the end.
 */
async function replayEveryLetter(ds: string, letters: number): Promise<void> {
	const replay = () => call("POST", `/v1/dead-letters/replay?dataset=${ds}`).then((r) => expectJson<{ replayed: number; more?: boolean }>(r, 200));
	const first = await replay();
	expect(first.more).toBe(true);
	expect(first.replayed).toBeGreaterThan(0);
	expect(first.replayed * 1_000_000).toBeLessThanOrEqual(BULK_BODY_BYTES + 1_100_000);
	let total = first.replayed;
	for (let more = first.more; more; ) {
		const next = await replay();
		total += next.replayed;
		more = next.more;
	}
	expect(total).toBe(letters);
}

describe("bulk replay and purge of large dead letters", () => {
	it("replays at most BULK_BODY_BYTES of bodies a call, saying more wait, until every letter is replayed", async () => {
		const ds = await createDataset({ key: "id", fields: { blob: "string" } });
		const letters = Math.ceil((BULK_BODY_BYTES * 1.5) / 1_000_000);
		await insertLetters(
			Array.from({ length: letters }, () => bigLetter(ds, 10)),
			ds,
		);
		await replayEveryLetter(ds, letters);
	}, 120_000);

	it("lists every letter of a page, with bodies up to BULK_BODY_BYTES and the rest without theirs, each shown by GET /v1/dead-letters/:id", async () => {
		const ds = await createDataset({ key: "id", fields: { blob: "string" } });
		const letters = Math.ceil((BULK_BODY_BYTES * 1.5) / 1_000_000);
		await insertLetters(
			Array.from({ length: letters }, () => bigLetter(ds, 10)),
			ds,
		);
		type Listed = { id: number; body: unknown; body_omitted?: string };
		const listed = (await expectJson<{ dead_letters: Listed[] }>(await call("GET", `/v1/dead-letters?dataset=${ds}&limit=500`), 200)).dead_letters;
		expect(listed).toHaveLength(letters);
		const withBody = listed.filter((l) => l.body !== null);
		expect(withBody.length).toBeGreaterThan(0);
		expect(withBody.length * 1_000_000).toBeLessThanOrEqual(BULK_BODY_BYTES + 1_100_000);
		const omitted = listed.filter((l) => l.body === null);
		expect(omitted.length).toBeGreaterThan(0);
		// Newest first: the bodies come for the newest letters, the older ones are named with their size.
		expect(listed.slice(withBody.length).every((l) => l.body === null)).toBe(true);
		const last = omitted[omitted.length - 1] as Listed;
		expect(last.body_omitted).toMatch(new RegExp(`^\\d+ bytes, past this page's 16 MiB of bodies: GET /v1/dead-letters/${last.id} shows it$`));
		const one = await expectJson<Listed>(await call("GET", `/v1/dead-letters/${last.id}`), 200);
		expect(one.id).toBe(last.id);
		expect(one.body_omitted).toBeUndefined();
		expect((one.body as { events: unknown[] }).events).toHaveLength(10);
	}, 120_000);

	it("purges every letter asked for in one call, whatever their bodies weigh", async () => {
		const ds = await createDataset({ key: "id", fields: { blob: "string" } });
		const letters = Math.ceil((BULK_BODY_BYTES * 1.5) / 1_000_000);
		await insertLetters(
			Array.from({ length: letters }, () => bigLetter(ds, 10)),
			ds,
		);
		expect(await expectJson<{ purged: number }>(await call("DELETE", `/v1/dead-letters?dataset=${ds}`), 200)).toEqual({ purged: letters });
	}, 120_000);

	it("letters waiting in KV (D1 refused them) keep to the same budget: a replay says more, a listing leaves the bodies past it out", async () => {
		const ds = await createDataset({ key: "id", fields: { blob: "string" } });
		const letters = Math.ceil((BULK_BODY_BYTES * 1.5) / 1_000_000);
		for (let i = 0; i < letters; i++) {
			await storeDeadLetterKv(env.RECORDS_KV, {
				queue: "hotpath-events",
				messageId: uniqueName("kvm"),
				body: bigLetter(ds, 10),
				error: "test",
				attempts: 5,
				createdAt: Date.now(),
				datasets: [ds],
			});
		}
		type Listed = { id: string; body: unknown; body_omitted?: string };
		const listed = (await expectJson<{ dead_letters: Listed[] }>(await call("GET", `/v1/dead-letters?dataset=${ds}&limit=500`), 200)).dead_letters;
		expect(listed).toHaveLength(letters);
		const withBody = listed.filter((l) => l.body !== null);
		expect(withBody.length * 1_000_000).toBeLessThanOrEqual(BULK_BODY_BYTES + 1_100_000);
		expect(listed.filter((l) => l.body === null).every((l) => /^\d+ bytes, past this page's/.test(l.body_omitted ?? ""))).toBe(true);
		expect(withBody.length).toBeLessThan(letters);

		await replayEveryLetter(ds, letters);
	}, 120_000);

	it("a bulk replay run goes on from where its last call stopped (before=), so letters that failed again meanwhile are not replayed again and again", async () => {
		const ds = await createDataset({ key: "id", fields: { blob: "string" } });
		const letters = Math.ceil((BULK_BODY_BYTES * 2.5) / 1_000_000);
		await insertLetters(
			Array.from({ length: letters }, () => bigLetter(ds, 10)),
			ds,
		);
		type Answer = { replayed: number; more?: boolean; before?: number };
		const seen: number[] = [];
		let answer = await expectJson<Answer>(await call("POST", `/v1/dead-letters/replay?dataset=${ds}`), 200);
		seen.push(answer.replayed);
		for (let calls = 1; answer.more; calls++) {
			expect(calls).toBeLessThan(letters);
			expect(answer.before).toEqual(expect.any(Number));
			// Every letter replayed so far failed again at once (a refused key's letter comes back unreplayed within a second).
			await env.DB.prepare("UPDATE dead_letters SET replayed_at = NULL WHERE datasets = ?1")
				.bind(JSON.stringify([ds]))
				.run();
			answer = await expectJson<Answer>(await call("POST", `/v1/dead-letters/replay?dataset=${ds}&before=${answer.before}`), 200);
			seen.push(answer.replayed);
		}
		expect(seen.reduce((a, b) => a + b, 0)).toBe(letters);
		expect(seen.length).toBeGreaterThan(2);
		const bad = await call("POST", `/v1/dead-letters/replay?dataset=${ds}&before=x`);
		expect(bad.status).toBe(400);
	}, 120_000);
});
