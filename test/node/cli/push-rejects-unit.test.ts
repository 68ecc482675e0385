// `hotpath push` reads a 400's items as the chunk's rejects. An event with two unknown members now
// has an item at each (/3/ttl, /3/colour): read one reject per item, it was counted and listed as
// two rejected events.
import { describe, expect, it } from "vitest";
import { rejectsOfItems } from "../../../cli/verbs/push.ts";

describe("push: a 400's items as rejects", () => {
	it("one reject per event, naming each of its items, in index order", () => {
		expect(
			rejectsOfItems([
				{ pointer: "/0", detail: "an event must be a JSON object" },
				{ pointer: "/3/ttl", detail: 'unknown property "ttl"' },
				{ pointer: "/3/x~1y", detail: 'unknown property "x/y"' },
			]),
		).toEqual([
			{ index: 0, error: "an event must be a JSON object" },
			{ index: 3, error: 'unknown property "ttl"; unknown property "x/y"' },
		]);
	});
});
