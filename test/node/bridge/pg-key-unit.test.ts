// The postgres source's record keys: a composite primary key must map distinct rows to distinct keys.
import { describe, expect, it } from "vitest";
import { primaryKeyText } from "../../../cli/bridge/sources/postgres.ts";

describe("postgres source: record key of a primary key", () => {
	it("is the value itself for one column", () => {
		expect(primaryKeyText(["a:b\\c"])).toBe("a:b\\c");
		expect(primaryKeyText([42])).toBe("42");
	});

	it("joins several columns with ':', so two different rows never share a key", () => {
		expect(primaryKeyText(["tenant1", 42])).toBe("tenant1:42");
		// ("a:b", "c") and ("a", "b:c") were both "a:b:c": one row's changes overwrote (or deleted) the other's record.
		const keys = [
			["a:b", "c"],
			["a", "b:c"],
			["a\\", ":c"],
			["a\\:", "c"],
			["a", "\\:c"],
		].map(primaryKeyText);
		expect(new Set(keys).size).toBe(keys.length);
	});
});
