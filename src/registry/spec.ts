/** Dataset specs: the zod schema users write, the normalised form the code uses, and value type checks. */
import * as z from "zod";
import { compileDerived, DERIVABLE_TYPES, derivedFieldNames, MAX_EXPRESSION_LENGTH, sameExpression } from "./derived";

export const scalarTypes = ["string", "int", "float", "bool", "json", "string[]", "float[]"] as const;
export type FieldType = (typeof scalarTypes)[number] | "vector";

export interface FieldSpec {
	type: FieldType;
	/** Only for vectors: the exact length. */
	dim?: number;
	/** An expression over the other fields: the consumer computes the field on write (src/registry/derived.ts); events cannot set it. */
	derive?: string;
}

export interface DatasetSpec {
	name: string;
	/** Name of the entity key field, e.g. `user_id`. */
	key: string;
	fields: Record<string, FieldSpec>;
	/** Max age of a value before it is reported stale. */
	ttl_seconds: number;
	/** How long applied events are kept in the log (idempotence by id, history, point-in-time reads). */
	history_days: number;
	/** How log shippers' records map to events (POST /v1/datasets/:name/ingest). */
	ingest?: IngestMapping;
	/** Windowed aggregates over the dataset's events (facts), read beside the fields (src/aggregates). */
	aggregates?: Record<string, AggregateSpec>;
	/** What the search index keeps (src/search): text fields, filter fields, one vector field. */
	search?: SearchSpec;
	description?: string;
}

/** Fields of a dataset the search index keeps: full text (BM25), filters and sorts, and one vector for k-NN. */
export interface SearchSpec {
	text?: string[];
	filters?: string[];
	vector?: string;
}

/** Field types a text field may have, and a filter field. */
export const TEXT_TYPES: readonly FieldType[] = ["string", "string[]"];
export const FILTER_TYPES: readonly FieldType[] = ["string", "int", "float", "bool", "string[]"];

export const AGGREGATE_FNS = ["count", "sum", "min", "max", "mean", "last_n", "distinct"] as const;

/** One windowed aggregate: `fn` over the `of` field of the facts in the last `window` ("5m", "1h", "7d"). */
export interface AggregateSpec {
	fn: (typeof AGGREGATE_FNS)[number];
	/** The field aggregated; every fn but count needs one. */
	of?: string;
	window: string;
	/** last_n: how many. */
	n?: number;
	/** Set by the registry: when the aggregate was added (epoch ms). Facts logged since then count as they come; older ones by a backfill. */
	since?: number;
}

/** JSON Pointers (RFC 6901) into a log record: where its key, time, op and fields are. */
export interface IngestMapping {
	key: string;
	event_time?: string;
	op?: string;
	/** Dataset field -> pointer. Absent: the record's top-level properties named like the dataset's fields. */
	fields?: Record<string, string>;
}

