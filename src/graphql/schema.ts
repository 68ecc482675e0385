/**
 * The GraphQL schema, generated from the registry: for each dataset a value type of its fields,
 * a record type (key, status, freshness, value), a root field reading records by key in one
 * batched pass, and one reading a key's history. Built per registry version and per set of
 * datasets a key may see, so a spec change is in the schema on the next request and a key limited
 * to some datasets sees only those.
 */
import {
	type FieldNode,
	GraphQLBoolean,
	GraphQLEnumType,
	type GraphQLFieldConfig,
	type GraphQLFieldConfigMap,
	GraphQLFloat,
	GraphQLInt,
	GraphQLList,
	GraphQLNonNull,
	GraphQLObjectType,
	type GraphQLOutputType,
	GraphQLScalarType,
	GraphQLSchema,
	GraphQLString,
} from "graphql";
import type { Principal } from "../auth/keys";
import { mayAccess } from "../auth/policy";
import { HotpathError } from "../errors";
import { assertWithinHistory } from "../history/as-of";
import { MAX_VERSIONS } from "../history/versions";
import { DEFAULT_MAX_FUTURE_SKEW_MS } from "../input";
import { inCreationOrder } from "../registry/registry";
import { type AggregateSpec, type DatasetSpec, describeType, type FieldSpec } from "../registry/spec";
import { decodeCursor, encodeCursor } from "../serving/cursor";
import type { IfStale } from "../serving/freshness";
import { checkFields, checkTimeRange, fieldsAndAggregates, keyProblem, parseAsOf, parseMaxStaleness, parseTimeParam } from "../serving/params";
import type { GraphqlContext, RecordRead } from "./batch";
import { assignNames, type DatasetNames } from "./names";
import { RawJson, recordPlan, renderRecords } from "./render";
import { JsonScalar, SafeIntScalar, VectorScalar } from "./scalars";
import { searchField } from "./search";

/** Versions per history page when `limit` is not given (as in REST). */
export const DEFAULT_VERSIONS = 100;

/** How a root field costs: records by the number of keys, history and search by their page size (src/graphql/limits.ts). */
export type RootKind = "records" | "history" | "search";
const rootKinds = new WeakMap<GraphQLSchema, ReadonlyMap<string, RootKind>>();

/** The kind of a root field of `schema`, if it reads data. */
export const rootKind = (schema: GraphQLSchema, field: string): RootKind | undefined => rootKinds.get(schema)?.get(field);

/** The type names a records root field answers with: its record type, and its value type (null when the value is plain JSON). */
export interface RecordsTypes {
	recordType: string;
	valueType: string | null;
}

/**
 * Per schema: the same root fields, except that each records field is a leaf whose resolver
 * writes the records' JSON itself (src/graphql/render.ts), and the types of its records fields.
 * Operations whose records fields select plain fields are executed against it (src/graphql/execute.ts);
 * it is never validated against or introspected.
 */
const executionSchemas = new WeakMap<GraphQLSchema, { schema: GraphQLSchema; records: ReadonlyMap<string, RecordsTypes> }>();

/** The rendering twin of `schema` (see executionSchemas). */
export const renderingSchema = (schema: GraphQLSchema) => executionSchemas.get(schema);

/** A records field's answer already written as JSON text: passed through to the response writer. */
const RecordsJsonScalar = new GraphQLScalarType<RawJson, RawJson>({
	name: "_RecordsJson",
	serialize: (v) => v as RawJson,
});

const RecordStatusEnum = new GraphQLEnumType({
	name: "RecordStatus",
	description:
		"present: fresh within the dataset's ttl_seconds and the request's max_staleness; stale: older (see if_stale); not_found: no such key, or deleted",
	values: { present: {}, not_found: {}, stale: {} },
});

const IfStaleEnum = new GraphQLEnumType({
	name: "IfStale",
	description: "What to do with a stale value: serve it marked stale (default), or omit it (value null)",
	values: { serve: {}, omit: {} },
});

const EventOpEnum = new GraphQLEnumType({ name: "EventOp", values: { upsert: {}, patch: {}, delete: {} } });

/** The GraphQL type of a field of a dataset. */
function fieldType(f: FieldSpec): GraphQLOutputType {
	switch (f.type) {
		case "string":
			return GraphQLString;
		case "int":
			return SafeIntScalar;
		case "float":
			return GraphQLFloat;
		case "bool":
			return GraphQLBoolean;
		case "json":
			return JsonScalar;
		case "string[]":
			return new GraphQLList(GraphQLString);
		case "float[]":
			return new GraphQLList(GraphQLFloat);
		case "vector":
			return VectorScalar;
	}
}

