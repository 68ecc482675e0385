// The SDK against the real `npm run dev` (no mocks of the server): reads, lookups, pushes, specs, keys, errors.
import { describe, expect, it } from "vitest";
import { eventually, uniqueName, useDevServer } from "../../../test/node/dev-server.ts";
import { type Event, Hotpath, HotpathError } from "../src/index.ts";

const server = useDevServer();
const admin = () => new Hotpath({ url: server().url, key: server().adminKey, retryBaseMs: 50 });

/** Polls a read until `ok` holds for it. */
const readUntil = (hp: Hotpath, dataset: string, key: string, ok: (value: unknown) => boolean) =>
	eventually(async () => {
		const r = await hp.get(dataset, key);
		return ok(r.value) ? r : undefined;
	});

describe("@hotpath/client against npm run dev", () => {
	const items = uniqueName("sdk_items");

	it("reports health", async () => {
		const h = await admin().health();
		expect(["ok", "degraded"]).toContain(h.status);
		expect(Object.keys(h.tiers).sort()).toEqual(["d1", "kv", "l0", "redis"]);
		expect(h.tiers.d1).toBe("up");
	});

	it("applies a spec (created, then updated), shows it and lists it", async () => {
		const hp = admin();
		const first = await hp.datasets.apply({ name: items, key: "item_id", ttl_seconds: 3600, fields: { price: "float", tags: "string[]" } });
		expect(first.created).toBe(true);
		expect(first.spec).toMatchObject({ name: items, key: "item_id", ttl_seconds: 3600, fields: { price: { type: "float" }, tags: { type: "string[]" } } });
		const second = await hp.datasets.apply({
			name: items,
			key: "item_id",
			ttl_seconds: 3600,
			description: "prices",
			fields: { price: "float", tags: "string[]", emb: { type: "vector", dim: 3 } },
		});
		expect(second.created).toBe(false);
		expect(second.spec.fields.emb).toEqual({ type: "vector", dim: 3 });
		expect(await hp.datasets.get(items)).toEqual(second.spec);
		expect((await hp.datasets.list()).map((s) => s.name)).toContain(items);
	});

	it("refuses an incompatible change with a 409 HotpathError listing why", async () => {
		const err = await admin()
			.datasets.apply({ name: items, key: "item_id", fields: { price: "int", tags: "string[]", emb: { type: "vector", dim: 3 } } })
			.catch((e: unknown) => e);
		expect(err).toBeInstanceOf(HotpathError);
		const e = err as HotpathError;
		expect(e.status).toBe(409);
		expect(e.problem.type).toMatch(/conflict/);
		expect(e.errors).toContainEqual({ pointer: "/fields/price", detail: expect.stringContaining("float") });
	});

	it("pushes events (ids set by the client), then gets and looks them up", async () => {
		const hp = admin();
		const t = Date.now() - 60_000;
		const events: Event[] = [
			{ dataset: items, key: "i1", op: "upsert", value: { price: 1.5, tags: ["a"], emb: [1, 0, 0] }, event_time: t },
			{ dataset: items, key: "i2", op: "upsert", value: { price: 2, tags: [] }, event_time: new Date(t).toISOString() },
			{ dataset: items, key: "i1", op: "patch", value: { price: 1.75 }, event_time: t + 1000 },
		];
		const pushed = await hp.push(events);
		expect(pushed.accepted).toBe(3);
		expect(pushed.rejected).toEqual([]);
		expect(new Set(pushed.ids).size).toBe(3);

		const i1 = await readUntil(hp, items, "i1", (v) => (v as { price?: number } | null)?.price === 1.75);
		expect(i1).toMatchObject({ dataset: items, key: "i1", status: "present", value: { price: 1.75, tags: ["a"], emb: [1, 0, 0] } });
		expect(i1.event_time).toBe(new Date(t + 1000).toISOString());
		expect(i1.age_ms).toBeGreaterThanOrEqual(59_000);

		expect((await hp.get(items, "i1", { fields: ["price"] })).value).toEqual({ price: 1.75 });
		// An empty projection answers value {}, as a lookup's fields: [] does (the server refuses `?fields=`).
		const none = await hp.get(items, "i1", { fields: [], maxStaleness: 3600 });
		expect(none).toMatchObject({ dataset: items, key: "i1", status: "present", value: {} });
		const [looked] = await hp.lookup([{ dataset: items, keys: ["i1"], fields: [] }]);
		expect(looked?.records[0]?.value).toEqual(none.value);
		// A max_staleness shorter than the record's age reports it stale; `omit` withholds the value.
		expect(await hp.get(items, "i1", { maxStaleness: 1, ifStale: "omit" })).toMatchObject({ status: "stale", value: null });

		await readUntil(hp, items, "i2", (v) => v !== null);
		const results = await hp.lookup([
			{ dataset: items, keys: ["i2", "missing", "i1"], fields: ["price"] },
			{ dataset: items, keys: ["i1"] },
		]);
		expect(results).toHaveLength(2);
		expect(results[0]?.records.map((r) => [r.key, r.status, r.value])).toEqual([
			["i2", "present", { price: 2 }],
			["missing", "not_found", null],
			["i1", "present", { price: 1.75 }],
		]);
		expect(results[1]?.records[0]?.value).toMatchObject({ tags: ["a"] });
	});

	it("resolves a missing key to not_found, but throws for a missing dataset", async () => {
		const hp = admin();
		expect(await hp.get(items, "nobody")).toEqual({ dataset: items, key: "nobody", status: "not_found", value: null, event_time: null, age_ms: null });
		const err = await hp.get(uniqueName("no_such"), "k").catch((e: unknown) => e);
		expect(err).toBeInstanceOf(HotpathError);
		expect((err as HotpathError).status).toBe(404);
		expect((err as HotpathError).detail).toMatch(/does not exist/);
	});

	it("reports rejected events by index, and a body with no valid event as a 400 problem", async () => {
		const hp = admin();
		const mixed = await hp.push([
			{ dataset: items, key: "i3", op: "upsert", value: { price: 3 } },
			{ dataset: items, key: "i4", op: "upsert", value: { price: "cheap" } },
		]);
		expect(mixed.accepted).toBe(1);
		expect(mixed.rejected).toHaveLength(1);
		expect(mixed.rejected[0]?.index).toBe(1);
		expect(mixed.rejected[0]?.error).toMatch(/price/);

		const err = (await hp.push([{ dataset: items, key: "i5", op: "upsert", value: { nope: 1 } }]).catch((e: unknown) => e)) as HotpathError;
		expect(err).toBeInstanceOf(HotpathError);
		expect(err.status).toBe(400);
		expect(err.problem.title.length).toBeGreaterThan(0);
		expect(err.problem.detail.length).toBeGreaterThan(0);
	});

	/** A client whose first POST /v1/events is delivered but whose answer is lost after `meanwhile` ran. */
	const lossyClient = (bodies: string[], meanwhile: () => Promise<void>) => {
		let cut = false;
		return new Hotpath({
			url: server().url,
			key: server().adminKey,
			retryBaseMs: 10,
			fetch: async (input, init) => {
				bodies.push(String(init.body));
				const res = await fetch(input, init);
				if (!cut && input.endsWith("/v1/events")) {
					cut = true;
					await meanwhile();
					throw new TypeError("fetch failed: the answer was lost");
				}
				return res;
			},
		});
	};

	it("resends exactly the same body (with the same ids) after a lost answer", async () => {
		const hp = admin();
		const bodies: string[] = [];
		const lossy = lossyClient(bodies, async () => {
			await readUntil(hp, items, "resent", (v) => v !== null);
		});
		const pushed = await lossy.push([{ dataset: items, key: "resent", op: "upsert", value: { price: 5 } }]);
		expect(pushed.accepted).toBe(1);
		expect(bodies).toHaveLength(2);
		expect(bodies[1]).toBe(bodies[0]);
		expect((JSON.parse(bodies[0] ?? "[]") as Event[])[0]?.id).toBe(pushed.ids[0]);
	});

	// DESIGN, durability: "an event id is applied at most once per key, whatever its event_time".
	it("a resent push never undoes a newer write from someone else", async () => {
		const hp = admin();
		const key = "race";
		const bodies: string[] = [];
		// The first attempt lands, someone else writes a newer value, then the answer is lost.
		const lossy = lossyClient(bodies, async () => {
			await readUntil(hp, items, key, (v) => (v as { price?: number } | null)?.price === 10);
			await admin().push([{ dataset: items, key, op: "upsert", value: { price: 20 }, event_time: Date.now() }]);
			await readUntil(hp, items, key, (v) => (v as { price?: number } | null)?.price === 20);
		});
		// No event_time: the server stamps the receipt time, so the resend is "newer" than the other write;
		// only its id, the same as the first attempt's, keeps it from being applied again.
		await lossy.push([{ dataset: items, key, op: "upsert", value: { price: 10 } }]);
		expect(bodies).toHaveLength(2);
		await new Promise((r) => setTimeout(r, 2000));
		expect((await hp.get(items, key, { maxStaleness: 0 })).value).toMatchObject({ price: 20 });
	});

	it("creates, lists, enforces and revokes a scoped key", async () => {
		const hp = admin();
		const created = await hp.keys.create({ name: uniqueName("reader"), scopes: ["read"], datasets: [items] });
		expect(created.key.length).toBeGreaterThan(10);
		expect(created).toMatchObject({ scopes: ["read"], datasets: [items], revoked_at: null });
		expect((await hp.keys.list()).map((k) => k.id)).toContain(created.id);

		const reader = new Hotpath({ url: server().url, key: created.key });
		expect((await reader.get(items, "i1")).status).toBe("present");
		await expect(reader.push([{ dataset: items, key: "x", op: "delete" }])).rejects.toMatchObject({ status: 403 });
		await expect(reader.get("demo_users", "u1")).rejects.toMatchObject({ status: 403 });

		await hp.keys.revoke(created.id);
		await expect(reader.get(items, "i1")).rejects.toMatchObject({ status: 401, problem: { status: 401 } });
		expect((await hp.keys.list()).map((k) => k.id)).not.toContain(created.id);
		expect((await hp.keys.list({ includeRevoked: true })).find((k) => k.id === created.id)?.revoked_at).toEqual(expect.any(String));
		await expect(hp.keys.revoke(created.id)).rejects.toMatchObject({ status: 404 });
	});

	it("answers a wrong key with a 401 problem", async () => {
		const err = (await new Hotpath({ url: server().url, key: "wrong" }).datasets.list().catch((e: unknown) => e)) as HotpathError;
		expect(err).toBeInstanceOf(HotpathError);
		expect(err.status).toBe(401);
		expect(err.problem).toMatchObject({ status: 401, title: expect.any(String), detail: expect.any(String), type: expect.any(String) });
	});

	it("lists dead letters and reads stats", async () => {
		const hp = admin();
		expect(Array.isArray(await hp.deadLetters.list({ limit: 5 }))).toBe(true);
		const stats = await hp.stats();
		expect(stats.tiers).toBeTypeOf("object");
		expect(stats.l0.max_entries).toBeGreaterThan(0);
	});
});

