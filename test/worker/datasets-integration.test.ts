/** The registry's HTTP surface: PUT, GET and list of dataset specs, spec validation, compatibility rules, and change visibility. */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem, postEvents, type SpecInput, uniqueName, userSpec, waitForD1 } from "./helpers";

interface Spec {
	name: string;
	key: string;
	fields: Record<string, { type: string; dim?: number }>;
	ttl_seconds: number;
	description?: string;
}

const put = (name: string, spec: unknown) => call("PUT", `/v1/datasets/${name}`, { json: spec });
const get = (name: string) => call("GET", `/v1/datasets/${name}`);

/** The base spec of the compatibility tests. */
const base = (): SpecInput => ({ key: "user_id", fields: { age: "int", name: "string", emb: { type: "vector", dim: 3 } }, ttl_seconds: 600 });

describe("PUT /v1/datasets/:name", () => {
	describe("happy", () => {
		it("creates a dataset (201) and returns the normalised spec, every field in object form", async () => {
			const name = uniqueName();
			const spec = await expectJson<Spec>(await put(name, { ...userSpec(120), description: "users" }), 201);
			expect(spec).toEqual({
				name,
				key: "user_id",
				fields: {
					age: { type: "int" },
					name: { type: "string" },
					score: { type: "float" },
					active: { type: "bool" },
					meta: { type: "json" },
					tags: { type: "string[]" },
					weights: { type: "float[]" },
					emb: { type: "vector", dim: 3 },
				},
				ttl_seconds: 120,
				history_days: 7,
				description: "users",
			});
			expect(await expectJson<Spec>(await get(name), 200)).toEqual(spec);
		});

		it("defaults ttl_seconds to one day and accepts a body name equal to the path's", async () => {
			const name = uniqueName();
			const spec = await expectJson<Spec>(await put(name, { name, key: "id", fields: { x: "float" } }), 201);
			expect(spec.ttl_seconds).toBe(86_400);
			expect(spec.name).toBe(name);
		});

		it("updates an existing dataset (200): the same spec again, and a ttl / description change", async () => {
			const name = await createDataset(base());
			expect((await put(name, base())).status).toBe(200);
			const updated = await expectJson<Spec>(await put(name, { ...base(), ttl_seconds: 30, description: "now with a description" }), 200);
			expect(updated).toMatchObject({ ttl_seconds: 30, description: "now with a description" });
			expect(await expectJson<Spec>(await get(name), 200)).toEqual(updated);
		});

		it("accepts adding a field", async () => {
			const name = await createDataset(base());
			const spec = await expectJson<Spec>(
				await put(name, { ...base(), fields: { ...base().fields, country: "string", emb2: { type: "vector", dim: 8 } } }),
				200,
			);
			expect(spec.fields.country).toEqual({ type: "string" });
			expect(spec.fields.emb2).toEqual({ type: "vector", dim: 8 });
		});

		it("treats the short and the object form of a type as the same type", async () => {
			const name = await createDataset(base());
			const res = await put(name, { ...base(), fields: { age: { type: "int" }, name: { type: "string" }, emb: { type: "vector", dim: 3 } } });
			expect(res.status).toBe(200);
		});
	});

	describe("error: bad specs -> 400 problem pointing at the bad part", () => {
		const cases: [string, unknown, string][] = [
			["unknown field type", { key: "k", fields: { a: "integer" } }, "/fields/a"],
			["field type of the wrong JSON type", { key: "k", fields: { a: 5 } }, "/fields/a"],
			["vector without dim", { key: "k", fields: { e: { type: "vector" } } }, "/fields/e"],
			["vector with dim 0", { key: "k", fields: { e: { type: "vector", dim: 0 } } }, "/fields/e"],
			["vector with a fractional dim", { key: "k", fields: { e: { type: "vector", dim: 2.5 } } }, "/fields/e"],
			["vector with dim above 4096", { key: "k", fields: { e: { type: "vector", dim: 4097 } } }, "/fields/e"],
			["vector with dim as a string", { key: "k", fields: { e: { type: "vector", dim: "3" } } }, "/fields/e"],
			["dim on a scalar type", { key: "k", fields: { e: { type: "int", dim: 3 } } }, "/fields/e"],
			["missing key", { fields: { a: "int" } }, "/key"],
			// The key field is left out of stored values and never type-checked: declaring it promised an int no read returns.
			["the key field declared among the fields", { key: "id", fields: { id: "int", a: "int" } }, "/fields/id"],
			["key that is not an identifier", { key: "user-id", fields: {} }, "/key"],
			["fields that is not an object", { key: "k", fields: ["a"] }, "/fields"],
			["ttl_seconds 0", { key: "k", fields: {}, ttl_seconds: 0 }, "/ttl_seconds"],
			["ttl_seconds negative", { key: "k", fields: {}, ttl_seconds: -5 }, "/ttl_seconds"],
			["ttl_seconds fractional", { key: "k", fields: {}, ttl_seconds: 1.5 }, "/ttl_seconds"],
			["ttl_seconds as a string", { key: "k", fields: {}, ttl_seconds: "60" }, "/ttl_seconds"],
			["ttl_seconds null", { key: "k", fields: {}, ttl_seconds: null }, "/ttl_seconds"],
			["description too long", { key: "k", fields: {}, description: "x".repeat(1001) }, "/description"],
			["more than 500 fields", { key: "k", fields: Object.fromEntries(Array.from({ length: 501 }, (_, i) => [`f${i}`, "int"])) }, "/fields"],
		];
		it.each(cases)("%s", async (_label, spec, pointer) => {
			const name = uniqueName();
			const p = await expectProblem(await put(name, spec), 400);
			// The pointer names the bad member, or a part of it (/fields/e/dim for /fields/e).
			const pointers = p.errors?.map((e) => e.pointer) ?? [];
			expect(
				pointers.some((q) => q === pointer || q.startsWith(`${pointer}/`)),
				`pointers ${JSON.stringify(pointers)} should point at ${pointer}`,
			).toBe(true);
			expect(p.detail).toContain(pointer);
			// Nothing was created.
			await expectProblem(await get(name), 404);
		});

		it("a field name that is not an identifier", async () => {
			const p = await expectProblem(await put(uniqueName(), { key: "k", fields: { "bad-name": "int" } }), 400);
			expect(JSON.stringify(p.errors)).toContain("bad-name");
		});

		// Regression (was a bug): "1abc" was refused with "letters, digits and _, at most 64, not starting
		// with __", a rule it keeps: the message did not say what was wrong with it (a leading digit).
		it.each([
			["a field", { key: "k", fields: { "1abc": "int" } }, "/fields/1abc"],
			["the key", { key: "1abc", fields: {} }, "/key"],
		])("%s starting with a digit: the 400 says a digit may not lead", async (_what, spec, pointer) => {
			const p = await expectProblem(await put(uniqueName(), spec), 400);
			expect(p.errors).toEqual([{ pointer, detail: expect.stringMatching(/not starting with a digit/) }]);
		});

		it("an unknown property, named in the detail and pointed at", async () => {
			const p = await expectProblem(await put(uniqueName(), { key: "k", fields: {}, colour: "blue" }), 400);
			expect(p.detail).toContain("colour");
			expect(p.errors?.[0]?.pointer).toBe("/colour");
		});

		it("a body name that does not match the path", async () => {
			const p = await expectProblem(await put(uniqueName(), { name: "something_else", key: "k", fields: {} }), 400);
			expect(p.errors).toEqual([{ pointer: "/name", detail: expect.stringMatching(/match/) }]);
			expect(p.detail).toContain("something_else");
		});

		it.each(["Bad_Name", "1abc", "_abc", "with-dash", "a".repeat(64), "caf%C3%A9", "a%20b"])("a bad name in the path (%s)", async (name) => {
			const p = await expectProblem(await put(name, { key: "k", fields: {} }), 400);
			expect(p.detail).toMatch(/name .* is invalid/);
		});

		it("a 63-character name is the longest allowed", async () => {
			const name = `a${uniqueName().replaceAll("_", "")}`.padEnd(63, "x").slice(0, 63);
			expect((await put(name, { key: "k", fields: {} })).status).toBe(201);
		});

		it.each([
			["malformed JSON", '{"key": "k", "fields": {'],
			["an empty body", ""],
			["a JSON array", "[]"],
			["JSON null", "null"],
		])("%s", async (_label, body) => {
			await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { body, headers: { "content-type": "application/json" } }), 400);
		});

		// Regression (was a bug): "__proto__" passes FIELD_PATTERN, but zod's record parsing assigns it as the object's
		// prototype, so the field silently disappears and PUT answers 201 without it
		// (src/registry/spec.ts, specInputSchema.fields). It must be refused, or kept.
		it("a field named __proto__ is refused, never silently dropped", async () => {
			const name = uniqueName();
			const res = await call("PUT", `/v1/datasets/${name}`, {
				body: '{"key":"k","fields":{"__proto__":"int","a":"int"}}',
				headers: { "content-type": "application/json" },
			});
			if (res.status < 300) {
				const spec = (await res.json()) as Spec;
				expect(Object.hasOwn(spec.fields, "__proto__"), "201 but the __proto__ field is missing from the stored spec").toBe(true);
			} else {
				const p = await expectProblem(res, 400);
				expect(JSON.stringify(p)).toContain("__proto__");
			}
		});

		// The same for the spec's other maps of names: an aggregate (or an ingest field) named
		// __proto__ was dropped without a word, and the PUT answered 201 without it.
		it.each([
			["an aggregate", '{"key":"k","fields":{"a":"int"},"aggregates":{"__proto__":{"fn":"count","window":"1h"}}}', "/aggregates/__proto__"],
			["an ingest field", '{"key":"k","fields":{"a":"int"},"ingest":{"key":"/k","fields":{"__proto__":"/a"}}}', "/ingest/fields/__proto__"],
		])("%s named __proto__ is refused at its pointer, never silently dropped", async (_label, body, pointer) => {
			const name = uniqueName();
			const p = await expectProblem(await call("PUT", `/v1/datasets/${name}`, { body, headers: { "content-type": "application/json" } }), 400);
			expect(p.errors?.map((e) => e.pointer)).toContain(pointer);
			await expectProblem(await call("GET", `/v1/datasets/${name}`), 404);
		});
	});

	describe("error: incompatible changes -> 409 problem naming the field and the reason", () => {
		const cases: [string, (s: SpecInput) => SpecInput, RegExp[]][] = [
			["removing a field", (s) => ({ ...s, fields: { age: "int", emb: { type: "vector", dim: 3 } } }), [/"name"/, /removed/]],
			["changing a field's type", (s) => ({ ...s, fields: { ...s.fields, age: "string" } }), [/"age"/, /int/, /string/]],
			["changing a vector's dim", (s) => ({ ...s, fields: { ...s.fields, emb: { type: "vector", dim: 4 } } }), [/"emb"/, /vector\(3\)/, /vector\(4\)/]],
			["changing a vector to float[]", (s) => ({ ...s, fields: { ...s.fields, emb: "float[]" } }), [/"emb"/, /vector\(3\)/, /float\[\]/]],
			["changing the entity key", (s) => ({ ...s, key: "account_id" }), [/key/, /"user_id"/, /"account_id"/]],
		];
		it.each(cases)("%s", async (_label, change, expected) => {
			const name = await createDataset(base());
			const before = await expectJson<Spec>(await get(name), 200);
			const p = await expectProblem(await put(name, change(base())), 409);
			for (const re of expected) expect(p.detail).toMatch(re);
			expect(p.errors?.length).toBeGreaterThan(0);
			// Nothing half-applied: the stored spec is unchanged.
			expect(await expectJson<Spec>(await get(name), 200)).toEqual(before);
		});

		it("lists every reason when several changes are incompatible", async () => {
			const name = await createDataset(base());
			const p = await expectProblem(await put(name, { key: "other", fields: { age: "float" } }), 409);
			expect(p.detail).toMatch(/"name" is removed/);
			expect(p.detail).toMatch(/"emb" is removed/);
			expect(p.detail).toMatch(/"age" changes type from int to float/);
			expect(p.detail).toMatch(/entity key/);
			expect(p.errors).toHaveLength(4);
		});

		it("an incompatible change bundled with a compatible one applies neither", async () => {
			const name = await createDataset(base());
			await expectProblem(await put(name, { ...base(), ttl_seconds: 5, fields: { ...base().fields, age: "bool", extra: "string" } }), 409);
			const spec = await expectJson<Spec>(await get(name), 200);
			expect(spec.ttl_seconds).toBe(600);
			expect(spec.fields.extra).toBeUndefined();
		});
	});
});

