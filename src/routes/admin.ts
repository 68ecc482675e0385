/** Admin views: per-tier counters, and the dead letters with their replay and purge. */
import type { Context } from "hono";
import * as z from "zod";
import type { Principal } from "../auth/keys";
import { requireScope } from "../auth/middleware";
import { assertDatasets, assertUnlimitedAdmin, covers } from "../auth/policy";
import type { AppEnv } from "../env";
import { HotpathError } from "../errors";
import {
	BULK_BODY_BYTES,
	deleteDeadLetters,
	getDeadLetter,
	listDeadLetters,
	listReplayable,
	replayDeadLetter,
	replayDeadLetters,
	type StoredDeadLetter,
} from "../ingest/dead-letters";
import { KV_DEAD_LETTER_PREFIX } from "../storage/dead-letters";
import { bearer, json, mount, newRouter, problems } from "./openapi";
import { parseFlag, parseLimit } from "./validation";

export const adminRoutes = newRouter();

const DeadLetterSchema = z
	.object({
		id: z.union([z.number().int(), z.string()]).openapi({ description: "A D1 row id, or kv:<message id> for one waiting in KV while D1 refused it" }),
		queue: z.string(),
		message_id: z.string(),
		error: z.string().openapi({ description: "Why it was dead-lettered" }),
		attempts: z.number().int(),
		datasets: z.array(z.string()).nullable().openapi({ description: "Datasets its events touch; null when the body is not a Hotpath message" }),
		created_at: z.string(),
		replayed_at: z.string().nullable(),
		waiting_in_kv: z.boolean(),
		body: z.unknown().openapi({ description: "The message body (null in a listing when body_omitted says why)" }),
		body_omitted: z
			.string()
			.optional()
			.openapi({ description: "In a listing, a letter past the page's budget of bodies: its size, and GET /v1/dead-letters/{id} shows it" }),
	})
	.openapi("DeadLetter");

const letterQuery = z.object({
	limit: z.string().optional(),
	dataset: z.string().optional().openapi({ description: "Only dead letters touching this dataset" }),
});
const idParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" }, example: "42" }) });

// Scoped per route rather than with use(): this router is mounted at /v1, and a catch-all
// middleware would answer every unknown /v1 path with a 401 instead of a 404.
const admin = requireScope("admin");

/** Most dead letters one bulk replay or purge touches; call again for more. */
const BULK_MAX = 1000;

mount(
	adminRoutes,
	{
		method: "get",
		path: "/stats",
		summary: "Per-tier counters of this isolate",
		description: "Spans every dataset, so it needs an admin key limited to no dataset.",
		tags: ["admin"],
		security: bearer,
		responses: { 200: json("Counters", z.record(z.string(), z.unknown())), ...problems("forbidden") },
	},
	admin,
	(c) => {
		// Counters of the whole isolate span every dataset: only an unlimited admin key may read them.
		assertUnlimitedAdmin(c.get("principal"), "GET /v1/stats");
		const { stats, reader, settings } = c.get("services");
		return c.json({
			since: new Date(stats.startedAt).toISOString(),
			scope: "this isolate",
			tiers: stats.tiers,
			l0: { entries: reader.l0.size, max_entries: reader.l0.maxEntries, ttl_seconds: settings.L0_TTL_SECONDS, fast_lane_hits: stats.fastLaneHits },
		});
	},
);

const view = (l: StoredDeadLetter) => {
	let body: unknown;
	try {
		body = JSON.parse(l.body);
	} catch {
		body = l.body;
	}
	return {
		id: l.id,
		queue: l.queue,
		message_id: l.messageId,
		error: l.error,
		attempts: l.attempts,
		datasets: l.datasets,
		created_at: new Date(l.createdAt).toISOString(),
		replayed_at: l.replayedAt === null ? null : new Date(l.replayedAt).toISOString(),
		waiting_in_kv: typeof l.id === "string",
		...(l.omittedBytes === undefined
			? { body }
			: {
					body: null,
					body_omitted: `${l.omittedBytes} bytes, past this page's ${BULK_BODY_BYTES / (1024 * 1024)} MiB of bodies: GET /v1/dead-letters/${l.id} shows it`,
				}),
	};
};

