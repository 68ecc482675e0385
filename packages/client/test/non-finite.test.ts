// push and import send events and rows as JSON, which writes NaN, Infinity and an invalid Date as
// null: the server took that null as a missing value and stored it, where it refuses the number
// itself ("expected a finite number"). The SDK now refuses them before sending, naming the place.
import { describe, expect, it } from "vitest";
import { Hotpath, HotpathError } from "../src/index.ts";
import { scripted } from "./scripted-server.ts";

const ok = (body: unknown) => (_req: unknown, _n: number, res: import("node:http").ServerResponse) =>
	res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify(body));

async function refusal(call: () => Promise<unknown>): Promise<HotpathError> {
	const err = await call().catch((e: unknown) => e);
	expect(err).toBeInstanceOf(HotpathError);
	expect((err as HotpathError).status).toBe(0);
	expect((err as HotpathError).type).toBe("urn:hotpath:client:invalid-argument");
	return err as HotpathError;
}

describe("push and import refuse what JSON would send as null", () => {
	it("push: a NaN or Infinity in a value, nested or in a list, or an event_time that is not finite, by index and path; nothing is sent", async () => {
		const { url, seen } = await scripted(ok({ accepted: 1, rejected: [] }));
		const hp = new Hotpath({ url });
		const good = { dataset: "d", key: "a", op: "upsert" as const, value: { score: 1 } };
		const cases: [unknown[], string][] = [
			[[good, { dataset: "d", key: "b", op: "upsert", value: { score: Number.NaN, n: 1 } }], "events[1].value.score is NaN"],
			[[{ dataset: "d", key: "b", op: "upsert", value: { meta: { a: Number.NEGATIVE_INFINITY } } }], "events[0].value.meta.a is -Infinity"],
			[[good, good, { dataset: "d", key: "b", op: "upsert", value: { emb: [0.5, Number.POSITIVE_INFINITY] } }], "events[2].value.emb[1] is Infinity"],
			[[{ dataset: "d", key: "b", op: "upsert", value: { "a b": Number.NaN } }], 'events[0].value["a b"] is NaN'],
			[[{ dataset: "d", key: "b", op: "upsert", value: { at: new Date(Number.NaN) } }], "events[0].value.at is an invalid Date"],
			[[{ dataset: "d", key: "b", op: "delete", event_time: Number.POSITIVE_INFINITY }], "events[0].event_time is Infinity"],
		];
		for (const [events, detail] of cases) {
			const err = await refusal(() => hp.push(events as Parameters<Hotpath["push"]>[0]));
			expect(err.detail).toContain(detail);
			expect(err.detail).toContain("null");
		}
		expect(seen).toHaveLength(0);
		// Finite numbers, null and valid Dates still go.
		await hp.push([good, { dataset: "d", key: "c", op: "upsert", value: { score: null, at: new Date(0), emb: [0, -1.5e300] } }]);
		expect(seen).toHaveLength(1);
		expect(JSON.parse(seen[0]?.body ?? "")[1].value).toEqual({ score: null, at: "1970-01-01T00:00:00.000Z", emb: [0, -1.5e300] });
	});

	it("import: a NaN or Infinity in a row, by index and path; nothing is sent", async () => {
		const { url, seen } = await scripted(ok({ imported: 1, unchanged: 0, rejected: [] }));
		const hp = new Hotpath({ url });
		const err = await refusal(() =>
			hp.import("d", [
				{ item_id: "a", score: 1 },
				{ item_id: "b", score: Number.POSITIVE_INFINITY, n: 1 },
			]),
		);
		expect(err.detail).toContain("rows[1].score is Infinity");
		const nested = await refusal(() => hp.import("d", [{ item_id: "a", tags: { w: [1, Number.NaN] } }]));
		expect(nested.detail).toContain("rows[0].tags.w[1] is NaN");
		const time = await refusal(() => hp.import("d", [{ item_id: "a", _event_time: Number.NaN }]));
		expect(time.detail).toContain("rows[0]._event_time is NaN");
		expect(seen).toHaveLength(0);
		await hp.import("d", [{ item_id: "a", score: 0.25 }]);
		expect(seen).toHaveLength(1);
	});
});
