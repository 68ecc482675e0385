/**
 * Bounds on what one GraphQL request may ask, each checked before any read: tokens at parse time,
 * depth during validation, then the operation's cost and key count once its variables are known.
 * Every bound's error carries extensions.code TOO_COMPLEX. The request body's own byte limit is
 * the route's (a 413 before parsing, src/routes/graphql.ts).
 */
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import {
	type FieldNode,
	type FragmentDefinitionNode,
	GraphQLError,
	type GraphQLSchema,
	Kind,
	MaxIntrospectionDepthRule,
	type OperationDefinitionNode,
	type SelectionSetNode,
	specifiedRules,
	type ValidationContext,
	type ValidationRule,
	type ValueNode,
} from "graphql";
import { MAX_VERSIONS } from "../history/versions";
import { DEFAULT_LIMIT as DEFAULT_HITS, MAX_LIMIT as MAX_HITS } from "../search/search";
import { MAX_LOOKUP_KEYS } from "../serving/lookup";
import { DEFAULT_VERSIONS, rootKind } from "./schema";

/** Lexical tokens per document: GraphiQL's introspection query has about 160, 1,000 inline keys about 1,000. */
export const MAX_TOKENS = 10_000;
/** Comments per document (the lexer skips them, so they are not tokens). */
export const MAX_COMMENTS = 1_000;
/** Nesting of fields. Data queries go 4 deep at most; __schema is bounded by graphql's own MaxIntrospectionDepthRule instead. */
export const MAX_DEPTH = 10;
/** Keys per operation, across all its records fields: what one POST /v1/lookup may ask. */
export const MAX_KEYS = MAX_LOOKUP_KEYS;
/** Cost per operation (see operationCost): 1,000 keys of 90 fields, or 100 keys of 900. */
export const MAX_COST = 100_000;
/**
 * History and search fields per operation. Each is its own D1 work (a search ranks, pages and reads
 * its hits; a history page reads the event log), unlike records fields, which share one read: past
 * a few dozen, an operation of aliased fields would pass a Worker invocation's cap on D1 queries
 * and fail at run time as an outage.
 */
export const MAX_READ_FIELDS = 20;
/** What a __schema or __type field costs: the whole schema may be serialised. */
export const INTROSPECTION_COST = 10_000;

export const tooComplex = (message: string) => new GraphQLError(message, { extensions: { code: "TOO_COMPLEX" } });

/** Runs `rule` with its errors reported as TOO_COMPLEX: for graphql's own bound on introspection. */
const asTooComplex =
	(rule: ValidationRule): ValidationRule =>
	(context) => {
		const shim = Object.create(context) as ValidationContext;
		shim.reportError = (e) => context.reportError(tooComplex(e.message));
		return rule(shim);
	};

/** graphql's own rules, and the depth limits (graphql-armor's for fields, graphql's for __schema) reported as TOO_COMPLEX. */
export const validationRules: readonly ValidationRule[] = [
	...specifiedRules.filter((r) => r !== MaxIntrospectionDepthRule),
	asTooComplex(MaxIntrospectionDepthRule),
	maxDepthRule({
		n: MAX_DEPTH,
		flattenFragments: true,
		propagateOnRejection: false,
		onReject: [(context, err) => context?.reportError(tooComplex(err.message.replace(/^Syntax Error: /, "")))],
	}),
];

export interface Cost {
	cost: number;
	keys: number;
}

/**
 * What an operation costs, from its document and variables. A records field costs its number of
 * keys times the fields selected under it (itself included), a history or search field its page
 * size times the same (a search page counts its hits as keys), an introspection field
 * INTROSPECTION_COST, and any other field 1 plus its selections.
 * Fragments count at every use. This is an upper bound: fields under @skip count too.
 */