/** The GraphQL type of an aggregate's value: counts are whole, sums and means numbers, min and max the field's type, last_n a list of the field's values. */
function aggregateType(spec: DatasetSpec, agg: AggregateSpec): GraphQLOutputType {
	const of = agg.of !== undefined && Object.hasOwn(spec.fields, agg.of) ? (spec.fields[agg.of] as FieldSpec) : undefined;
	switch (agg.fn) {
		case "count":
		case "distinct":
			return SafeIntScalar;
		case "min":
		case "max":
			return of ? fieldType(of) : GraphQLFloat;
		case "sum":
		case "mean":
			return GraphQLFloat;
		case "last_n":
			return new GraphQLList(of ? fieldType(of) : JsonScalar);
	}
}

const nonNull = <T extends GraphQLOutputType>(t: T) => new GraphQLNonNull(t);

interface RecordsArgs {
	keys: string[];
	fields?: string[] | null;
	max_staleness?: number | null;
	if_stale?: IfStale | null;
	as_of?: string | null;
}

interface HistoryArgs {
	key: string;
	since?: string | null;
	until?: string | null;
	limit?: number | null;
	cursor?: string | null;
}

const badKey = (where: string, key: string): HotpathError | null => {
	const why = key === "" ? "a key must not be empty" : keyProblem(key);
	return why ? new HotpathError("bad_request", `${where}: ${why}`, { errors: [{ pointer: where, detail: why }] }) : null;
};

/** The read a records field asks for, its arguments checked as REST checks them. */
function recordRead(spec: DatasetSpec, args: RecordsArgs, ctx: GraphqlContext): RecordRead {
	args.keys.forEach((k, i) => {
		const bad = badKey(`keys[${i}]`, k);
		if (bad) throw bad;
	});
	const fields = checkFields(args.fields ?? undefined, fieldsAndAggregates(spec), "fields");
	const maxStalenessS = parseMaxStaleness(args.max_staleness, "max_staleness");
	const asOf = parseAsOf(args.as_of, "as_of", (ctx.services?.settings.MAX_FUTURE_SKEW_SECONDS ?? DEFAULT_MAX_FUTURE_SKEW_MS / 1000) * 1000);
	if (asOf !== undefined) assertWithinHistory(spec, asOf);
	return { spec, keys: args.keys, fields, maxStalenessS, ifStale: args.if_stale ?? "serve", asOf };
}

// History cursors are REST's (src/routes/history.ts): the same page can be continued over either API.
const historyCursor = (c: { time: number; id: string }) => encodeCursor(JSON.stringify([c.time, c.id]));
function parseHistoryCursor(raw: string): { time: number; id: string } {
	let parsed: unknown;
	try {
		parsed = JSON.parse(decodeCursor(raw));
	} catch {
		parsed = null;
	}
	if (Array.isArray(parsed) && typeof parsed[0] === "number" && typeof parsed[1] === "string") return { time: parsed[0], id: parsed[1] };
	throw new HotpathError("bad_request", "cursor is not one this API gave out: pass next_cursor from the previous page as is", {
		errors: [{ pointer: "cursor", detail: "not a cursor from a previous page" }],
	});
}

async function historyPage(spec: DatasetSpec, args: HistoryArgs, ctx: GraphqlContext) {
	const bad = badKey("key", args.key);
	if (bad) throw bad;
	const limit = args.limit ?? DEFAULT_VERSIONS;
	if (!Number.isInteger(limit) || limit < 1 || limit > MAX_VERSIONS) {
		throw new HotpathError("bad_request", `limit must be an integer from 1 to ${MAX_VERSIONS}`, {
			errors: [{ pointer: "limit", detail: `1 to ${MAX_VERSIONS}` }],
		});
	}
	const since = parseTimeParam(args.since, "since");
	const untilParam = parseTimeParam(args.until, "until");
	checkTimeRange(since, untilParam);
	const until = untilParam ?? Number.MAX_SAFE_INTEGER;
	const after = args.cursor !== undefined && args.cursor !== null ? parseHistoryCursor(args.cursor) : undefined;
	const page = await ctx.batch.versions(spec, args.key, { since, until, limit, after });
	return {
		versions: page.versions,
		next_cursor: page.next ? historyCursor(page.next) : null,
		history_begins_at: new Date(page.historyBeginsAt).toISOString(),
	};
}