describe("GET /v1/datasets", () => {
	it("happy: lists datasets with their full specs", async () => {
		const a = await createDataset(base());
		const b = await createDataset({ key: "item_id", fields: { price: "float" }, ttl_seconds: 60 });
		const { datasets } = await expectJson<{ datasets: Spec[] }>(await call("GET", "/v1/datasets"), 200);
		expect(datasets.find((d) => d.name === a)).toEqual({
			name: a,
			key: "user_id",
			fields: { age: { type: "int" }, name: { type: "string" }, emb: { type: "vector", dim: 3 } },
			ttl_seconds: 600,
			history_days: 7,
		});
		expect(datasets.find((d) => d.name === b)).toEqual({ name: b, key: "item_id", fields: { price: { type: "float" } }, ttl_seconds: 60, history_days: 7 });
	});
});

describe("GET /v1/datasets/:name", () => {
	it("happy: shows one spec", async () => {
		const name = await createDataset(base());
		expect(await expectJson<Spec>(await get(name), 200)).toMatchObject({ name, key: "user_id", ttl_seconds: 600 });
	});

	it("error: an unknown dataset -> 404 problem naming it", async () => {
		const name = uniqueName("missing");
		const p = await expectProblem(await get(name), 404);
		expect(p.detail).toContain(name);
	});
});

