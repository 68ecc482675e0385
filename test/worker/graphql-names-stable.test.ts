/**
 * GraphQL names stay put: a dataset created later whose names collide with an existing dataset's
 * (its records field is another's `<name>_history`, or its types are another's) moves aside, and
 * the existing dataset keeps every root field and type name its clients already query by.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson } from "./helpers";

interface GqlBody {
	data?: Record<string, unknown> | null;
	errors?: { message: string; extensions: { code: string } }[];
}

const gql = async (query: string): Promise<GqlBody> => expectJson<GqlBody>(await call("POST", "/graphql", { json: { query } }), 200);

/** A dataset name of letters only (no other test uses it), so that PascalCase spells it one to one. */
const letters = () => `gn${Array.from({ length: 10 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join("")}`;
const pascal = (name: string) =>
	name
		.split("_")
		.map((p) => (p[0] as string).toUpperCase() + p.slice(1))
		.join("");

describe("a dataset created later never takes an existing dataset's GraphQL names", () => {
	it("root fields: dataset X_history leaves X's history field X_history as it was", async () => {
		const x = await createDataset({ key: "id", fields: { a: "int" } }, letters());
		const query = `{ ${x}_history(key: "k") { versions { op } next_cursor } }`;
		expect(await gql(query)).toEqual({ data: { [`${x}_history`]: { versions: [], next_cursor: null } } });

		await createDataset({ key: "id", fields: { b: "string" } }, `${x}_history`);
		// The same query still reads X's history.
		expect(await gql(query)).toEqual({ data: { [`${x}_history`]: { versions: [], next_cursor: null } } });
		// The new dataset reads under a records field of its own.
		expect(await gql(`{ ${x}_history_2(keys: ["k"]) { key status } }`)).toEqual({ data: { [`${x}_history_2`]: [{ key: "k", status: "not_found" }] } });
	});

	it("types: dataset X, created after X_record, leaves X_record's value type XRecord as it was", async () => {
		const base = letters();
		const older = await createDataset({ key: "id", fields: { c: "int" } }, `${base}_record`);
		const query = `{ ${older}(keys: ["k"]) { key value { ... on ${pascal(older)} { c } } } }`;
		const before = await gql(query);
		expect(before).toEqual({ data: { [older]: [{ key: "k", value: null }] } });

		await createDataset({ key: "id", fields: { d: "string" } }, base);
		expect(await gql(query)).toEqual(before);
		const type = await gql(`{ __type(name: "${pascal(older)}") { fields { name } } }`);
		expect(type.data).toEqual({ __type: { fields: [{ name: "c" }] } });
	});
});
