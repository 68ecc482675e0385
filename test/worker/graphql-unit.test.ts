/** GraphQL pieces on their own: names that never collide, the custom scalars, the generated schema's validity, and the cost of an operation. */
import { execute, GraphQLObjectType, GraphQLSchema, getOperationAST, graphql, Kind, parse, validateSchema } from "graphql";
import { describe, expect, it } from "vitest";
import { costProblem, MAX_COST, MAX_KEYS, operationCost } from "../../src/graphql/limits";
import { assignNames, pascalName, RESERVED_TYPE_NAMES, TYPE_SUFFIXES } from "../../src/graphql/names";
import { JsonScalar, SafeIntScalar, VectorScalar } from "../../src/graphql/scalars";
import { buildSchema } from "../../src/graphql/schema";
import type { DatasetSpec } from "../../src/registry/spec";

const spec = (name: string, fields: DatasetSpec["fields"] = { score: { type: "float" } }): DatasetSpec => ({
	name,
	key: "id",
	fields,
	ttl_seconds: 3600,
	history_days: 7,
});

/** Every type and root field name the names give, with duplicates kept. */
function allNames(datasets: string[]): { types: string[]; fields: string[] } {
	const names = [...assignNames(datasets).values()];
	return {
		types: names.flatMap((n) => TYPE_SUFFIXES.map((s) => n.value + s)),
		fields: names.flatMap((n) => [n.recordsField, n.historyField, n.searchField]),
	};
}

describe("names", () => {
	it("PascalCase for plain names; names PascalCase would not spell one to one keep their underscores", () => {
		expect(pascalName("item_scores")).toBe("ItemScores");
		expect(pascalName("a")).toBe("A");
		expect(pascalName("a1_b2")).toBe("A1B2");
		expect(pascalName("a_b")).toBe("AB");
		expect(pascalName("ab_")).toBe("Ab_");
		expect(pascalName("a__b")).toBe("A__b");
		expect(pascalName("a_1")).toBe("A_1");
	});

	it("never gives two datasets, or a dataset and the schema's own types, the same name", () => {
		const datasets = [
			"a_b",
			"ab_",
			"ab",
			"a__b",
			"a_1",
			"a1",
			"item_scores",
			"item_scores_record",
			"item_scores_history",
			"string",
			"query",
			"json",
			"if_stale",
			"record_status",
			"event_op",
			"safe_int",
			"string_2",
			"x",
			"x_history",
			"x_history_2",
			"x_search",
		];
		const { types, fields } = allNames(datasets);
		expect(new Set(types).size).toBe(types.length);
		expect(new Set(fields).size).toBe(fields.length);
		for (const t of types) {
			expect(RESERVED_TYPE_NAMES.has(t)).toBe(false);
			expect(t).toMatch(/^[A-Z][_A-Za-z0-9]*$/);
		}
		const names = assignNames(datasets);
		// The first in the order given (creation order) keeps its natural names; a later one moves aside.
		expect(names.get("item_scores")).toMatchObject({
			value: "ItemScores",
			record: "ItemScoresRecord",
			recordsField: "item_scores",
			historyField: "item_scores_history",
		});
		expect(names.get("item_scores_history")?.recordsField).toBe("item_scores_history_2");
		expect(names.get("item_scores_record")?.value).toBe("ItemScoresRecord_2");
		expect(names.get("ab")?.value).toBe("Ab");
		expect(names.get("ab_")?.value).toBe("Ab_");
		expect(names.get("string")?.value).toBe("String_2");
		expect(names.get("x")?.historyField).toBe("x_history");
		expect(names.get("x_history")?.recordsField).toBe("x_history_2");
		expect(names.get("x_history_2")?.recordsField).toBe("x_history_2_2");
	});

	it("of earlier datasets do not depend on later ones: adding a dataset renames nothing that was there", () => {
		const datasets = ["item_scores_record", "x", "ab_", "item_scores", "x_history", "ab", "a_b", "x_search"];
		for (let n = 1; n < datasets.length; n++) {
			const before = assignNames(datasets.slice(0, n));
			const after = assignNames(datasets.slice(0, n + 1));
			for (const [ds, names] of before) expect(after.get(ds)).toEqual(names);
		}
	});

	it("make a valid schema out of colliding datasets, odd field names and a dataset with no fields", () => {
		const schema = buildSchema([
			spec("a_b"),
			spec("ab_"),
			spec("ab"),
			spec("item_scores", { _: { type: "int" }, A1_b: { type: "string" }, emb: { type: "vector", dim: 2 } }),
			spec("item_scores_record"),
			spec("string"),
			spec("empty", {}),
		]);
		expect(validateSchema(schema)).toEqual([]);
		const query = schema.getQueryType()?.getFields() ?? {};
		expect(Object.keys(query).sort()).toEqual(
			[
				"_datasets",
				"a_b",
				"a_b_history",
				"ab_",
				"ab__history",
				"ab",
				"ab_history",
				"item_scores",
				"item_scores_history",
				"item_scores_record",
				"item_scores_record_history",
				"string",
				"string_history",
				"empty",
				"empty_history",
			].sort(),
		);
		expect(String(query.item_scores?.type)).toBe("[ItemScoresRecord!]!");
		expect(String(query.item_scores_record?.type)).toBe("[ItemScoresRecord_2Record!]!");
		expect(String((schema.getType("EmptyRecord") as GraphQLObjectType).getFields().value?.type)).toBe("JSON");
	});
});

