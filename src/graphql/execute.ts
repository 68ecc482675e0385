/**
 * One GraphQL request, from its text to the response body: parse (token-bounded), pick the
 * operation, validate (depth-bounded), check cost and keys against the variables, then execute
 * with the operation's batched reads. HTTP is the route's: this says only what kind of answer it is.
 */
import {
	type DocumentNode,
	execute,
	type FieldNode,
	type FragmentDefinitionNode,
	GraphQLError,
	type GraphQLFormattedError,
	type GraphQLSchema,
	getOperationAST,
	Kind,
	type OperationDefinitionNode,
	parse,
	type TypeNode,
	validate,
} from "graphql";
import type { GraphqlContext } from "./batch";
import { formatError, type GraphqlErrorCode, requestError } from "./errors";
import { costProblem, MAX_COMMENTS, MAX_TOKENS, operationCost, readFieldsProblem, tooComplex, validationRules } from "./limits";
import { isPlainOperation, recordPlan } from "./render";
import { renderingSchema } from "./schema";

export interface GraphqlParams {
	query: string;
	variables: Record<string, unknown>;
	operationName: string | null;
}

export interface GraphqlBody {
	data?: Record<string, unknown> | null;
	errors?: GraphQLFormattedError[];
}

/**
 * - `executed`: the operation ran (`data` is there, maybe null, maybe with field errors);
 * - `request_error`: it did not run: it does not parse or validate, is past a bound, or its variables do not fit;
 * - `method_not_allowed`: a GET of something other than a query.
 */
export interface GraphqlOutcome {
	kind: "executed" | "request_error" | "method_not_allowed";
	body: GraphqlBody;
}

/** Validated documents per schema, by query text: repeated queries skip parsing and validation. */
const documents = new WeakMap<GraphQLSchema, Map<string, DocumentNode>>();
const MAX_DOCUMENTS_PER_SCHEMA = 100;
/** Longer queries are not kept (the cache holds at most MAX_DOCUMENTS_PER_SCHEMA of these). */
const MAX_CACHED_QUERY_CHARS = 16 * 1024;

const failed = (errors: readonly GraphQLError[], fallback: GraphqlErrorCode): GraphqlOutcome => ({
	kind: "request_error",
	body: { errors: errors.map((e) => formatError(e, fallback)) },
});

function parseDocument(query: string): DocumentNode | GraphQLError {
	try {
		return parse(query, { maxLexicalTokens: MAX_TOKENS, maxComments: MAX_COMMENTS });
	} catch (e) {
		// graphql's parser descends once per nested list or object literal: a few thousand levels
		// (well within MAX_TOKENS) overflow the stack. Nothing is half-done: a request error.
		if (e instanceof RangeError) return tooComplex(`the document nests too deeply: ${e.message}. Lists and objects nest at most a few hundred levels.`);
		if (!(e instanceof GraphQLError)) throw e;
		// graphql's own limits end with this; the message says which limit.
		if (/Parsing aborted\.$/.test(e.message)) {
			return tooComplex(
				`${e.message.replace(/^Syntax Error: /, "").replace("more that", "more than")} At most ${MAX_TOKENS} tokens and ${MAX_COMMENTS} comments.`,
			);
		}
		return new GraphQLError(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, extensions: { code: "GRAPHQL_PARSE_FAILED" } });
	}
}

/** Why no single operation could be chosen. */
function operationProblem(document: DocumentNode, name: string | null): GraphQLError {
	const ops = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
	if (!ops.length) return requestError("OPERATION_RESOLUTION_FAILURE", "the document holds no operation");
	if (name !== null) return requestError("OPERATION_RESOLUTION_FAILURE", `the document holds no operation named "${name}"`);
	return requestError("OPERATION_RESOLUTION_FAILURE", `the document holds ${ops.length} operations: name the one to run with operationName`);
}

const renderable = new WeakMap<OperationDefinitionNode, boolean>();

/** The name of a variable's type (`[String!]!` -> `String`). */
const namedType = (t: TypeNode): string => (t.kind === Kind.NAMED_TYPE ? t.name.value : namedType(t.type));