export function operationCost(
	schema: GraphQLSchema,
	operation: OperationDefinitionNode,
	fragments: ReadonlyMap<string, FragmentDefinitionNode>,
	variables: Readonly<Record<string, unknown>>,
): Cost {
	const defaults = new Map(operation.variableDefinitions?.map((d) => [d.variable.name.value, d.defaultValue]));
	/** How many items a list argument holds: a literal list's length, or its variable's. */
	const listLength = (node: ValueNode | undefined): number => {
		if (!node || node.kind === Kind.NULL) return 0;
		if (node.kind === Kind.LIST) return node.values.length;
		if (node.kind === Kind.VARIABLE) {
			const name = node.name.value;
			const v = Object.hasOwn(variables, name) ? variables[name] : undefined;
			if (v === undefined) return listLength(defaults.get(name));
			return Array.isArray(v) ? v.length : v === null ? 0 : 1;
		}
		return 1;
	};
	/** An Int argument's value: a literal, or its variable's value, else the variable's default (as execution takes it). */
	const intArg = (node: ValueNode | undefined, fallback: number): number => {
		let v: unknown = node?.kind === Kind.INT ? Number(node.value) : undefined;
		if (node?.kind === Kind.VARIABLE) {
			const name = node.name.value;
			if (Object.hasOwn(variables, name)) v = variables[name];
			else {
				const d = defaults.get(name);
				v = d?.kind === Kind.INT ? Number(d.value) : undefined;
			}
		}
		return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : fallback;
	};

	// Selections under a field, fragments expanded.
	const size = sumOverFields(fragments, (field, sum) => 1 + sum(field.selectionSet));

	const rootCosts = new Map<string, Cost>();
	const root = (set: SelectionSetNode | undefined): Cost => {
		const total: Cost = { cost: 0, keys: 0 };
		for (const sel of set?.selections ?? []) {
			let c: Cost;
			if (sel.kind === Kind.INLINE_FRAGMENT) c = root(sel.selectionSet);
			else if (sel.kind === Kind.FRAGMENT_SPREAD) {
				const name = sel.name.value;
				c = rootCosts.get(name) ?? { cost: 0, keys: 0 };
				if (!rootCosts.has(name)) {
					rootCosts.set(name, c);
					Object.assign(c, root(fragments.get(name)?.selectionSet));
				}
			} else {
				const name = sel.name.value;
				const arg = (a: string) => sel.arguments?.find((x) => x.name.value === a)?.value;
				const below = 1 + size(sel.selectionSet);
				const kind = rootKind(schema, name);
				if (kind === "records") {
					const keys = listLength(arg("keys"));
					c = { cost: keys * below, keys };
				}
				// A limit past MAX_VERSIONS is refused by the field itself (BAD_USER_INPUT naming limit, as REST's
				// 400 does), so it costs what the largest page would: limit: 1000000 alone is not "too complex".
				else if (kind === "history") c = { cost: Math.min(intArg(arg("limit"), DEFAULT_VERSIONS), MAX_VERSIONS) * below, keys: 0 };
				// A page of hits is a read of that many keys. A limit past MAX_HITS is refused by search itself
				// (BAD_USER_INPUT naming /limit, as REST's 400 does), so it costs what the largest page would.
				else if (kind === "search") {
					const hits = Math.min(intArg(arg("limit"), DEFAULT_HITS), MAX_HITS);
					c = { cost: hits * below, keys: hits };
				} else if (name === "__schema" || name === "__type") c = { cost: INTROSPECTION_COST + below, keys: 0 };
				else c = { cost: below, keys: 0 };
			}
			total.cost += c.cost;
			total.keys += c.keys;
		}
		return total;
	};
	return root(operation.selectionSet);
}

/** The TOO_COMPLEX error for an operation past a bound, or null. */
export function costProblem(c: Cost): GraphQLError | null {
	if (c.keys > MAX_KEYS) return tooComplex(`the operation reads ${c.keys} keys; the limit is ${MAX_KEYS} per operation`);
	if (c.cost > MAX_COST)
		return tooComplex(`the operation costs ${c.cost}; the limit is ${MAX_COST} (a records field costs its keys times the fields selected under it)`);
	return null;
}

/** The TOO_COMPLEX error for an operation with more history and search fields than MAX_READ_FIELDS (each use of a fragment counts), or null. */
export function readFieldsProblem(
	schema: GraphQLSchema,
	operation: OperationDefinitionNode,
	fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): GraphQLError | null {
	const count = sumOverFields(fragments, (field) => {
		const kind = rootKind(schema, field.name.value);
		return kind === "history" || kind === "search" ? 1 : 0;
	});
	const n = count(operation.selectionSet);
	return n > MAX_READ_FIELDS
		? tooComplex(
				`the operation has ${n} history and search fields; the limit is ${MAX_READ_FIELDS} per operation (each is its own read of D1; records fields share one and are not counted)`,
			)
		: null;
}

/**
 * A sum of `ofField` over the fields of a selection set, fragments expanded (inline ones, and each
 * use of a named one). A named fragment is summed once and reused, so nesting cannot explode the
 * work; a cycle (refused by validation anyway) counts nothing more. `ofField` gets the sum itself,
 * to go below the field.
 */
function sumOverFields(
	fragments: ReadonlyMap<string, FragmentDefinitionNode>,
	ofField: (field: FieldNode, sum: (set: SelectionSetNode | undefined) => number) => number,
): (set: SelectionSetNode | undefined) => number {
	const named = new Map<string, number>();
	const sum = (set: SelectionSetNode | undefined): number => {
		let n = 0;
		for (const sel of set?.selections ?? []) {
			if (sel.kind === Kind.FIELD) n += ofField(sel, sum);
			else if (sel.kind === Kind.INLINE_FRAGMENT) n += sum(sel.selectionSet);
			else {
				const name = sel.name.value;
				let s = named.get(name);
				if (s === undefined) {
					named.set(name, 0);
					s = sum(fragments.get(name)?.selectionSet);
					named.set(name, s);
				}
				n += s;
			}
		}
		return n;
	};
	return sum;
}