const INCOMPLETE = "D1 refused the query: only the dead letters waiting in KV are listed; list again once D1 is back for the others";
const INCOMPLETE_BULK = (done: string) => `D1 refused the query: only the dead letters waiting in KV were ${done}; call again once D1 is back for the others`;

/** `limit` (1..500, default 100) and `dataset` of a dead-letter query; a limited key may name only its own datasets. */
function filterOf(c: Context<AppEnv>, principal: Principal, defLimit: number, maxLimit: number) {
	const limit = parseLimit(c, defLimit, maxLimit);
	const dataset = c.req.query("dataset");
	// An empty name is a mistake (an unset variable), not a dataset with no letters: a purge must not answer "purged 0" for it.
	if (dataset === "") {
		throw new HotpathError("bad_request", "dataset is empty: give a dataset name, or leave dataset out for every dataset", {
			errors: [{ pointer: "dataset", detail: "empty" }],
		});
	}
	if (dataset !== undefined) assertDatasets(principal, [dataset]);
	return { within: principal.datasets, dataset, limit };
}

mount(
	adminRoutes,
	{
		method: "get",
		path: "/dead-letters",
		summary: "List dead letters, newest first",
		description: `limit: 1 to 500 (default 100). A key limited to datasets sees only dead letters within them. Bodies come up to ${BULK_BODY_BYTES / (1024 * 1024)} MiB a page; letters past that have body null and body_omitted (GET /v1/dead-letters/{id} shows one).`,
		tags: ["dead letters"],
		security: bearer,
		request: { query: letterQuery },
		responses: {
			200: json(
				"Dead letters",
				z.object({
					dead_letters: z.array(DeadLetterSchema),
					incomplete: z.string().optional().openapi({ description: "Present when D1 refused the query: only the dead letters waiting in KV are listed" }),
				}),
			),
			...problems("bad_request", "forbidden"),
		},
	},
	admin,
	async (c) => {
		// Bodies up to a budget (a letter can reach D1's 2 MB row, and 500 of them would not fit a
		// Worker's memory); the letters past it are listed without theirs, each shown by its own GET.
		const filter = { ...filterOf(c, c.get("principal"), 100, 500), bodyBytes: BULK_BODY_BYTES, keepPastBudget: true };
		const { letters, d1Refused } = await listDeadLetters(c.env.DB, c.env.RECORDS_KV, filter);
		return c.json({ dead_letters: letters.map(view), ...(d1Refused ? { incomplete: INCOMPLETE } : {}) });
	},
);

/** KV keys are at most 512 bytes; a letter waiting in KV is kept under `dlq:<message id>`. */
const MAX_KV_MESSAGE_ID_BYTES = 512 - KV_DEAD_LETTER_PREFIX.length;

/** A dead letter's id from the path: a D1 row id, or `kv:<message id>` for one waiting in KV. */
function parseId(raw: string): number | string {
	if (raw.startsWith("kv:") && raw.length > 3) {
		// Longer than any KV key: no letter waits under it, and KV would refuse the lookup itself.
		if (new TextEncoder().encode(raw.slice(3)).length > MAX_KV_MESSAGE_ID_BYTES)
			throw new HotpathError("bad_request", `the message id of a dead letter waiting in KV (kv:<message id>) is at most ${MAX_KV_MESSAGE_ID_BYTES} bytes`);
		return raw;
	}
	// Decimal digits only, as `before` takes them: Number() alone would also take "0x10" (16), "1e3" or " 7".
	const id = /^[1-9][0-9]{0,15}$/.test(raw) ? Number(raw) : Number.NaN;
	if (!Number.isSafeInteger(id))
		throw new HotpathError("bad_request", `dead letter id must be a positive integer or kv:<message id>, not "${raw.slice(0, 40)}"`);
	return id;
}

