/** Batch reads: POST /v1/lookup, many keys of many datasets in one pass through the tiers. */
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import { HotpathError, type ProblemItem } from "../errors";
import { type LookupRequest, lookupRecords } from "../serving/lookup";
import { lookupResultsJson } from "../serving/render";
import { bearer, json, mount, newRouter, problems, z } from "./openapi";
import { readContext } from "./read-context";
import { keyProblem, parseIfStale, RecordViewSchema } from "./records";
import { BODY_LIMITS, checkFields, limitBody, parseJsonBody, parseMaxStaleness } from "./validation";

/** Keys per lookup request, across all datasets. More is a 413. */
export const MAX_LOOKUP_KEYS = 1000;

const lookupSchema = z
	.object({
		requests: z
			.array(
				z
					.object({
						dataset: z.string(),
						keys: z.array(z.union([z.string().min(1), z.number().int()]).transform(String)).min(1),
						fields: z.array(z.string()).optional(),
					})
					.strict(),
			)
			.min(1),
		max_staleness: z.number().nonnegative().optional(),
		if_stale: z.enum(["serve", "omit"]).optional(),
	})
	.strict();

export const lookupRoutes = newRouter();

mount(
	lookupRoutes,
	{
		method: "post",
		path: "/",
		summary: "Read many keys of many datasets in one pass",
		description: `One round trip per tier for the whole batch. Results come back in request order, keys in key order. At most ${MAX_LOOKUP_KEYS} keys (413) and ${BODY_LIMITS.lookup / (1024 * 1024)} MiB per request.`,
		tags: ["records"],
		security: bearer,
		request: { body: { required: true, content: { "application/json": { schema: lookupSchema } } } },
		responses: {
			200: json("The records", z.object({ results: z.array(z.object({ dataset: z.string(), records: z.array(RecordViewSchema) })) })),
			...problems("bad_request", "validation_failed", "forbidden", "payload_too_large", "unavailable"),
		},
	},
	requireScope("read"),
	limitBody(BODY_LIMITS.lookup),
	async (c) => {
		const body = await parseJsonBody(c, lookupSchema);
		const total = body.requests.reduce((n, r) => n + r.keys.length, 0);
		if (total > MAX_LOOKUP_KEYS) throw new HotpathError("payload_too_large", `${total} keys in one lookup; the limit is ${MAX_LOOKUP_KEYS}`);
		assertDatasets(
			c.get("principal"),
			body.requests.map((r) => r.dataset),
		);

		const registry = c.get("services").registry;
		const errors: ProblemItem[] = [];
		const requests: LookupRequest[] = [];
		for (const [i, r] of body.requests.entries()) {
			const spec = await registry.get(r.dataset);
			if (!spec) {
				errors.push({ pointer: `/requests/${i}/dataset`, detail: `dataset "${r.dataset}" does not exist` });
				continue;
			}
			r.keys.forEach((k, j) => {
				const bad = keyProblem(k);
				if (bad) errors.push({ pointer: `/requests/${i}/keys/${j}`, detail: bad });
			});
			let fields: string[] | undefined;
			try {
				fields = checkFields(r.fields, spec.fields, `/requests/${i}/fields`);
			} catch (e) {
				if (!(e instanceof HotpathError)) throw e;
				errors.push(...(e.errors ?? []));
			}
			requests.push({ spec, keys: r.keys, fields });
		}
		if (errors.length) throw new HotpathError("validation_failed", errors.map((e) => `${e.pointer}: ${e.detail}`).join("; "), { errors });

		const ctx = readContext(c);
		const result = await lookupRecords(
			c.get("services").reader,
			requests,
			{ maxStalenessS: parseMaxStaleness(body.max_staleness, "/max_staleness"), ifStale: parseIfStale(body.if_stale) },
			ctx,
		);
		c.header("x-hotpath-tier", result.tiers.join(","));
		c.header("server-timing", ctx.timing.header);
		c.header("cache-control", "no-store");
		return c.body(lookupResultsJson(result.results), 200, { "content-type": "application/json" });
	},
);
