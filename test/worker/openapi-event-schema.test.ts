/**
 * The OpenAPI Event schema against what POST /v1/events takes. validateEvent checks events by
 * hand, and the document's schema beside it said more and less than it: an unknown member was
 * allowed by the document and refused by the server, and null (which the server reads as absent
 * for id, key, value and event_time) was refused by the document. Both now say the same.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, postEvents } from "./helpers";

type Schema = { type?: string | string[]; anyOf?: Schema[]; additionalProperties?: unknown; properties?: Record<string, Schema> };

const admitsNull = (s: Schema): boolean => ([] as unknown[]).concat(s.type ?? []).includes("null") || (s.anyOf ?? []).some(admitsNull);

describe("the Event schema of /openapi.json", () => {
	it("refuses other members and admits null where the server does", async () => {
		const doc = (await (await call("GET", "/openapi.json", { key: null })).json()) as { components: { schemas: { Event: Schema } } };
		const event = doc.components.schemas.Event;
		expect(event.additionalProperties).toBe(false);
		for (const name of ["id", "key", "value", "event_time"]) expect(admitsNull(event.properties?.[name] ?? {}), `${name} admits null`).toBe(true);
		for (const name of ["dataset", "op"]) expect(admitsNull(event.properties?.[name] ?? {}), `${name} admits null`).toBe(false);

		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		// The server: null for each optional member is taken, an unknown member refused.
		const taken = await postEvents([
			{ dataset: ds, key: "k", op: "delete", id: null, value: null, event_time: null },
			{ dataset: ds, key: null, op: "upsert", value: { id: "k2", a: 1 } },
			{ dataset: ds, key: "k3", op: "upsert", value: { a: 1 }, colour: "red" },
		]);
		expect(taken.accepted).toBe(2);
		expect(taken.rejected).toEqual([{ index: 2, error: expect.stringContaining('unknown property "colour"') }]);
	});
});
