/**
 * A problem's `instance` is a URI reference (RFC 9457 3.1.5): the request's path as sent, still
 * percent-encoded, so a client can resolve it back to the resource that failed. The router's
 * decoded path is not one: a key with a space, a quote, a newline or non-ASCII text gave an
 * `instance` that no URL parser reads back as that path (a newline is even stripped).
 */
import { describe, expect, it } from "vitest";
import { BASE, call, createDataset, expectProblem, getRecord } from "./helpers";

/** The path `instance` resolves to, as a client reading the problem would resolve it. */
const resolved = (instance: string | undefined) => new URL(instance ?? "", BASE).pathname;

describe("problem instance", () => {
	const key = 'x\ny é"%';
	const encoded = encodeURIComponent(key);

	it("of a record not found is the request's path as sent, percent-encoded", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		const problem = await expectProblem(await getRecord(ds, key), 404);
		expect(problem.instance).toBe(`/v1/datasets/${ds}/records/${encoded}`);
		expect(resolved(problem.instance)).toBe(problem.instance);
	});

	it("of a method not allowed, and of a path with no route, likewise", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		const notAllowed = await expectProblem(await call("DELETE", `/v1/datasets/${ds}/records/${encoded}`), 405);
		expect(notAllowed.instance).toBe(`/v1/datasets/${ds}/records/${encoded}`);
		const noRoute = await expectProblem(await call("GET", `/v1/nothing/${encoded}`), 404);
		expect(noRoute.instance).toBe(`/v1/nothing/${encoded}`);
		expect(resolved(noRoute.instance)).toBe(noRoute.instance);
	});

	it("of a bad query option, and of an unknown dataset, likewise", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		const bad = await expectProblem(await getRecord(ds, key, "max_staleness=x"), 400);
		expect(bad.instance).toBe(`/v1/datasets/${ds}/records/${encoded}`);
		const unknown = await expectProblem(await getRecord(`${ds}_none`, key), 404);
		expect(unknown.instance).toBe(`/v1/datasets/${ds}_none/records/${encoded}`);
	});
});