/** A dataset's types and root fields, and its records field as the rendering schema has it. */
function datasetFields(
	spec: DatasetSpec,
	names: DatasetNames,
): { fields: GraphQLFieldConfigMap<unknown, GraphqlContext>; rendered: GraphQLFieldConfig<unknown, GraphqlContext, RecordsArgs>; types: RecordsTypes } {
	const fieldEntries: [string, { type: GraphQLOutputType; description: string }][] = [
		...Object.entries(spec.fields).map(
			([name, f]) => [name, { type: fieldType(f), description: describeType(f) }] as [string, { type: GraphQLOutputType; description: string }],
		),
		...Object.entries(spec.aggregates ?? {}).map(
			([name, agg]) =>
				[name, { type: aggregateType(spec, agg), description: `${agg.fn}${agg.of ? ` of ${agg.of}` : ""} over the last ${agg.window}` }] as [
					string,
					{ type: GraphQLOutputType; description: string },
				],
		),
	];
	// A type needs a field: the value of a dataset without fields is plain JSON (always {}).
	const valueType: GraphQLOutputType = fieldEntries.length
		? new GraphQLObjectType({
				name: names.value,
				description: spec.description ?? `A value of dataset ${spec.name} (entity key: ${spec.key})`,
				// Own properties only: graphql's default resolver reads `value[name]` through the prototype, so a
				// field named `constructor` or `toString` that a value lacks would come out as Object's method
				// (called!) instead of null. (render.ts writes values by the same rule.)
				fields: Object.fromEntries(
					fieldEntries.map(([name, f]) => [name, { ...f, resolve: (v: Record<string, unknown>) => (Object.hasOwn(v, name) ? v[name] : null) }]),
				),
			})
		: JsonScalar;
	const recordType = new GraphQLObjectType({
		name: names.record,
		description: `One key of dataset ${spec.name}, with its freshness`,
		fields: {
			key: { type: nonNull(GraphQLString) },
			status: { type: nonNull(RecordStatusEnum) },
			event_time: { type: GraphQLString, description: "RFC 3339 time of the newest event applied" },
			age_ms: { type: GraphQLFloat, description: "Now (or as_of) minus event_time, in ms" },
			value: { type: valueType, description: "null when not found, or stale with if_stale: omit" },
		},
	});
	const versionType = new GraphQLObjectType({
		name: names.version,
		fields: {
			event_time: { type: nonNull(GraphQLString) },
			event_id: { type: nonNull(GraphQLString) },
			op: { type: nonNull(EventOpEnum) },
			value: { type: valueType, description: "The whole state after this event under the merge rules; null after a delete" },
		},
	});
	const historyType = new GraphQLObjectType({
		name: names.history,
		fields: {
			versions: { type: nonNull(new GraphQLList(nonNull(versionType))) },
			next_cursor: { type: GraphQLString, description: "Pass as cursor for the next page; null on the last" },
			history_begins_at: { type: nonNull(GraphQLString), description: "Events before this may have been folded together by the retention" },
		},
	});
	const records: GraphQLFieldConfig<unknown, GraphqlContext, RecordsArgs> = {
		type: nonNull(new GraphQLList(nonNull(recordType))),
		description: `Records of ${spec.name} by key, in key order. Cache first (L0, Redis, KV, D1); every records field of an operation is read in one pass. as_of (RFC 3339 or epoch ms): the state as of then, from the event log.`,
		args: {
			keys: { type: nonNull(new GraphQLList(nonNull(GraphQLString))) },
			fields: { type: new GraphQLList(nonNull(GraphQLString)), description: "Projection: other fields of value are null" },
			max_staleness: { type: GraphQLFloat, description: "Seconds: tightens the dataset's ttl_seconds" },
			if_stale: { type: IfStaleEnum },
			as_of: { type: GraphQLString },
		},
		resolve: (_src, args, ctx) => ctx.batch.records(recordRead(spec, args, ctx)),
	};
	const history: GraphQLFieldConfig<unknown, GraphqlContext, HistoryArgs> = {
		type: nonNull(historyType),
		description: `A key's versions in event_time order, a page at a time (at most ${MAX_VERSIONS}, default ${DEFAULT_VERSIONS}). since/until: RFC 3339 or epoch ms, inclusive.`,
		args: {
			key: { type: nonNull(GraphQLString) },
			since: { type: GraphQLString },
			until: { type: GraphQLString },
			limit: { type: GraphQLInt },
			cursor: { type: GraphQLString },
		},
		resolve: (_src, args, ctx) => historyPage(spec, args, ctx),
	};
	const types: RecordsTypes = { recordType: names.record, valueType: fieldEntries.length ? names.value : null };
	const rendered: GraphQLFieldConfig<unknown, GraphqlContext, RecordsArgs> = {
		...records,
		type: nonNull(RecordsJsonScalar),
		// Not async: bad arguments throw here, synchronously, as the records field's own resolver does,
		// so graphql-js reports them at the same moment (and so with the same errors) on either schema.
		resolve: (_src, args, ctx, info) => {
			const plan = recordPlan(info.fieldNodes[0] as FieldNode, types.recordType, types.valueType);
			// execute.ts runs an operation against the rendering schema only when every plan exists.
			if (!plan || info.fieldNodes.length !== 1) throw new Error("a records field with a selection the rendering schema cannot write");
			return ctx.batch.records(recordRead(spec, args, ctx)).then((views) => new RawJson(renderRecords(views, plan)));
		},
	};
	const search = spec.search ? { [names.searchField]: searchField(spec, names, valueType, { status: RecordStatusEnum, ifStale: IfStaleEnum }) } : {};
	return {
		fields: { [names.recordsField]: records, [names.historyField]: history, ...search } as GraphQLFieldConfigMap<unknown, GraphqlContext>,
		rendered,
		types,
	};
}

