/**
 * The `<dataset>_search` root field of a searchable dataset (one whose spec has `search`): the
 * arguments of POST /v1/datasets/:name/search, answered by the same function (searchDataset,
 * src/search/search.ts), so hits, scores, cursors and errors are REST's. Hits carry the dataset's
 * value type, read through the tiers like any read. A query past a bound or naming an unknown
 * filter field or operator is an error with extensions.code (BAD_USER_INPUT and the JSON Pointers
 * of REST's 400 under extensions.errors), never a 5xx.
 */
import {
	GraphQLBoolean,
	type GraphQLEnumType,
	type GraphQLFieldConfig,
	GraphQLFloat,
	GraphQLInputObjectType,
	GraphQLInt,
	GraphQLList,
	GraphQLNonNull,
	GraphQLObjectType,
	type GraphQLOutputType,
	GraphQLString,
} from "graphql";
import { HotpathError } from "../errors";
import type { DatasetSpec } from "../registry/spec";
import { DEFAULT_K, DEFAULT_LIMIT, MAX_LIMIT, type SearchQuery, searchDataset, withoutNulls } from "../search/search";
import type { IfStale } from "../serving/freshness";
import type { GraphqlContext } from "./batch";
import type { DatasetNames } from "./names";
import { JsonScalar } from "./scalars";

/** Its name is reserved (src/graphql/names.ts), so no dataset's type can take it. */
export const SearchVectorInput = new GraphQLInputObjectType({
	name: "SearchVector",
	description: "Exact cosine k-nearest neighbours of value, or of the vector of record key (left out of the results, also with q): give exactly one",
	// In the order of REST's body, so the same query hashes alike for its cursor over either API.
	fields: {
		value: { type: new GraphQLList(new GraphQLNonNull(GraphQLFloat)), description: "The query vector (the dim of the dataset's vector field)" },
		key: { type: GraphQLString, description: "A record whose vector to search by" },
		k: { type: GraphQLInt, description: `Neighbours to rank (default ${DEFAULT_K})` },
	},
});

export interface SearchArgs {
	q?: string | null;
	filter?: unknown;
	sort?: string[] | null;
	vector?: { value?: number[] | null; key?: string | null; k?: number | null } | null;
	limit?: number | null;
	cursor?: string | null;
	fields?: string[] | null;
	highlight?: boolean | null;
	max_staleness?: number | null;
	if_stale?: IfStale | null;
}

/** Arguments as REST's body: null (GraphQL's "given as null") is left out like an absent member. */
export function searchQuery(args: SearchArgs): SearchQuery {
	return withoutNulls(args as { readonly [member: string]: unknown });
}

/** The enums the dataset's other fields use: a schema holds one type per name. */
export interface SharedTypes {
	status: GraphQLEnumType;
	ifStale: GraphQLEnumType;
}

/** The search root field of `spec` (which has `search`), its hits of type `valueType`. */
export function searchField(
	spec: DatasetSpec,
	names: DatasetNames,
	valueType: GraphQLOutputType,
	shared: SharedTypes,
): GraphQLFieldConfig<unknown, GraphqlContext, SearchArgs> {
	const nonNull = <T extends GraphQLOutputType>(t: T) => new GraphQLNonNull(t);
	// Type names with the suffixes names.ts holds for search.
	const hitType = new GraphQLObjectType({
		name: `${names.value}SearchHit`,
		description: `A hit of a search of ${spec.name}, its value read through the tiers`,
		fields: {
			key: { type: nonNull(GraphQLString) },
			score: { type: nonNull(GraphQLFloat), description: "BM25, cosine similarity, or the fused RRF score; 0 for filter-only queries" },
			status: { type: nonNull(shared.status), description: "present or stale (a hit whose record reads as not found is left out)" },
			event_time: { type: GraphQLString, description: "RFC 3339 time of the newest event applied" },
			age_ms: { type: GraphQLFloat, description: "Now minus event_time, in ms" },
			value: { type: valueType, description: "Projected by fields; null when stale with if_stale: omit" },
			highlights: {
				type: JsonScalar,
				description: "With highlight and q: the matching text fields, the words in <mark></mark> (string[] fields: the matching items)",
			},
		},
	});
	const resultType = new GraphQLObjectType({
		name: `${names.value}SearchResult`,
		fields: {
			hits: { type: nonNull(new GraphQLList(nonNull(hitType))) },
			next_cursor: { type: GraphQLString, description: "Pass as cursor (with the same q, filter, sort and vector) for the next page; null on the last" },
			took_ms: { type: nonNull(GraphQLFloat) },
		},
	});
	const s = spec.search;
	return {
		type: nonNull(resultType),
		description: `Search ${spec.name} as POST /v1/datasets/${spec.name}/search does: text (${s?.text?.join(", ") || "none"}), filters (${s?.filters?.join(", ") || "none"}), vector (${s?.vector ?? "none"}).`,
		args: {
			q: { type: GraphQLString, description: "Words to find in the text fields, all of them (BM25); only letters and digits count" },
			filter: {
				type: JsonScalar,
				description:
					'On filter fields: {price: {lt: 20}, category: {in: ["a", "b"]}, or: [...], and: [...]}; eq ne lt lte gt gte in contains exists; a bare value means eq',
			},
			sort: { type: new GraphQLList(nonNull(GraphQLString)), description: '"price", "-price" or "_score"; up to 3 keys, ties by key' },
			vector: { type: SearchVectorInput },
			limit: { type: GraphQLInt, description: `Hits per page, 1 to ${MAX_LIMIT} (default ${DEFAULT_LIMIT})` },
			cursor: { type: GraphQLString, description: "next_cursor of the previous page" },
			fields: { type: new GraphQLList(nonNull(GraphQLString)), description: "Projection of each hit's value" },
			highlight: { type: GraphQLBoolean },
			max_staleness: { type: GraphQLFloat, description: "Seconds: tightens the dataset's ttl_seconds" },
			if_stale: { type: shared.ifStale },
		},
		resolve: async (_src, args, ctx) => {
			if (!ctx.services) throw new HotpathError("unavailable", "search is not available here: the GraphQL context has no services");
			const { tiers, ...result } = await searchDataset(ctx.services, spec, searchQuery(args), ctx.batch.ctx);
			for (const t of tiers) ctx.batch.tiers.add(t);
			return result;
		},
	};
}