describe("@hotpath/client: history and point-in-time reads", () => {
	const timeline = uniqueName("sdk_time");

	it("lists a record's versions in event_time order and reads the state as of a time", async () => {
		const hp = admin();
		await hp.datasets.apply({ name: timeline, key: "k", fields: { a: "int", b: "string" } });
		const t = Date.now() - 60_000;
		// Sent newest first: history and as_of place each event at its time.
		await hp.push([
			{ dataset: timeline, key: "x", op: "patch", value: { b: "late" }, event_time: t + 2000 },
			{ dataset: timeline, key: "x", op: "upsert", value: { a: 1 }, event_time: t },
			{ dataset: timeline, key: "x", op: "patch", value: { a: 2 }, event_time: new Date(t + 1000).toISOString() },
		]);
		const history = await eventually(async () => {
			const h = await hp.history(timeline, "x");
			return h.versions.length === 3 ? h : undefined;
		});
		expect(history.versions.map((v) => [v.op, v.value, v.event_time])).toEqual([
			["upsert", { a: 1 }, new Date(t).toISOString()],
			["patch", { a: 2 }, new Date(t + 1000).toISOString()],
			["patch", { a: 2, b: "late" }, new Date(t + 2000).toISOString()],
		]);
		expect(history.next_cursor).toBeNull();

		const page = await hp.history(timeline, "x", { since: new Date(t + 500), limit: 1 });
		expect(page.versions.map((v) => v.event_time)).toEqual([new Date(t + 1000).toISOString()]);
		expect(page.next_cursor).toEqual(expect.any(String));
		const next = await hp.history(timeline, "x", { since: new Date(t + 500), limit: 1, cursor: page.next_cursor ?? undefined });
		expect(next.versions.map((v) => v.event_time)).toEqual([new Date(t + 2000).toISOString()]);

		expect((await hp.get(timeline, "x", { asOf: t + 1500 })).value).toEqual({ a: 2 });
		const [asOf] = await hp.lookup([{ dataset: timeline, keys: ["x"] }], { asOf: new Date(t + 500) });
		expect(asOf?.records[0]?.value).toEqual({ a: 1 });
		const [perRequest] = await hp.lookup([{ dataset: timeline, keys: ["x"], as_of: t + 1500 }], { asOf: t + 500 });
		expect(perRequest?.records[0]?.value).toEqual({ a: 2 });
	});
});