describe("scalars", () => {
	const echo = new GraphQLSchema({
		query: new GraphQLObjectType({
			name: "Query",
			fields: {
				int: { type: SafeIntScalar, args: { n: { type: SafeIntScalar } }, resolve: (_s, a: { n: number }) => a.n },
				vector: { type: VectorScalar, args: { v: { type: VectorScalar } }, resolve: (_s, a: { v: number[] }) => a.v },
				json: { type: JsonScalar, args: { j: { type: JsonScalar } }, resolve: (_s, a: { j: unknown }) => a.j },
				big: { type: SafeIntScalar, resolve: () => 2 ** 53 },
			},
		}),
	});
	const run = (query: string, variableValues?: Record<string, unknown>) => execute({ schema: echo, document: parse(query), variableValues });

	it("SafeInt carries 2^40 in and out, as a variable and as a literal, where Int stops at 2^31", async () => {
		expect(await run("query($n: SafeInt) { int(n: $n) }", { n: 2 ** 40 })).toEqual({ data: { int: 2 ** 40 } });
		expect(await run("{ int(n: 1099511627776) }")).toEqual({ data: { int: 2 ** 40 } });
		expect(await run("query($n: SafeInt) { int(n: $n) }", { n: -(2 ** 53 - 1) })).toEqual({ data: { int: -(2 ** 53 - 1) } });
	});

	it("SafeInt refuses what it cannot carry exactly", async () => {
		for (const n of [2 ** 53, 1.5, "12"]) {
			const r = await run("query($n: SafeInt) { int(n: $n) }", { n });
			expect(r.errors?.[0]?.message).toMatch(/SafeInt/);
		}
		// A literal is checked when the document is validated.
		expect((await graphql({ schema: echo, source: "{ int(n: 9007199254740992) }" })).errors?.[0]?.message).toMatch(/SafeInt/);
		const out = await run("{ big }");
		expect(out.data).toEqual({ big: null });
		expect(out.errors?.[0]?.message).toMatch(/cannot represent/);
	});

	it("Vector and JSON pass values through as they are", async () => {
		expect(await run("query($v: Vector) { vector(v: $v) }", { v: [0.5, -1, 3] })).toEqual({ data: { vector: [0.5, -1, 3] } });
		expect(await run("{ vector(v: [1, 2.5]) }")).toEqual({ data: { vector: [1, 2.5] } });
		expect((await run("query($v: Vector) { vector(v: $v) }", { v: [1, "x"] })).errors?.[0]?.message).toMatch(/Vector/);
		const j = { a: [1, { b: null }], c: "d" };
		expect(await run("query($j: JSON) { json(j: $j) }", { j })).toEqual({ data: { json: j } });
		expect(await run('{ json(j: {a: [1, {b: null}], c: "d"}) }')).toEqual({ data: { json: j } });
	});

	it("JSON: a variable left unset inside a literal is null, also when it is named like a member of Object", async () => {
		// `$__proto__` unset read Object.prototype: a search filter `{and: [$__proto__]}` then matched everything.
		for (const name of ["__proto__", "constructor", "toString"]) {
			expect(await run(`query($${name}: JSON) { json(j: {and: [$${name}]}) }`, {})).toEqual({ data: { json: { and: [null] } } });
		}
		expect(await run("query($x: JSON) { json(j: {and: [$x]}) }", { x: { a: 1 } })).toEqual({ data: { json: { and: [{ a: 1 }] } } });
	});
});

describe("cost", () => {
	const schema = buildSchema([spec("items", { a: { type: "int" }, b: { type: "string" } }), spec("users")]);
	const cost = (query: string, variables: Record<string, unknown> = {}) => {
		const document = parse(query);
		const fragments = new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
		return operationCost(schema, getOperationAST(document) as NonNullable<ReturnType<typeof getOperationAST>>, fragments, variables);
	};

	it("counts keys times the fields selected under each records field, through variables, aliases and fragments", () => {
		// items: 1 + key + value(1 + a + b) = 5 per key.
		expect(cost('{ items(keys: ["1", "2"]) { key value { a b } } }')).toEqual({ cost: 10, keys: 2 });
		expect(cost("query($k: [String!]!) { items(keys: $k) { key value { a b } } }", { k: ["1", "2", "3"] })).toEqual({ cost: 15, keys: 3 });
		expect(cost('query($k: [String!]! = ["1"]) { items(keys: $k) { key } }')).toEqual({ cost: 2, keys: 1 });
		expect(cost('{ x: items(keys: ["1"]) { key } y: items(keys: ["1"]) { ...F } } fragment F on ItemsRecord { key status }')).toEqual({ cost: 5, keys: 2 });
		expect(cost('{ ...R } fragment R on Query { items(keys: ["1", "2"]) { key } users(keys: ["3"]) { key } }')).toEqual({ cost: 6, keys: 3 });
		// History: its page size (default 100) times its selections.
		expect(cost('{ items_history(key: "1", limit: 10) { versions { event_id } } }')).toEqual({ cost: 30, keys: 0 });
		expect(cost('{ items_history(key: "1") { next_cursor } }')).toEqual({ cost: 200, keys: 0 });
	});

	it("is refused past the limits", () => {
		expect(costProblem({ cost: MAX_COST, keys: MAX_KEYS })).toBeNull();
		expect(costProblem({ cost: 1, keys: MAX_KEYS + 1 })?.extensions.code).toBe("TOO_COMPLEX");
		expect(costProblem({ cost: MAX_COST + 1, keys: 1 })?.message).toMatch(/costs/);
	});
});
