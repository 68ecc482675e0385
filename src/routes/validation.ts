/** Request parsing shared by routes: JSON bodies through zod, and common query parameters, all failing as 4xx problems. */
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError, issuesToItems } from "../errors";

/** Reads the body as JSON (any content type) and validates it. Malformed JSON or a schema mismatch is a 400 naming where. */
export async function parseJsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
	const text = await c.req.text();
	let raw: unknown;
	try {
		raw = JSON.parse(text);
	} catch (e) {
		throw new ApiError("bad_request", `body is not valid JSON: ${(e as Error).message}`);
	}
	const parsed = schema.safeParse(raw);
	if (!parsed.success) {
		const errors = issuesToItems(parsed.error.issues);
		throw new ApiError("validation_failed", errors.map((e) => `${e.pointer}: ${e.detail}`).join("; "), { errors });
	}
	return parsed.data;
}

/** `max_staleness` in seconds: a non-negative number, or undefined when absent. */
export function parseMaxStaleness(raw: unknown, where: string): number | undefined {
	if (raw === undefined || raw === null || raw === "") return undefined;
	const n = typeof raw === "number" ? raw : Number(raw);
	if (!Number.isFinite(n) || n < 0)
		throw new ApiError("bad_request", `${where} must be a non-negative number of seconds`, { errors: [{ pointer: where, detail: "expected seconds >= 0" }] });
	return n;
}

/** Checks a field projection against the dataset's fields. */
export function checkFields(fields: string[] | undefined, known: Record<string, unknown>, where: string): string[] | undefined {
	if (!fields) return undefined;
	const unknown = fields.filter((f) => !Object.hasOwn(known, f));
	if (unknown.length) {
		throw new ApiError("bad_request", `${where}: unknown field(s) ${unknown.join(", ")}; known fields are ${Object.keys(known).join(", ")}`, {
			errors: unknown.map((f) => ({ pointer: where, detail: `unknown field "${f}"` })),
		});
	}
	return fields;
}
