/**
 * `?dataset=` (empty: a script's `dataset=$DS` with DS unset) on the dead-letter routes was taken
 * as a dataset named "": the listing said there were no letters and a purge or replay said it did
 * nothing (200), and for a limited key it was a 403 naming the dataset "". It is now a 400 naming
 * the parameter, as an empty max_staleness= or since= is.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, createKey, expectProblem } from "./helpers";

describe("an empty dataset= on the dead-letter routes", () => {
	it("is a 400 naming it, for unlimited and limited keys alike", async () => {
		const ds = await createDataset({ key: "user_id", fields: { name: "string" } });
		const limited = await createKey(["admin"], [ds]);
		for (const key of [undefined, limited.key]) {
			for (const [method, path] of [
				["GET", "/v1/dead-letters?dataset="],
				["POST", "/v1/dead-letters/replay?dataset="],
				["DELETE", "/v1/dead-letters?dataset="],
			] as const) {
				const problem = await expectProblem(await call(method, path, { key }), 400);
				expect(problem.detail, `${method} ${path}`).toContain("dataset");
				expect(problem.errors?.[0]?.pointer, `${method} ${path}`).toBe("dataset");
			}
		}
	});
});