describe("registry changes are visible on the very next request", () => {
	it("PUT then GET shows the new field", async () => {
		const name = await createDataset(base());
		await expectJson(await put(name, { ...base(), fields: { ...base().fields, country: "string" } }), 200);
		const spec = await expectJson<Spec>(await get(name), 200);
		expect(spec.fields.country).toEqual({ type: "string" });
		const { datasets } = await expectJson<{ datasets: Spec[] }>(await call("GET", "/v1/datasets"), 200);
		expect(datasets.find((d) => d.name === name)?.fields.country).toEqual({ type: "string" });
	});

	it("an event using a new field is refused before the change and accepted right after it", async () => {
		const name = await createDataset(base());
		const event = { dataset: name, key: "u1", op: "upsert", value: { age: 3, country: "NL" }, event_time: Date.now() };
		const p = await expectProblem(await call("POST", "/v1/events", { json: [event] }), 400);
		expect(p.detail).toMatch(/country/);
		await expectJson(await put(name, { ...base(), fields: { ...base().fields, country: "string" } }), 200);
		const res = await postEvents([event]);
		expect(res).toEqual({ accepted: 1, rejected: [] });
		const row = await waitForD1(name, "u1");
		expect(JSON.parse(row.value ?? "null")).toEqual({ age: 3, country: "NL" });
	});

	it("a new dataset accepts events on the next request", async () => {
		const name = uniqueName();
		await expectProblem(await call("POST", "/v1/events", { json: [{ dataset: name, key: "k", op: "upsert", value: { age: 1 } }] }), 400);
		await createDataset(base(), name);
		expect(await postEvents([{ dataset: name, key: "k", op: "upsert", value: { age: 1 } }])).toEqual({ accepted: 1, rejected: [] });
	});
});
