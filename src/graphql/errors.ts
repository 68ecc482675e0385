/**
 * GraphQL errors as clients see them: every one carries extensions.code. Domain errors keep their
 * detail under the code their kind maps to; anything unexpected is logged and masked.
 */
import { GraphQLError, type GraphQLFormattedError } from "graphql";
import { type ErrorCode, HotpathError } from "../errors";
import { log } from "../observability/log";

export type GraphqlErrorCode =
	| "BAD_REQUEST"
	| "GRAPHQL_PARSE_FAILED"
	| "GRAPHQL_VALIDATION_FAILED"
	| "OPERATION_RESOLUTION_FAILURE"
	| "BAD_USER_INPUT"
	| "TOO_COMPLEX"
	| "UNAUTHENTICATED"
	| "FORBIDDEN"
	| "NOT_FOUND"
	| "RATE_LIMITED"
	| "UNAVAILABLE"
	| "INTERNAL_SERVER_ERROR";

const codeOf: Record<ErrorCode, GraphqlErrorCode> = {
	bad_request: "BAD_USER_INPUT",
	validation_failed: "BAD_USER_INPUT",
	unauthorized: "UNAUTHENTICATED",
	forbidden: "FORBIDDEN",
	not_found: "NOT_FOUND",
	record_not_found: "NOT_FOUND",
	method_not_allowed: "BAD_REQUEST",
	conflict: "BAD_USER_INPUT",
	payload_too_large: "TOO_COMPLEX",
	uri_too_long: "TOO_COMPLEX",
	unsupported_media_type: "BAD_REQUEST",
	rate_limited: "RATE_LIMITED",
	unavailable: "UNAVAILABLE",
	internal: "INTERNAL_SERVER_ERROR",
};

/** An error of the request itself (nothing was executed). */
export const requestError = (code: GraphqlErrorCode, message: string) => new GraphQLError(message, { extensions: { code } });

/** The error as sent, with extensions.code: `fallback` when neither the error nor its cause names one. */
export function formatError(err: GraphQLError, fallback: GraphqlErrorCode): GraphQLFormattedError {
	const json = err.toJSON();
	const cause = err.originalError;
	if (cause instanceof HotpathError) {
		const extensions: Record<string, unknown> = { code: codeOf[cause.code] };
		if (cause.errors?.length) extensions.errors = cause.errors;
		if (cause.retryAfterSeconds !== undefined) extensions.retry_after_seconds = cause.retryAfterSeconds;
		return { ...json, message: cause.message, extensions };
	}
	if (cause && !(cause instanceof GraphQLError)) {
		log.error("graphql resolver failed", { path: err.path, error: String(cause), stack: cause.stack });
		return { ...json, message: "unexpected server error; it has been logged", extensions: { code: "INTERNAL_SERVER_ERROR" } };
	}
	return typeof json.extensions?.code === "string" ? json : { ...json, extensions: { ...json.extensions, code: fallback } };
}
