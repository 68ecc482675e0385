/**
 * The custom scalars of the generated schema: `SafeInt` for `int` fields (GraphQL's Int is 32-bit;
 * stored ints are any JavaScript-safe integer), `JSON` for `json` fields, and `Vector` for vectors,
 * which pass through as the stored array: coercing each element as a [Float] costs about ten
 * times more for a 768-float embedding, and the values were checked on write.
 */
import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from "graphql";

const inspect = (v: unknown): string => {
	try {
		return JSON.stringify(v)?.slice(0, 80) ?? String(v);
	} catch {
		return String(v);
	}
};

const badInput = (message: string, node?: ValueNode) => new GraphQLError(message, { nodes: node, extensions: { code: "BAD_USER_INPUT" } });

function safeInt(v: unknown, node?: ValueNode): number {
	if (typeof v === "number" && Number.isSafeInteger(v)) return v;
	throw badInput(`SafeInt must be an integer between -(2^53 - 1) and 2^53 - 1, not ${inspect(v)}`, node);
}

export const SafeIntScalar = new GraphQLScalarType<number, number>({
	name: "SafeInt",
	description: "An integer of up to 53 bits (between -(2^53 - 1) and 2^53 - 1): what the `int` field type stores. GraphQL's Int is only 32-bit.",
	serialize: (v) => {
		if (typeof v === "number" && Number.isSafeInteger(v)) return v;
		throw new GraphQLError(`SafeInt cannot represent ${inspect(v)}`);
	},
	parseValue: (v) => safeInt(v),
	parseLiteral: (node) => {
		if (node.kind !== Kind.INT) throw badInput(`SafeInt must be an integer literal, not a ${node.kind}`, node);
		return safeInt(Number(node.value), node);
	},
});

/** A literal as the plain value it spells, variables substituted. */
function literalValue(node: ValueNode, variables: { readonly [name: string]: unknown } | null | undefined): unknown {
	switch (node.kind) {
		case Kind.STRING:
		case Kind.BOOLEAN:
		case Kind.ENUM:
			return node.value;
		case Kind.INT:
		case Kind.FLOAT:
			return Number(node.value);
		case Kind.NULL:
			return null;
		case Kind.LIST:
			return node.values.map((v) => literalValue(v, variables));
		case Kind.OBJECT: {
			const out: Record<string, unknown> = {};
			for (const f of node.fields) Object.defineProperty(out, f.name.value, { value: literalValue(f.value, variables), enumerable: true, writable: true });
			return out;
		}
		case Kind.VARIABLE:
			// Own members only: a variable named like Object's (`$__proto__`, `$constructor`) left unset is null, not the prototype's.
			return variables && Object.hasOwn(variables, node.name.value) ? (variables[node.name.value] ?? null) : null;
	}
}

export const JsonScalar = new GraphQLScalarType<unknown, unknown>({
	name: "JSON",
	description: "Any JSON value, as stored: what the `json` field type holds.",
	serialize: (v) => v,
	parseValue: (v) => v,
	parseLiteral: (node, variables) => literalValue(node, variables),
});

const isVector = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === "number" && Number.isFinite(x));

export const VectorScalar = new GraphQLScalarType<number[], unknown>({
	name: "Vector",
	description: "An embedding: a list of finite numbers, passed through as stored (the `vector` field type, of its dataset's dim).",
	// Values were checked against the spec on write: the array goes out as is, with no per-element coercion.
	serialize: (v) => v,
	parseValue: (v) => {
		if (isVector(v)) return v;
		throw badInput(`Vector must be a list of finite numbers, not ${inspect(v)}`);
	},
	parseLiteral: (node, variables) => {
		const v = literalValue(node, variables);
		if (isVector(v)) return v;
		throw badInput("Vector must be a list of finite numbers", node);
	},
});
