/**
 * A key limited to some datasets sees only keys within them (GET /v1/keys filters the rest out).
 * Revoking a key outside its bounds was a 403 naming that key's datasets, so a limited admin key
 * that had any key id (from a log, a shared CLI output) learnt dataset names its listing of
 * datasets hides. It is still refused, but the 403 names only the caller's own datasets, as a
 * dead letter out of bounds is.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, createKey, expectProblem, userSpec } from "./helpers";

describe("DELETE /v1/keys/:id with a key limited to datasets", () => {
	it("refuses a key outside its bounds without naming that key's datasets, and leaves it working", async () => {
		const mine = await createDataset(userSpec());
		const hidden = await createDataset(userSpec());
		const limitedAdmin = await createKey(["admin"], [mine]);
		const other = await createKey(["read"], [hidden]);

		// The limited key cannot see the hidden dataset or the other key.
		const datasets = (await (await call("GET", "/v1/datasets", { key: limitedAdmin.key })).json()) as { datasets: { name: string }[] };
		expect(datasets.datasets.map((d) => d.name)).not.toContain(hidden);
		const keys = (await (await call("GET", "/v1/keys", { key: limitedAdmin.key })).json()) as { keys: { id: string }[] };
		expect(keys.keys.map((k) => k.id)).not.toContain(other.id);

		const problem = await expectProblem(await call("DELETE", `/v1/keys/${other.id}`, { key: limitedAdmin.key }), 403);
		expect(problem.detail).toContain(mine);
		expect(JSON.stringify(problem)).not.toContain(hidden);

		// Not revoked: the other key still reads its dataset.
		expect((await call("GET", `/v1/datasets/${hidden}`, { key: other.key })).status).toBe(200);

		// An unlimited key out of bounds is refused too, and one within bounds is revoked.
		const unlimited = await createKey(["read"]);
		await expectProblem(await call("DELETE", `/v1/keys/${unlimited.id}`, { key: limitedAdmin.key }), 403);
		const within = await createKey(["read"], [mine]);
		expect((await call("DELETE", `/v1/keys/${within.id}`, { key: limitedAdmin.key })).status).toBe(204);
	});
});