export const NAME_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;
/** A bulk-import row's own properties beside the record's value (see ingest/import.ts): no field or key may take these names. */
export const IMPORT_ROW_PROPERTIES: readonly string[] = ["_event_time", "_op", "_id"];
// Names starting with "__" are reserved: "__proto__" would otherwise become an object's prototype.
const FIELD_PATTERN = /^(?!__)[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const MAX_FIELDS = 500;
export const MAX_VECTOR_DIM = 4096;
export const DEFAULT_TTL_SECONDS = 86_400;
export const DEFAULT_HISTORY_DAYS = 7;
export const MAX_HISTORY_DAYS = 3650;

const deriveSchema = z
	.string()
	.max(MAX_EXPRESSION_LENGTH)
	.optional()
	.describe('An expression over the other fields, computed on write: "clicks / max(impressions, 1)" (README, Derived fields)');

const fieldSchema = z.union(
	[
		z.enum(scalarTypes),
		z.object({ type: z.enum(scalarTypes), derive: deriveSchema }).strict(),
		z
			.object({
				type: z.literal("vector"),
				dim: z.number().int().min(1).max(MAX_VECTOR_DIM),
				derive: deriveSchema,
			})
			.strict(),
	],
	{ error: `must be one of ${scalarTypes.join(", ")}, {"type":T,"derive":EXPRESSION}, or {"type":"vector","dim":N}` },
);

/** A JSON Pointer (RFC 6901): empty (the whole document) or /a/b, with ~0 for ~ and ~1 for /. */
export const jsonPointerSchema = z.string().regex(/^(\/([^~]|~[01])*)*$/, "must be a JSON Pointer (RFC 6901): empty, or /a/b with ~0 for ~ and ~1 for /");

const searchSchema = z
	.object({
		text: z.array(z.string()).max(32).optional(),
		filters: z.array(z.string()).max(64).optional(),
		vector: z.string().optional(),
	})
	.strict();

const aggregateSchema = z
	.object({
		fn: z.enum(AGGREGATE_FNS),
		of: z.string().optional(),
		window: z.string().regex(/^[1-9]\d{0,5}(m|h|d)$/, 'a window is a whole number of minutes, hours or days: "5m", "1h", "24h", "7d"'),
		n: z.number().int().min(1).max(100).optional(),
		// Set by the registry (when the aggregate was added). Taken on input only so that a spec
		// read back applies again; what is sent is ignored.
		since: z.number().optional(),
	})
	.strict();

/**
 * A record of names (fields, aggregates, ingest fields) that refuses the name "__proto__": zod's
 * record drops that key without a word (the spec was stored without it, and the PUT answered
 * 201), so it is refused here, at its pointer, before the record is built.
 */
function refuseProto<T extends z.ZodType>(what: string, schema: T) {
	return z.preprocess((v, ctx) => {
		if (v !== null && typeof v === "object" && Object.hasOwn(v, "__proto__")) {
			ctx.addIssue({ code: "custom", message: `${what} name "__proto__" is reserved`, path: ["__proto__"], input: v });
		}
		return v;
	}, schema);
}

const ingestSchema = z
	.object({
		key: jsonPointerSchema,
		event_time: jsonPointerSchema.optional(),
		op: jsonPointerSchema.optional(),
		fields: refuseProto("field", z.record(z.string(), jsonPointerSchema)).optional(),
	})
	.strict();

export const specInputSchema = z
	.object({
		name: z.string().optional(),
		key: z.string().regex(FIELD_PATTERN, "must be an identifier: letters, digits and _, not starting with a digit or __, at most 64"),
		fields: refuseProto(
			"field",
			z
				.record(
					z.string().regex(FIELD_PATTERN, "field names must be identifiers: letters, digits and _, not starting with a digit or __, at most 64"),
					fieldSchema,
				)
				.refine((f) => Object.keys(f).length <= MAX_FIELDS, `at most ${MAX_FIELDS} fields`),
		),
		ttl_seconds: z
			.number()
			.int()
			.positive()
			.max(10 * 365 * 86_400)
			.default(DEFAULT_TTL_SECONDS),
		history_days: z.number().int().min(1).max(MAX_HISTORY_DAYS).default(DEFAULT_HISTORY_DAYS),
		ingest: ingestSchema.optional(),
		aggregates: refuseProto(
			"aggregate",
			z.record(
				z.string().regex(FIELD_PATTERN, "aggregate names must be identifiers: letters, digits and _, not starting with a digit or __, at most 64"),
				aggregateSchema,
			),
		).optional(),
		search: searchSchema.optional(),
		description: z.string().max(1000).optional(),
	})
	.strict()
	.superRefine((spec, ctx) => {
		// An import row (and an exported one) holds the value beside these: a field of the same name could be neither loaded nor exported.
		const clash = (name: string) => `"${name}" is reserved: bulk-import rows use it beside the record's fields (${IMPORT_ROW_PROPERTIES.join(", ")})`;
		if (IMPORT_ROW_PROPERTIES.includes(spec.key)) ctx.addIssue({ code: "custom", message: clash(spec.key), path: ["key"] });
		for (const field of Object.keys(spec.fields)) {
			if (IMPORT_ROW_PROPERTIES.includes(field)) ctx.addIssue({ code: "custom", message: clash(field), path: ["fields", field] });
		}
		// A value's key field is the record's key, not data: it is left out of the stored value and its
		// type never checked, so declaring it would promise what no read returns.
		if (Object.hasOwn(spec.fields, spec.key)) {
			ctx.addIssue({
				code: "custom",
				message: `"${spec.key}" is the entity key (every key is a string); leave it out of fields`,
				path: ["fields", spec.key],
			});
		}
		for (const field of Object.keys(spec.ingest?.fields ?? {})) {
			if (!Object.hasOwn(spec.fields, field))
				ctx.addIssue({ code: "custom", message: `"${field}" is not a field of the dataset`, path: ["ingest", "fields", field] });
		}
		checkSearch(spec.search, spec.fields, ctx);
		checkAggregates(spec, ctx);
		checkDerived(spec, ctx);
	});

/** Each derived field: a type an expression can make, and an expression that compiles over the fields events set. */
function checkDerived(
	spec: { fields: Record<string, z.infer<typeof fieldSchema>>; ingest?: { fields?: Record<string, string> }; aggregates?: Record<string, { of?: string }> },
	ctx: z.RefinementCtx,
): void {
	const fields: Record<string, FieldSpec> = {};
	for (const [name, def] of Object.entries(spec.fields)) fields[name] = typeof def === "string" ? { type: def } : def;
	const derived = derivedFieldNames({ fields });
	for (const name of derived) {
		const f = fields[name] as FieldSpec;
		const at = ["fields", name, "derive"];
		if (!DERIVABLE_TYPES.includes(f.type)) {
			ctx.addIssue({ code: "custom", message: `a derived field is ${DERIVABLE_TYPES.join(", ")}; "${name}" is ${f.type}`, path: ["fields", name, "type"] });
			continue;
		}
		const c = compileDerived(f.derive as string, f.type, fields, derived);
		if ("error" in c) ctx.addIssue({ code: "custom", message: c.error, path: at });
	}
	for (const field of Object.keys(spec.ingest?.fields ?? {})) {
		if (derived.has(field))
			ctx.addIssue({ code: "custom", message: `"${field}" is derived: it is computed on write, not mapped`, path: ["ingest", "fields", field] });
	}
	for (const [name, agg] of Object.entries(spec.aggregates ?? {})) {
		if (agg.of !== undefined && derived.has(agg.of))
			ctx.addIssue({
				code: "custom",
				message: `"${agg.of}" is derived: aggregates count the facts as sent, which do not hold it`,
				path: ["aggregates", name, "of"],
			});
	}
}

/** The type name of a field as written in a spec (either form). */
const typeOf = (def: z.infer<typeof fieldSchema>): FieldType => (typeof def === "string" ? def : def.type);

/** Each search field must be a declared field of a type its role takes, and named once per role. */
function checkSearch(search: z.infer<typeof searchSchema> | undefined, fields: Record<string, z.infer<typeof fieldSchema>>, ctx: z.RefinementCtx): void {
	if (!search) return;
	const roles: [role: "text" | "filters", names: string[] | undefined, types: readonly FieldType[], what: string][] = [
		["text", search.text, TEXT_TYPES, "a text field must be a string or string[] field"],
		["filters", search.filters, FILTER_TYPES, "a filter field must be a string, int, float, bool or string[] field"],
	];
	for (const [role, names, types, what] of roles) {
		const seen = new Set<string>();
		names?.forEach((name, i) => {
			const path = ["search", role, i];
			const def = Object.hasOwn(fields, name) ? fields[name] : undefined;
			if (!def) ctx.addIssue({ code: "custom", message: `"${name}" is not a field of the dataset`, path });
			else if (!types.includes(typeOf(def))) ctx.addIssue({ code: "custom", message: `"${name}" is ${typeOf(def)}: ${what}`, path });
			else if (seen.has(name)) ctx.addIssue({ code: "custom", message: `"${name}" is listed twice`, path });
			else if (role === "filters" && (name === "and" || name === "or"))
				ctx.addIssue({
					code: "custom",
					message: `"${name}" cannot be a filter field: in a filter "${name}" combines filters, so the field could never be filtered by`,
					path,
				});
			else if (role === "filters" && name === "_score")
				ctx.addIssue({
					code: "custom",
					message: `"_score" cannot be a filter field: a sort by "_score" means the search score, so the field could never be sorted by`,
					path,
				});
			seen.add(name);
		});
	}
	if (search.vector !== undefined) {
		const def = Object.hasOwn(fields, search.vector) ? fields[search.vector] : undefined;
		if (!def) ctx.addIssue({ code: "custom", message: `"${search.vector}" is not a field of the dataset`, path: ["search", "vector"] });
		else if (typeOf(def) !== "vector")
			ctx.addIssue({ code: "custom", message: `"${search.vector}" is ${typeOf(def)}: the vector field must be a vector field`, path: ["search", "vector"] });
	}
}

/** Turns a validated input into the canonical spec, fields always in object form. */
export function normaliseSpec(name: string, input: z.infer<typeof specInputSchema>): DatasetSpec {
	const fields: Record<string, FieldSpec> = {};
	for (const [field, def] of Object.entries(input.fields)) {
		const f: FieldSpec = typeof def === "string" ? { type: def } : def.type === "vector" ? { type: "vector", dim: def.dim } : { type: def.type };
		if (typeof def !== "string" && def.derive !== undefined) f.derive = def.derive;
		fields[field] = f;
	}
	const spec: DatasetSpec = { name, key: input.key, fields, ttl_seconds: input.ttl_seconds, history_days: input.history_days };
	if (input.ingest !== undefined) spec.ingest = input.ingest;
	if (input.search !== undefined) spec.search = input.search;
	if (input.aggregates !== undefined && Object.keys(input.aggregates).length) spec.aggregates = input.aggregates;
	if (input.description !== undefined) spec.description = input.description;
	return spec;
}

export function describeType(f: FieldSpec): string {
	return f.type === "vector" ? `vector(${f.dim})` : f.type;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Checks one field value against its type. Returns why it is wrong, or null. `null` is a missing value and always allowed. */
export function checkFieldValue(f: FieldSpec, v: unknown): string | null {
	if (v === null) return null;
	switch (f.type) {
		case "string":
			return typeof v === "string" ? null : "expected a string";
		case "int":
			if (Number.isSafeInteger(v)) return null;
			// A whole number past 2^53 (a 64-bit id) is an integer, just not one JSON numbers hold exactly.
			return Number.isInteger(v)
				? `expected an integer from -${Number.MAX_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER} (int is 53-bit safe; send larger ids as a string field)`
				: "expected an integer";
		case "float":
			return isFiniteNumber(v) ? null : "expected a finite number";
		case "bool":
			return typeof v === "boolean" ? null : "expected true or false";
		case "json":
			return null;
		case "string[]":
			return Array.isArray(v) && v.every((x) => typeof x === "string") ? null : "expected an array of strings";
		case "float[]":
			return Array.isArray(v) && v.every(isFiniteNumber) ? null : "expected an array of finite numbers";
		case "vector":
			if (!Array.isArray(v) || !v.every(isFiniteNumber)) return `expected an array of ${f.dim} finite numbers`;
			if (v.length !== f.dim) return `expected ${f.dim} numbers, got ${v.length}`;
			// Vectors are searched as float32: a number past its range (about ±3.4e38) could be stored but never indexed.
			return v.every((x) => Number.isFinite(Math.fround(x))) ? null : "every number must be within float32 range (about ±3.4e38)";
	}
}

/** Deepest nesting a json field may have: deeper values could overflow the stack when serialised. */
export const MAX_JSON_DEPTH = 64;

/** Why a json field's value cannot be stored as sent: too deep, or a number JSON cannot hold. */
function checkJson(v: unknown): string | null {
	// 1e400 parses to Infinity, which JSON.stringify would store as null: refused rather than silently lost.
	const tooLarge = (x: unknown) => typeof x === "number" && !Number.isFinite(x);
	const TOO_LARGE = "holds a number too large for JSON (it would be stored as null)";
	if (tooLarge(v)) return TOO_LARGE;
	// Iterative, so a hostile value cannot overflow the stack here either.
	const stack: [unknown, number][] = [[v, 1]];
	while (stack.length) {
		const [x, depth] = stack.pop() as [unknown, number];
		if (x === null || typeof x !== "object") continue;
		if (depth > MAX_JSON_DEPTH) return `nested deeper than ${MAX_JSON_DEPTH} levels`;
		for (const child of Object.values(x)) {
			if (tooLarge(child)) return TOO_LARGE;
			if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
		}
	}
	return null;
}

/**
 * Checks a whole event value against the spec. The entity key field may appear in the value
 * (it is then ignored as a field); every other name must be a declared field.
 * Returns problems as [field, reason] pairs.
 */
export function checkValue(spec: DatasetSpec, value: Record<string, unknown>): [string, string][] {
	const problems: [string, string][] = [];
	for (const name of Object.keys(value)) {
		if (name === spec.key) continue;
		const v = value[name];
		const field = Object.hasOwn(spec.fields, name) ? spec.fields[name] : undefined;
		if (!field) {
			problems.push([name, `unknown field; ${spec.name} has ${Object.keys(spec.fields).join(", ") || "no fields"}`]);
			continue;
		}
		if (field.derive !== undefined) {
			problems.push([name, `a derived field (${field.derive}): it is computed on write, and events cannot set it`]);
			continue;
		}
		const why = checkFieldValue(field, v) ?? (field.type === "json" ? checkJson(v) : null);
		if (why) problems.push([name, why]);
	}
	return problems;
}

/**
 * Why `next` cannot replace `prev` without breaking stored data or readers, or [] when it can.
 * Adding fields and changing ttl or description are compatible; anything that changes the
 * meaning of stored values is not (versioned datasets come later).
 */
const NUMERIC_AGGREGATES = new Set(["sum", "min", "max", "mean"]);
const DAY_MS = 86_400_000;

/** Each aggregate: a known field of a type its fn takes, a window from 1 minute to 30 days that the history covers, n for last_n only. */
function checkAggregates(
	spec: { fields: Record<string, unknown>; key: string; history_days: number; aggregates?: Record<string, z.infer<typeof aggregateSchema>> },
	ctx: z.RefinementCtx,
): void {
	for (const [name, agg] of Object.entries(spec.aggregates ?? {})) {
		const at = (...path: (string | number)[]) => ["aggregates", name, ...path];
		if (Object.hasOwn(spec.fields, name) || name === spec.key)
			ctx.addIssue({ code: "custom", message: `"${name}" is also a field: an aggregate needs a name of its own`, path: at() });
		if (agg.fn !== "count" && agg.of === undefined) ctx.addIssue({ code: "custom", message: `${agg.fn} needs "of", the field it aggregates`, path: at("of") });
		if (agg.of !== undefined) {
			const def = Object.hasOwn(spec.fields, agg.of) ? (spec.fields[agg.of] as z.infer<typeof fieldSchema>) : undefined;
			const type = def === undefined ? undefined : typeof def === "string" ? def : def.type;
			if (!type) ctx.addIssue({ code: "custom", message: `"${agg.of}" is not a field of the dataset`, path: at("of") });
			else if (NUMERIC_AGGREGATES.has(agg.fn) && type !== "int" && type !== "float")
				ctx.addIssue({ code: "custom", message: `${agg.fn} needs an int or float field; "${agg.of}" is ${type}`, path: at("of") });
			else if (agg.fn === "distinct" && !["string", "int", "float", "bool"].includes(type))
				ctx.addIssue({ code: "custom", message: `distinct needs a string, int, float or bool field; "${agg.of}" is ${type}`, path: at("of") });
		}
		if ((agg.fn === "last_n") !== (agg.n !== undefined))
			ctx.addIssue({ code: "custom", message: agg.fn === "last_n" ? "last_n needs n (1 to 100)" : "only last_n takes n", path: at("n") });
		const m = /^(\d+)(m|h|d)$/.exec(agg.window);
		if (m) {
			const ms = Number(m[1]) * (m[2] === "m" ? 60_000 : m[2] === "h" ? 3_600_000 : DAY_MS);
			if (ms > 30 * DAY_MS) ctx.addIssue({ code: "custom", message: "a window is at most 30 days", path: at("window") });
			// Windows read their edges (and last_n all its facts) from the event log, which must reach that far back.
			else if (ms > spec.history_days * DAY_MS)
				ctx.addIssue({
					code: "custom",
					message: `the window is longer than the history kept: set history_days to at least ${Math.ceil(ms / DAY_MS)}`,
					path: at("window"),
				});
		}
	}
}

export function incompatibilities(prev: DatasetSpec, next: DatasetSpec): { pointer: string; detail: string }[] {
	const reasons: { pointer: string; detail: string }[] = [];
	if (prev.key !== next.key) reasons.push({ pointer: "/key", detail: `the entity key changes from "${prev.key}" to "${next.key}"` });
	for (const [name, a] of Object.entries(prev.aggregates ?? {})) {
		const b = next.aggregates?.[name];
		if (b && (a.fn !== b.fn || a.of !== b.of)) {
			reasons.push({
				pointer: `/aggregates/${name}`,
				detail: `aggregate "${name}" changes from ${a.fn}(${a.of ?? ""}) to ${b.fn}(${b.of ?? ""}): its tiles hold the old one; add it under a new name`,
			});
		}
	}
	for (const [name, f] of Object.entries(prev.fields)) {
		const g = Object.hasOwn(next.fields, name) ? next.fields[name] : undefined;
		if (!g) reasons.push({ pointer: `/fields/${name}`, detail: `field "${name}" is removed` });
		else if (describeType(f) !== describeType(g)) {
			reasons.push({ pointer: `/fields/${name}`, detail: `field "${name}" changes type from ${describeType(f)} to ${describeType(g)}` });
		} else if (f.derive === undefined ? g.derive !== undefined : g.derive === undefined || !sameExpression(f.derive, g.derive)) {
			const how = (d: string | undefined) => (d === undefined ? "set by events" : `derived as ${d}`);
			reasons.push({
				pointer: `/fields/${name}/derive`,
				detail: `field "${name}" changes from ${how(f.derive)} to ${how(g.derive)}: stored values hold the old one; add it under a new name`,
			});
		}
	}
	return reasons;
}
