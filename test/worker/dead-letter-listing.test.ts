/**
 * GET /v1/dead-letters for a key limited to datasets: its letters are found however many newer
 * letters of other datasets lie in front of them (the dataset filters run in SQL), and it never
 * sees a letter that touches a dataset outside its bounds.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, createKey, env, expectJson, uniqueName } from "./helpers";

interface Listed {
	dead_letters: { id: number | string; datasets: string[] | null }[];
}

describe("dead letters listed for a limited key", () => {
	it("finds its own letter behind 12,000 newer letters of another dataset, and no letter reaching outside its bounds", async () => {
		const mine = await createDataset();
		const other = await createDataset();
		const insert = (rows: { id: string; datasets: string[] | null }[]) =>
			env.DB.prepare(
				"INSERT INTO dead_letters (queue, message_id, body, error, attempts, datasets) SELECT 'hotpath-events', r.value ->> 0, '{}', 'test', 1, r.value ->> 1 FROM json_each(?1) AS r",
			)
				.bind(JSON.stringify(rows.map((r) => [r.id, r.datasets === null ? null : JSON.stringify(r.datasets)])))
				.run();
		const own = uniqueName("own");
		await insert([{ id: own, datasets: [mine] }]);
		for (let i = 0; i < 12; i++) await insert(Array.from({ length: 1000 }, (_, j) => ({ id: uniqueName(`other${i}_${j}`), datasets: [other] })));
		// Newest of all: letters that touch both datasets, or whose datasets are unknown.
		await insert([
			{ id: uniqueName("both"), datasets: [mine, other] },
			{ id: uniqueName("unknown"), datasets: null },
		]);

		const limited = await createKey(["admin"], [mine]);
		const listed = await expectJson<Listed>(await call("GET", "/v1/dead-letters?limit=10", { key: limited.key }), 200);
		expect(listed.dead_letters.map((l) => l.datasets)).toEqual([[mine]]);
		const filtered = await expectJson<Listed>(await call("GET", `/v1/dead-letters?dataset=${mine}&limit=10`, { key: limited.key }), 200);
		expect(filtered.dead_letters.map((l) => l.datasets)).toEqual([[mine]]);
		// An unlimited admin key filtering by dataset finds the letters touching it, newest first.
		const all = await expectJson<Listed>(await call("GET", `/v1/dead-letters?dataset=${mine}&limit=10`), 200);
		expect(all.dead_letters.map((l) => l.datasets)).toEqual([[mine, other], [mine]]);
	});
});
