/** Derived fields' expressions (src/registry/derived.ts): the type check when a spec is applied, and what they compute. */
import { describe, expect, it } from "vitest";
import { compileDerived, sameExpression, withDerived } from "../../src/registry/derived";
import type { FieldSpec, FieldType } from "../../src/registry/spec";

const fields: Record<string, FieldSpec> = {
	clicks: { type: "int" },
	impressions: { type: "int" },
	price: { type: "float" },
	country: { type: "string" },
	premium: { type: "bool" },
	tags: { type: "string[]" },
	scores: { type: "float[]" },
	emb: { type: "vector", dim: 3 },
	meta: { type: "json" },
	ctr: { type: "float", derive: "clicks / impressions" },
};
const derived = new Set(["ctr"]);

/** Compiles and runs `expr` as a field of `type` over `value`; throws with the refusal when it does not compile. */
function run(expr: string, value: Record<string, unknown>, type: FieldType = "float"): unknown {
	const c = compileDerived(expr, type, fields, derived);
	if ("error" in c) throw new Error(c.error);
	return c.run(value);
}
const refusal = (expr: string, type: FieldType = "float") => {
	const c = compileDerived(expr, type, fields, derived);
	return "error" in c ? c.error : null;
};

describe("derived expressions: what they compute", () => {
	it("does arithmetic with int and float, and / always gives a float", () => {
		expect(run("clicks / impressions", { clicks: 3, impressions: 4 })).toBe(0.75);
		expect(run("clicks * 2 + 1", { clicks: 3 }, "int")).toBe(7);
		expect(run("clicks % 4", { clicks: 10 }, "int")).toBe(2);
		expect(run("-price", { price: 2.5 })).toBe(-2.5);
		expect(run("price ** 2", { price: 3 })).toBe(9);
		expect(run("2 ** 3 ** 2", {})).toBe(512);
	});

	it("gives null, not Infinity or an error, for a division by zero, an overflow and an int past 2^53", () => {
		expect(run("clicks / impressions", { clicks: 3, impressions: 0 })).toBeNull();
		expect(run("clicks % impressions", { clicks: 3, impressions: 0 }, "int")).toBeNull();
		expect(run("price * 1e308", { price: 10 })).toBeNull();
		expect(run("clicks * clicks", { clicks: 2 ** 40 }, "int")).toBeNull();
		expect(run("sqrt(price)", { price: -1 })).toBeNull();
		expect(run("ln(price)", { price: 0 })).toBeNull();
	});

	it("propagates null from a missing input, except through ??, coalesce, concat, == null and decided && / ||", () => {
		expect(run("clicks / impressions", { clicks: 3 })).toBeNull();
		expect(run("clicks / impressions", { clicks: 3, impressions: null })).toBeNull();
		expect(run("(impressions ?? 0) + 1", {}, "int")).toBe(1);
		expect(run("coalesce(price, clicks, 0)", { clicks: 2 })).toBe(2);
		expect(run("concat(country, '-', clicks)", { clicks: 5 }, "string")).toBe("-5");
		expect(run("price == null", {}, "bool")).toBe(true);
		expect(run("null != price", { price: 1 }, "bool")).toBe(true);
		expect(run("premium && clicks > 1", { premium: false }, "bool")).toBe(false);
		expect(run("premium || clicks > 1", { clicks: 5 }, "bool")).toBe(true);
		expect(run("premium && clicks > 1", { premium: true }, "bool")).toBeNull();
		expect(run("premium ? 1 : 2", {}, "int")).toBeNull();
	});

	it("compares, branches and calls functions on strings and lists", () => {
		expect(run("country == 'DE' ? 'eu' : 'other'", { country: "DE" }, "string")).toBe("eu");
		expect(run("lower(trim(country))", { country: "  FR " }, "string")).toBe("fr");
		expect(run("country + '!'", { country: "x" }, "string")).toBe("x!");
		expect(run("len(country)", { country: "é😀" }, "int")).toBe(2);
		expect(run("len(tags)", { tags: ["a", "b"] }, "int")).toBe(2);
		expect(run("contains(tags, 'vip')", { tags: ["a", "vip"] }, "bool")).toBe(true);
		expect(run("starts_with(country, 'D') && ends_with(country, 'E')", { country: "DE" }, "bool")).toBe(true);
		expect(run("mean(scores)", { scores: [1, 2, 3] })).toBe(2);
		expect(run("mean(scores)", { scores: [] })).toBeNull();
		expect(run("sum(scores)", { scores: [1, 2] })).toBe(3);
		expect(run("norm(emb)", { emb: [3, 4, 0] })).toBe(5);
		expect(run("dot(emb, scores)", { emb: [1, 2, 3], scores: [1, 1, 1] })).toBe(6);
		expect(run("dot(emb, scores)", { emb: [1, 2, 3], scores: [1] })).toBeNull();
		expect(run("round(price)", { price: 2.5 }, "int")).toBe(3);
		expect(run("clamp(clicks, 0, 10)", { clicks: 50 }, "int")).toBe(10);
		expect(run("max(clicks, impressions, 1)", { clicks: 3, impressions: 7 }, "int")).toBe(7);
		expect(run("string(clicks) + ':' + string(premium)", { clicks: 1, premium: true }, "string")).toBe("1:true");
	});
});

