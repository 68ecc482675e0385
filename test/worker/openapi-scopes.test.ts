/**
 * GET /openapi.json says which scope each keyed route needs (security `bearer: [scope]`, OpenAPI
 * 3.1's roles, and the description), and it is the scope the route enforces: probed with a key of
 * each scope, the least one the route does not refuse with 403.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, createKey, type Scope, type SpecInput } from "./helpers";

interface Operation {
	security?: Record<string, string[]>[];
	description?: string;
}

describe("the OpenAPI document names each route's scope", () => {
	let doc: { paths: Record<string, Record<string, Operation>> };
	let ds = "";
	const keys: Partial<Record<Scope, string>> = {};

	beforeAll(async () => {
		doc = (await (await call("GET", "/openapi.json", { key: null })).json()) as typeof doc;
		ds = await createDataset({ key: "id", fields: { a: "int", s: "string" }, search: { text: ["s"] }, ingest: { key: "/id" } } as unknown as SpecInput);
		for (const s of ["read", "write", "admin"] as Scope[]) keys[s] = (await createKey([s])).key;
	});

	it("declares, for every route that takes a key, the scope it enforces", async () => {
		const wrong: string[] = [];
		let checked = 0;
		for (const [path, ops] of Object.entries(doc.paths)) {
			for (const [method, op] of Object.entries(ops)) {
				if (!op.security?.some((s) => "bearer" in s)) continue;
				checked++;
				const declared = op.security.flatMap((s) => s.bearer ?? []);
				const url = path.replace("{name}", ds).replace("{key}", "k").replace("{id}", "1");
				let enforced: Scope | undefined;
				for (const s of ["read", "write", "admin"] as Scope[]) {
					const res = await call(method.toUpperCase(), url, {
						key: keys[s] as string,
						...(method === "get" || method === "delete" ? {} : { json: {} }),
					});
					await res.body?.cancel();
					if (res.status !== 403) {
						enforced = s;
						break;
					}
				}
				if (declared.length !== 1 || declared[0] !== enforced)
					wrong.push(`${method.toUpperCase()} ${path}: declares ${JSON.stringify(declared)}, enforces ${enforced}`);
				else if (!op.description?.includes(`\`${enforced}\` scope`))
					wrong.push(`${method.toUpperCase()} ${path}: description does not name the \`${enforced}\` scope`);
			}
		}
		expect(checked).toBeGreaterThan(20);
		expect(wrong).toEqual([]);
	});
});