/**
 * Whether the operation may run against the rendering schema: it is plain (render.ts), every
 * records field's selection has a plan, and every variable's type is the very same type there
 * (graphql coerces variables against the schema it executes with; by construction they are, this
 * only makes sure). Cached per operation node: documents are cached per schema.
 */
function renders(schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: ReadonlyMap<string, FragmentDefinitionNode>): boolean {
	let ok = renderable.get(operation);
	if (ok === undefined) {
		const twin = renderingSchema(schema);
		ok =
			twin !== undefined &&
			isPlainOperation(operation, fragments) &&
			(operation.variableDefinitions ?? []).every((d) => {
				const name = namedType(d.type);
				return twin.schema.getType(name) === schema.getType(name);
			}) &&
			operation.selectionSet.selections.every((sel) => {
				const types = sel.kind === Kind.FIELD ? twin.records.get(sel.name.value) : undefined;
				return !types || recordPlan(sel as FieldNode, types.recordType, types.valueType) !== null;
			});
		renderable.set(operation, ok);
	}
	return ok;
}

/** `render: false` runs every operation the plain graphql-js way: the reference the differential tests compare the rendering path with. */
export interface RunOptions {
	render?: boolean;
}

export async function runGraphql(
	schema: GraphQLSchema,
	params: GraphqlParams,
	method: "GET" | "POST",
	context: GraphqlContext,
	options: RunOptions = {},
): Promise<GraphqlOutcome> {
	let cache = documents.get(schema);
	if (!cache) {
		cache = new Map();
		documents.set(schema, cache);
	}
	let document = cache.get(params.query);
	const validated = document !== undefined;
	if (!document) {
		const parsed = parseDocument(params.query);
		if (parsed instanceof GraphQLError) return failed([parsed], "GRAPHQL_PARSE_FAILED");
		document = parsed;
	}

	const operation = getOperationAST(document, params.operationName);
	if (!operation) return failed([operationProblem(document, params.operationName)], "OPERATION_RESOLUTION_FAILURE");
	if (operation.operation !== "query") {
		const error = requestError(
			"GRAPHQL_VALIDATION_FAILED",
			`this API is read-only: it runs queries, not a ${operation.operation}${method === "GET" ? " (and GET runs queries only)" : ""}`,
		);
		return method === "GET"
			? { kind: "method_not_allowed", body: { errors: [formatError(error, "BAD_REQUEST")] } }
			: failed([error], "GRAPHQL_VALIDATION_FAILED");
	}

	if (!validated) {
		const errors = validate(schema, document, validationRules, { maxErrors: 50 });
		if (errors.length) return failed(errors, "GRAPHQL_VALIDATION_FAILED");
		if (params.query.length <= MAX_CACHED_QUERY_CHARS) {
			if (cache.size >= MAX_DOCUMENTS_PER_SCHEMA) cache.delete(cache.keys().next().value as string);
			cache.set(params.query, document);
		}
	}

	const fragments = new Map<string, FragmentDefinitionNode>();
	for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
	const tooMuch = costProblem(operationCost(schema, operation, fragments, params.variables)) ?? readFieldsProblem(schema, operation, fragments);
	if (tooMuch) return failed([tooMuch], "TOO_COMPLEX");

	// An operation whose records fields select plain fields runs against the rendering schema, which
	// writes their records as JSON text at once (src/graphql/render.ts); any other against the schema
	// itself. The response is the same either way (test/worker/graphql-render*.test.ts hold it to that).
	const rendering = options.render !== false && renders(schema, operation, fragments) ? renderingSchema(schema)?.schema : undefined;
	const result = await execute({
		schema: rendering ?? schema,
		document,
		operationName: params.operationName,
		variableValues: params.variables,
		contextValue: context,
	});
	// No data: the variables did not coerce, so nothing ran.
	if (!("data" in result)) return failed(result.errors ?? [], "BAD_USER_INPUT");
	const body: GraphqlBody = { data: result.data ?? null };
	if (result.errors?.length) body.errors = result.errors.map((e) => formatError(e, "INTERNAL_SERVER_ERROR"));
	return { kind: "executed", body };
}
