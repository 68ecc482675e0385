// push and import without event_time: the server gives every event of one request the same
// receipt time, so a tie between two events of one key breaks on their ids. The ids the SDK sets
// must then follow the order given, as the server's own do ([upsert k, delete k] leaves k deleted).
import { describe, expect, it } from "vitest";
import { eventually, uniqueName, useDevServer } from "../../../test/node/dev-server.ts";
import { type Event, Hotpath } from "../src/index.ts";

const server = useDevServer();
const admin = () => new Hotpath({ url: server().url, key: server().adminKey, retryBaseMs: 50 });

/** Waits until `key`'s history holds `n` versions: every event pushed for it has been applied. */
const applied = (hp: Hotpath, dataset: string, key: string, n: number) =>
	eventually(async () => ((await hp.history(dataset, key)).versions.length >= n ? true : undefined));

describe("ids the SDK sets follow the order given", () => {
	const dataset = uniqueName("sdk_push_order");
	const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);

	it("push([upsert k, delete k]) without event_time leaves every k deleted, and the last patch of a field wins", async () => {
		const hp = admin();
		await hp.datasets.apply({ name: dataset, key: "id", fields: { n: "int" } });
		// With random ids each pair would leave its key present half the time: 10 keys all deleted by chance is 1 in 1,024.
		const events: Event[] = keys.flatMap((key): Event[] => [
			{ dataset, key, op: "upsert", value: { n: 1 } },
			{ dataset, key, op: "delete" },
		]);
		// Twelve patches of one field: with random ids the last would win 1 time in 12.
		for (let n = 1; n <= 12; n++) events.push({ dataset, key: "p", op: "patch", value: { n } });
		const pushed = await hp.push(events);
		expect(pushed.accepted).toBe(events.length);
		expect(new Set(pushed.ids).size).toBe(events.length);
		for (const key of keys) await applied(hp, dataset, key, 2);
		await applied(hp, dataset, "p", 12);
		const found = await hp.lookup([{ dataset, keys: [...keys, "p"] }]);
		const records = found[0]?.records ?? [];
		expect(records.slice(0, keys.length).map((r) => r.status)).toEqual(keys.map(() => "not_found"));
		expect(records[keys.length]?.value).toEqual({ n: 12 });
	});

	it("import rows of one key without _event_time: the last row wins", async () => {
		const hp = admin();
		const rows = Array.from({ length: 12 }, (_, i) => ({ id: "r", n: i + 1 }));
		const res = await hp.import(dataset, rows);
		expect(res.rejected).toEqual([]);
		expect((await hp.get(dataset, "r")).value).toEqual({ n: 12 });
	});
});
