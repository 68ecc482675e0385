/**
 * Attacks a hostile reviewer tried on the newer routes (search, GraphQL search, dead letters), each
 * of which once answered with a 5xx or told a limited key about another dataset.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
	call,
	createDataset,
	createKey,
	DLQ,
	deadLetterByMessageId,
	EVENTS_QUEUE,
	env,
	eventsBody,
	expectProblem,
	message,
	runQueue,
	uniqueName,
	userSpec,
} from "./helpers";
import { importProducts, makeProducts, productSpec, search, waitIndexReady } from "./search-oracle";

let ds = "";

beforeAll(async () => {
	ds = await createDataset(productSpec() as never);
	await importProducts(ds, makeProducts(20, 5));
	await waitIndexReady(ds);
});

/** A filter of many empty filter objects: no operator at all, so the operator bound never counted them. */
const wideFilter = () => ({
	or: Array.from({ length: 64 }, () => ({ or: Array.from({ length: 64 }, () => ({ or: Array.from({ length: 15 }, () => ({})) })) })),
});

describe("search filters of many filter objects", () => {
	it("are a 400 naming where, not a 503 from SQL too long for D1 (REST)", async () => {
		const p = await expectProblem(await search(ds, { filter: wideFilter() }), 400);
		expect(p.errors?.[0]?.pointer).toMatch(/^\/filter\/or\/\d+/);
		expect(p.errors?.[0]?.detail).toMatch(/at most 256 filter objects/);
	});

	it("are BAD_USER_INPUT in GraphQL, not UNAVAILABLE", async () => {
		const res = await call("POST", "/graphql", {
			json: { query: `query($f: JSON) { ${ds}_search(filter: $f) { hits { key } } }`, variables: { f: wideFilter() } },
		});
		expect(res.status).toBe(200);
		const body = (await res.json()) as { errors?: { message: string; extensions: { code: string } }[] };
		expect(body.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
		expect(body.errors?.[0]?.message).toMatch(/at most 256 filter objects/);
	});

	it("up to the bound they still run", async () => {
		// 1 + 5 + 5 * 50 = 256 filter objects.
		const filter = { or: Array.from({ length: 5 }, (_, i) => ({ or: Array.from({ length: 50 }, () => (i === 0 ? { price: { gte: 0 } } : {})) })) };
		const res = await search(ds, { filter: { and: [filter] } });
		// The and's own member makes 257: one past.
		await expectProblem(res, 400);
		const ok = await search(ds, { filter });
		expect(ok.status, await ok.clone().text()).toBe(200);
	});
});

describe("dead letters", () => {
	it("an id of a KV-held letter longer than a KV key can be is a 400, not a 500 from KV", async () => {
		const long = `kv:${"x".repeat(1000)}`;
		const replay = await expectProblem(await call("POST", `/v1/dead-letters/${long}/replay`), 400);
		expect(replay.detail).toMatch(/at most \d+ bytes/);
		await expectProblem(await call("DELETE", `/v1/dead-letters/${long}`), 400);
		// A well-formed one that is not there is still a 404.
		await expectProblem(await call("DELETE", `/v1/dead-letters/kv:${"y".repeat(300)}`), 404);
	});

	it("a key limited to A that guesses the id of B's dead letter is refused without learning B's name", async () => {
		const secret = await createDataset(userSpec(), uniqueName("secret"));
		const mine = await createDataset();
		const msg = message(eventsBody([{ id: uniqueName("e"), dataset: secret, key: "k", op: "upsert", value: { age: 1 }, time: Date.now() }]));
		await runQueue(DLQ, [msg]);
		const row = await deadLetterByMessageId(msg.id);
		if (!row) throw new Error("fixture: the dead letter was not stored");
		const limited = await createKey(["admin"], [mine]);
		for (const [method, path] of [
			["POST", `/v1/dead-letters/${row.id}/replay`],
			["DELETE", `/v1/dead-letters/${row.id}`],
		] as const) {
			const p = await expectProblem(await call(method, path, { key: limited.key }), 403);
			expect(p.detail).not.toContain(secret);
			expect(JSON.stringify(p)).not.toContain(secret);
		}
		// Untouched by the refused calls.
		expect((await deadLetterByMessageId(msg.id))?.replayed_at).toBeNull();
	});
});

describe("a refused key's dead letter", () => {
	it("replays even when its events together pass a queue message's size: no 5xx, and it is marked replayed", async () => {
		// Twelve patches of ~95 KB on distinct fields of one key: the record would pass its 1 MB limit,
		// so the consumer refuses the events past it and dead-letters them together, in one letter.
		const fields = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`s${i}`, "string"]));
		const name = await createDataset({ key: "id", fields, ttl_seconds: 3600 });
		const now = Date.now();
		const msgs = Array.from({ length: 12 }, (_, i) =>
			message(eventsBody([{ id: uniqueName("e"), dataset: name, key: "big", op: "patch", value: { [`s${i}`]: "x".repeat(95 * 1024) }, time: now + i }])),
		);
		await runQueue(EVENTS_QUEUE, msgs);
		const row = await env.DB.prepare("SELECT id, length(body) AS bytes FROM dead_letters WHERE datasets LIKE ?")
			.bind(`%"${name}"%`)
			.first<{ id: number; bytes: number }>();
		if (!row) throw new Error("fixture: no dead letter for the refused key");
		expect(row.bytes).toBeGreaterThan(128 * 1024);
		const res = await call("POST", `/v1/dead-letters/${row.id}/replay`);
		expect(res.status, await res.clone().text()).toBe(200);
		const after = await env.DB.prepare("SELECT replayed_at FROM dead_letters WHERE id = ?").bind(row.id).first<{ replayed_at: number | null }>();
		expect(after?.replayed_at).not.toBeNull();
	});

	it("refused again after its replay, it is listed as unreplayed again, not left marked replayed", async () => {
		const fields = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`s${i}`, "string"]));
		const name = await createDataset({ key: "id", fields, ttl_seconds: 3600 });
		const now = Date.now();
		const events = Array.from({ length: 12 }, (_, i) => ({
			id: uniqueName("e"),
			dataset: name,
			key: "big",
			op: "patch" as const,
			value: { [`s${i}`]: "x".repeat(95 * 1024) },
			time: now + i,
		}));
		await runQueue(
			EVENTS_QUEUE,
			events.map((e) => message(eventsBody([e]))),
		);
		const letter = () =>
			env.DB.prepare("SELECT id, message_id, replayed_at FROM dead_letters WHERE datasets LIKE ?")
				.bind(`%"${name}"%`)
				.all<{ id: number; message_id: string; replayed_at: number | null }>();
		const [first] = (await letter()).results;
		if (!first) throw new Error("fixture: no dead letter for the refused key");
		expect((await call("POST", `/v1/dead-letters/${first.id}/replay`)).status).toBe(200);
		// The same events come back and are refused again, for the same reason: the same letter.
		await runQueue(
			EVENTS_QUEUE,
			events.map((e) => message(eventsBody([e]))),
		);
		const rows = (await letter()).results;
		expect(rows.some((r) => r.replayed_at === null)).toBe(true);
		const listed = (await (await call("GET", `/v1/dead-letters?dataset=${name}`)).json()) as { dead_letters: { replayed_at: string | null }[] };
		expect(listed.dead_letters.some((l) => l.replayed_at === null)).toBe(true);
	});
});