/** `before` of a bulk replay: a positive row id, or absent. */
function parseBefore(raw: string | undefined): number | undefined {
	if (raw === undefined) return undefined;
	const id = /^[1-9][0-9]{0,15}$/.test(raw) ? Number(raw) : Number.NaN;
	if (!Number.isSafeInteger(id)) {
		throw new HotpathError("bad_request", `before must be a dead letter's row id (a positive integer), not "${raw.slice(0, 20)}"`, {
			errors: [{ pointer: "before", detail: "a positive integer" }],
		});
	}
	return id;
}

/** The dead letter, if the key may see it: one touching datasets out of its bounds is refused, naming them. */
async function visibleLetter(c: Context<AppEnv>, rawId: string): Promise<StoredDeadLetter> {
	const id = parseId(rawId);
	const letter = await getDeadLetter(c.env.DB, c.env.RECORDS_KV, id);
	if (!letter) throw new HotpathError("not_found", `no dead letter ${rawId}`);
	const principal = c.get("principal");
	if (!covers(principal, letter.datasets)) {
		if (letter.datasets === null) throw new HotpathError("forbidden", "this dead letter's datasets are unknown; only an unlimited admin key may act on it");
		// Ids are sequential: naming the letter's other datasets would tell a limited key, id by id,
		// the names of datasets it may not know of. It learns only that the letter is out of its bounds.
		throw new HotpathError(
			"forbidden",
			`this key is limited to dataset(s) ${principal.datasets?.join(", ")}; it may not act on dead letter ${rawId}, which touches datasets outside them`,
		);
	}
	return letter;
}

mount(
	adminRoutes,
	{
		method: "post",
		path: "/dead-letters/replay",
		summary: "Replay every unreplayed dead letter (within the key's datasets)",
		description: `Up to ${BULK_MAX} a call (limit), newest first by id, as the listing, and up to ${BULK_BODY_BYTES / (1024 * 1024)} MiB of their bodies (then the answer says more); call again for more. Events are idempotent by id, so replaying twice is harmless. Letters whose body is not a Hotpath queue message are left as they are (not counted).`,
		tags: ["dead letters"],
		security: bearer,
		request: {
			query: letterQuery.extend({
				before: z.string().optional().openapi({ description: "Only letters with a smaller id: the before a previous call's answer gave (a run going on)" }),
			}),
		},
		responses: {
			200: json(
				"How many went back on the queue",
				z.object({
					replayed: z.number().int(),
					more: z
						.literal(true)
						.optional()
						.openapi({
							description: `Present when this call stopped at its limit or its ${BULK_BODY_BYTES / (1024 * 1024)} MiB of letter bodies: call again with before for the rest`,
						}),
					before: z.number().int().optional().openapi({ description: "With more: the before of the next call, which goes on below this one's letters" }),
					incomplete: z.string().optional().openapi({ description: "Present when D1 refused the query: only the dead letters waiting in KV were replayed" }),
				}),
			),
			...problems("bad_request", "forbidden", "unavailable"),
		},
	},
	admin,
	async (c) => {
		const filter = filterOf(c, c.get("principal"), BULK_MAX, BULK_MAX);
		const beforeId = parseBefore(c.req.query("before"));
		const { letters, d1Refused, more } = await listReplayable(c.env.DB, c.env.RECORDS_KV, { ...filter, bodyBytes: BULK_BODY_BYTES, beforeId });
		const replayed = await replayDeadLetters(c.env.DB, c.env.RECORDS_KV, c.env.EVENTS_QUEUE, letters);
		// The next call of the run goes on below this page: a letter that fails again at once (it is
		// unreplayed again) would otherwise come back on every call, and the run never end.
		// A page that reached into the letters waiting in KV has no row id to go on from: the next
		// call starts from the top again (replayed ones are marked, and KV is listed after D1).
		const rowIds = letters.map((l) => l.id).filter((id): id is number => typeof id === "number");
		const fromKv = rowIds.length < letters.length;
		const rest = more || letters.length >= filter.limit ? { more: true as const, ...(rowIds.length && !fromKv ? { before: Math.min(...rowIds) } : {}) } : {};
		// As the listing: what KV holds is not passed off as every letter there is.
		return c.json({ replayed, ...rest, ...(d1Refused ? { incomplete: INCOMPLETE_BULK("replayed") } : {}) });
	},
);