describe("derived expressions: refused when the spec is applied, saying why", () => {
	it("refuses what does not parse, and says where", () => {
		expect(refusal("clicks +")).toMatch(/^cannot parse: .*character/);
		expect(refusal("clicks = 1")).toMatch(/^cannot parse: Unexpected "=" at character 7/);
	});

	it("refuses unknown fields and functions, naming the ones there are", () => {
		expect(refusal("click / impressions")).toMatch(/^unknown field "click"; the fields events set are clicks, impressions, price/);
		expect(refusal("avg(clicks)")).toMatch(/^unknown function "avg"; the functions are abs, round/);
		expect(refusal("ctr * 2")).toBe('"ctr" is a derived field: an expression may use only fields that events set');
		expect(refusal("meta")).toBe('"meta" is a json field, which an expression cannot use');
	});

	it("refuses what has no meaning here: members, statements, this, constructors", () => {
		expect(refusal("tags.length", "int")).toMatch(/member access/);
		expect(refusal("tags[0]", "string")).toMatch(/member access/);
		expect(refusal("clicks; price")).toMatch(/one expression/);
		expect(refusal("this")).toMatch(/not supported/);
		expect(refusal("constructor")).toMatch(/^unknown field "constructor"/);
		expect(refusal("toString(clicks)")).toMatch(/^unknown function "toString"/);
		expect(refusal("1e400")).toMatch(/too large/);
	});

	it("checks types: operands, arguments and the field's own type", () => {
		expect(refusal("country * 2")).toBe('"*" needs numbers, got string');
		expect(refusal("country + clicks", "string")).toMatch(/^"\+" joins two strings, or adds two numbers/);
		expect(refusal("clicks > country", "bool")).toMatch(/compares two numbers or two strings/);
		expect(refusal("premium && clicks", "bool")).toBe('"&&" needs a bool, got int');
		expect(refusal("clicks ? 1 : 2", "int")).toBe("the condition of ?: needs a bool, got int");
		expect(refusal("premium ? 1 : 'x'", "int")).toBe("the branches of ?:: int and string do not mix");
		expect(refusal("round(country)", "int")).toBe("round() needs numbers, got string");
		expect(refusal("round(price, 2)", "int")).toBe("round() takes 1 argument(s), got 2");
		expect(refusal("clicks / impressions", "int")).toBe("the expression is float, the field int (round(), floor() or ceil() make an int)");
		expect(refusal("country", "float")).toBe("the expression is string, the field float");
		// An int fits a float field.
		expect(refusal("clicks + 1", "float")).toBeNull();
	});

	it("refuses what jsep would misread: unknown string escapes, a sign before **, fields named like literals, an empty expression", () => {
		// jsep drops the backslash of \u and \x ("caf\u00e9" would be "cafu00e9").
		expect(refusal("concat(country, '\\u00e9')", "string")).toBe("the escape \\u in '\\u00e9' is not supported: write the character itself");
		expect(refusal('"\\x41"', "string")).toMatch(/^the escape \\x/);
		// The escapes it reads are taken: quotes, backslash, \n.
		expect(run("'it\\'s \\\\u ok\\n'", {}, "string")).toBe("it's \\u ok\n");
		// jsep reads -x ** 2 as (-x) ** 2, and cannot tell the two apart: both refused, x ** 2 taken.
		expect(refusal("-clicks ** 2")).toBe("a sign before ** is ambiguous (-x ** 2): write pow(-x, 2) or -pow(x, 2)");
		expect(refusal("(-clicks) ** 2")).toMatch(/^a sign before \*\* is ambiguous/);
		expect(run("-(clicks ** 2)", { clicks: 3 })).toBe(-9);
		expect(run("pow(-clicks, 2)", { clicks: 3 })).toBe(9);
		for (const empty of ["", "   ", "()"]) expect(refusal(empty)).toBe("the expression is empty");
		const odd: Record<string, FieldSpec> = { true: { type: "bool" }, null: { type: "int" }, this: { type: "int" } };
		const compile = (expr: string) => compileDerived(expr, "bool", odd, new Set());
		expect(compile("!true")).toEqual({ error: '"true" is a literal in an expression: a field named true cannot be used in one' });
		expect(compile("null == null")).toEqual({ error: '"null" is a literal in an expression: a field named null cannot be used in one' });
		expect(compile("this > 1")).toEqual({ error: '"this" is a keyword in an expression: a field named this cannot be used in one' });
	});

	it("takes a reformatted expression as the same one (spacing, redundant parentheses), and a changed one as another", () => {
		expect(sameExpression("clicks/max(impressions,1)", " clicks / max( impressions, 1 ) ")).toBe(true);
		expect(sameExpression("(clicks) + 1", "clicks + 1")).toBe(true);
		expect(sameExpression("clicks + 1", "clicks + 2")).toBe(false);
		expect(sameExpression("clicks +", "clicks +")).toBe(true);
	});

	it("refuses an expression past the length limit", () => {
		expect(refusal(`${"1 + ".repeat(300)}1`)).toBe("an expression is at most 1000 characters");
	});
});

describe("withDerived", () => {
	it("computes every derived field, and returns the same object when they are already right", () => {
		const spec = { fields };
		const v = withDerived(spec, { clicks: 1, impressions: 4 });
		expect(v).toEqual({ clicks: 1, impressions: 4, ctr: 0.25 });
		expect(withDerived(spec, v)).toBe(v);
		// A stored value that disagrees (sent before the field was derived, say) is recomputed.
		expect(withDerived(spec, { clicks: 1, impressions: 2, ctr: 9 })).toEqual({ clicks: 1, impressions: 2, ctr: 0.5 });
		expect(withDerived(spec, {})).toEqual({ ctr: null });
		expect(withDerived(spec, null)).toBeNull();
	});

	it("stores -0 as 0, as JSON and D1 hold it, so a value read back is already right (a refill would otherwise rewrite it every time)", () => {
		const spec = { fields: { x: { type: "float" as const }, r: { type: "int" as const, derive: "round(x)" } } };
		const v = withDerived(spec, { x: -0.4 }) as Record<string, unknown>;
		expect(Object.is(v.r, 0)).toBe(true);
		const stored = JSON.parse(JSON.stringify(v));
		expect(withDerived(spec, stored)).toBe(stored);
	});
});