/** The schema of `specs`, given in creation order: where their GraphQL names collide, an earlier dataset keeps its own (src/graphql/names.ts). */
export function buildSchema(specs: readonly DatasetSpec[]): GraphQLSchema {
	const names = assignNames(specs.map((s) => s.name));
	const kinds = new Map<string, RootKind>();
	const datasetNames = specs.map((s) => s.name).sort();
	const fields: GraphQLFieldConfigMap<unknown, GraphqlContext> = {
		// Query needs a field even when a key sees no dataset; names start with a letter, so this one is never a dataset's.
		_datasets: {
			type: nonNull(new GraphQLList(nonNull(GraphQLString))),
			description: "The datasets this key may read, in name order",
			resolve: () => datasetNames,
		},
	};
	const renderedFields: GraphQLFieldConfigMap<unknown, GraphqlContext> = { ...fields };
	const records = new Map<string, RecordsTypes>();
	for (const spec of specs) {
		const n = names.get(spec.name) as DatasetNames;
		const d = datasetFields(spec, n);
		Object.assign(fields, d.fields);
		Object.assign(renderedFields, d.fields, { [n.recordsField]: d.rendered });
		records.set(n.recordsField, d.types);
		kinds.set(n.recordsField, "records");
		kinds.set(n.historyField, "history");
		if (spec.search) kinds.set(n.searchField, "search");
	}
	const schema = new GraphQLSchema({
		query: new GraphQLObjectType({ name: "Query", fields }),
		types: [SafeIntScalar, JsonScalar, VectorScalar],
	});
	rootKinds.set(schema, kinds);
	// The same types by name (variables are coerced against it), so it shares every type but Query's records fields.
	const rendering = new GraphQLSchema({
		query: new GraphQLObjectType({ name: "Query", fields: renderedFields }),
		types: [SafeIntScalar, JsonScalar, VectorScalar, IfStaleEnum],
	});
	executionSchemas.set(schema, { schema: rendering, records });
	return schema;
}

/** Schemas per registry version (the registry's map, the same object until a spec changes), then per set of visible datasets. */
const schemas = new WeakMap<ReadonlyMap<string, DatasetSpec>, Map<string, GraphQLSchema>>();
/** Distinct dataset sets kept per registry version: keys limited to many different sets only rebuild more often. */
const MAX_SCHEMAS_PER_VERSION = 64;

/** The schema `principal` sees: every dataset, or only those it is limited to. */
export function schemaFor(registry: ReadonlyMap<string, DatasetSpec>, principal: Principal): GraphQLSchema {
	let perVersion = schemas.get(registry);
	if (!perVersion) {
		perVersion = new Map();
		schemas.set(registry, perVersion);
	}
	// The key's datasets that exist, in name order (the registry's order): one schema per distinct set.
	const id = principal.datasets ? [...registry.keys()].filter((name) => mayAccess(principal, name)).join(",") : "*";
	let schema = perVersion.get(id);
	if (!schema) {
		if (perVersion.size >= MAX_SCHEMAS_PER_VERSION) perVersion.delete(perVersion.keys().next().value as string);
		// In creation order, so that a dataset added later never renames an older one's types or root fields.
		schema = buildSchema(inCreationOrder(registry).filter((s) => mayAccess(principal, s.name)));
		perVersion.set(id, schema);
	}
	return schema;
}