mount(
	adminRoutes,
	{
		method: "post",
		path: "/dead-letters/{id}/replay",
		summary: "Replay one dead letter",
		description:
			"Puts its body back on the events queue. Events are idempotent by id, so replaying twice is harmless. A letter whose body is not a Hotpath queue message is a 409: the consumer would only dead-letter it again.",
		tags: ["dead letters"],
		security: bearer,
		request: { params: idParam },
		responses: {
			200: json("Replayed", z.object({ id: z.union([z.number(), z.string()]), replayed_at: z.string() })),
			...problems("bad_request", "forbidden", "not_found", "conflict"),
		},
	},
	admin,
	async (c) => {
		const letter = await visibleLetter(c, c.req.param("id") as string);
		const now = Date.now();
		await replayDeadLetter(c.env.DB, c.env.RECORDS_KV, c.env.EVENTS_QUEUE, letter, now);
		return c.json({ id: letter.id, replayed_at: new Date(now).toISOString() });
	},
);

mount(
	adminRoutes,
	{
		method: "get",
		path: "/dead-letters/{id}",
		summary: "Show one dead letter, with its body",
		tags: ["dead letters"],
		security: bearer,
		request: { params: idParam },
		responses: { 200: json("The dead letter", DeadLetterSchema), ...problems("bad_request", "forbidden", "not_found") },
	},
	admin,
	async (c) => c.json(view(await visibleLetter(c, c.req.param("id") as string))),
);

mount(
	adminRoutes,
	{
		method: "delete",
		path: "/dead-letters/{id}",
		summary: "Delete one dead letter",
		tags: ["dead letters"],
		security: bearer,
		request: { params: idParam },
		responses: { 204: { description: "Deleted" }, ...problems("bad_request", "forbidden", "not_found") },
	},
	admin,
	async (c) => {
		const letter = await visibleLetter(c, c.req.param("id") as string);
		await deleteDeadLetters(c.env.DB, c.env.RECORDS_KV, [letter.id]);
		return c.body(null, 204);
	},
);

mount(
	adminRoutes,
	{
		method: "delete",
		path: "/dead-letters",
		summary: "Purge dead letters (within the key's datasets)",
		description: `Up to ${BULK_MAX} a call (limit), newest first; replayed=true purges only replayed ones, replayed=false only those never replayed, and without it both.`,
		tags: ["dead letters"],
		security: bearer,
		request: { query: letterQuery.extend({ replayed: z.enum(["true", "false"]).optional() }) },
		responses: {
			200: json(
				"How many were deleted",
				z.object({
					purged: z.number().int(),
					incomplete: z.string().optional().openapi({ description: "Present when D1 refused the query: only the dead letters waiting in KV were purged" }),
				}),
			),
			...problems("bad_request", "forbidden"),
		},
	},
	admin,
	async (c) => {
		const filter = filterOf(c, c.get("principal"), BULK_MAX, BULK_MAX);
		// replayed=true: only replayed ones; replayed=false: only those never replayed (what a user
		// who says false means); absent: both. Filtered in the query, not in the page: newer letters of
		// the other kind must not fill it and hide older ones of the kind asked for.
		const given = c.req.query("replayed") !== undefined;
		const onlyReplayed = parseFlag(c, "replayed");
		// Only ids are needed: a purge reads no body, so a thousand large letters go in one call.
		const { letters, d1Refused } = await listDeadLetters(c.env.DB, c.env.RECORDS_KV, {
			...filter,
			replayedOnly: onlyReplayed,
			unreplayedOnly: given && !onlyReplayed,
			withoutBodies: true,
		});
		const purged = await deleteDeadLetters(
			c.env.DB,
			c.env.RECORDS_KV,
			letters.map((l) => l.id),
		);
		return c.json({ purged, ...(d1Refused ? { incomplete: INCOMPLETE_BULK("purged") } : {}) });
	},
);