// The routes below are being added to the worker alongside this SDK: import, the records listing
// (export), rebuild, and the dead-letter bulk routes.
describe("@hotpath/client: import, export, rebuild, dead-letter bulk routes", () => {
	const books = uniqueName("sdk_books");

	it("imports rows, then exports them in key order, page by page", async () => {
		const hp = admin();
		await hp.datasets.apply({ name: books, key: "isbn", fields: { title: "string", pages: "int" } });
		const t = Date.parse("2026-01-02T03:04:05.000Z");
		const rows = Array.from({ length: 25 }, (_, i) => ({ isbn: `b${String(i).padStart(3, "0")}`, title: `T${i}`, pages: i, _event_time: t + i }));
		const first = await hp.import(books, rows);
		expect(first).toEqual({ imported: 25, unchanged: 0, rejected: [] });

		// The same rows with the same ids again: nothing changes.
		const withIds = rows.map((r, i) => ({ ...r, _id: `row-${i}` }));
		await hp.import(books, withIds);
		expect(await hp.import(books, withIds)).toEqual({ imported: 0, unchanged: 25, rejected: [] });

		const bad = await hp.importNdjson(books, `${JSON.stringify({ isbn: "z1", pages: 1 })}\n${JSON.stringify({ isbn: "z2", pages: "many" })}\n`);
		expect(bad.imported).toBe(1);
		expect(bad.rejected).toEqual([{ index: 1, error: expect.stringMatching(/pages/) }]);

		await hp.import(books, [{ isbn: "z1", _op: "delete", _event_time: Date.now() }]);
		const exported = [];
		for await (const r of hp.export(books, { pageSize: 7 })) exported.push(r);
		expect(exported.map((r) => r.key)).toEqual(rows.map((r) => r.isbn));
		expect(exported[3]).toMatchObject({
			key: "b003",
			value: { title: "T3", pages: 3 },
			event_time: new Date(t + 3).toISOString(),
			event_id: expect.any(String),
		});

		const withDeleted = [];
		for await (const r of hp.export(books, { includeDeleted: true })) withDeleted.push(r);
		expect(withDeleted.find((r) => r.key === "z1")).toMatchObject({ deleted: true });
	});

	it("rebuilds a dataset and reports its progress", async () => {
		const hp = admin();
		const started = await hp.rebuild(books);
		expect(started).toMatchObject({ dataset: books, mode: "refill" });
		const done = await eventually(async () => {
			const s = await hp.rebuildStatus(books);
			return s.status === "done" || s.status === "failed" ? s : undefined;
		}, 30_000);
		expect(done.status).toBe("done");
		expect(done.keys_done).toBeGreaterThanOrEqual(25);
		expect((await hp.rebuild(books, { mode: "drop" })).mode).toBe("drop");
	});

	it("replays and purges dead letters in bulk", async () => {
		const hp = admin();
		expect(await hp.deadLetters.replayAll({ dataset: books })).toEqual({ replayed: expect.any(Number) });
		expect(await hp.deadLetters.purgeAll({ dataset: books })).toEqual({ purged: expect.any(Number) });
		await expect(hp.deadLetters.purge(2 ** 40)).rejects.toMatchObject({ status: 404 });
	});
});
