/**
 * Bulk import: rows of batch output (a record's value with the dataset's key field, plus optional
 * `_event_time`, `_op`, `_id`) applied straight to D1 under the same merge rules, id log and
 * revision checks as the queue consumer, so an import racing live events still converges. Then
 * the cached copies of the changed keys are refreshed like the consumer does.
 */
import { HotpathError } from "../errors";
import { derivedFieldNames } from "../registry/derived";
import { type DatasetSpec, IMPORT_ROW_PROPERTIES } from "../registry/spec";
import type { Services } from "../services";
import { applyEvents } from "./apply";
import { refreshCaches } from "./cache-refresh";
import { assignIds, type IdSource, isRefusal, type Rejected, rejectedAt, relocated, stampReceiptTime, unknownMembers, validateEvent } from "./events";
import type { ChangeEvent } from "./merge";

/** Rows and bytes one import request may carry; more is a 413. */
export const MAX_IMPORT_ROWS = 5000;
export const MAX_IMPORT_BYTES = 5 * 1024 * 1024;

const META = new Set(IMPORT_ROW_PROPERTIES);

export interface ImportResult {
	/** Valid rows whose record this import changed. */
	imported: number;
	/** Valid rows that changed nothing: already applied (same id), or older than what the record holds. */
	unchanged: number;
	rejected: Rejected[];
}

interface ValidRow {
	index: number;
	event: ChangeEvent;
	sentTime: number | null;
}

/**
 * An event's validation message in a row's terms: a row has no `key`, `value`, `op`, `id` or
 * `event_time` of its own, but the key field, its fields, `_op`, `_id` and `_event_time`.
 */
function rowError(error: string, keyField: string): string {
	const field = JSON.stringify(keyField);
	return error
		.replaceAll("value.", "")
		.replace(/^(key is required: .*|\S+ must be a non-empty string or a safe integer, not .*)$/, `${field} must be a non-empty string or a safe integer`)
		.replace(/^key is longer than /, `${field} is longer than `)
		.replace(/^key must be well-formed/, `${field} must be well-formed`)
		.replace(/^a patch needs at least one field in value$/, `a patch needs at least one field besides ${field}`)
		.replace(/^op must/, "_op must")
		.replace(/^id must/, "_id must")
		.replace(/^event_time/, "_event_time");
}

/** Where a place in the event a row became is in the row: its fields and meta properties sit at the top. */
function rowPath(path: readonly string[], keyField: string): readonly string[] {
	const [head, field] = path;
	if (head === "value") return field === undefined ? [] : [field];
	if (head === "key") return [keyField];
	return head === "op" || head === "id" || head === "event_time" ? [`_${head}`] : [];
}

/** Checks each row against the spec and turns it into an event; bad rows are rejected by index. */
export function rowsToEvents(
	items: readonly { index: number; raw: unknown }[],
	spec: DatasetSpec,
	receivedAt: number,
	maxFutureMs: number,
): { valid: ValidRow[]; rejected: Rejected[] } {
	const valid: ValidRow[] = [];
	const rejected: Rejected[] = [];
	const derived = derivedFieldNames(spec);
	for (const { index, raw } of items) {
		if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
			rejected.push({ index, error: "a row must be a JSON object: the record's fields, with its key field" });
			continue;
		}
		const row = raw as Record<string, unknown>;
		// Field names may start with "_" too: only a name that is neither the key nor a field is taken for a misspelt row property.
		const unknownMeta = Object.keys(row).filter((k) => k.startsWith("_") && !META.has(k) && k !== spec.key && !Object.hasOwn(spec.fields, k));
		if (unknownMeta.length) {
			rejected.push(rejectedAt(index, unknownMembers(unknownMeta, "a row's own properties are _event_time, _op, _id")));
			continue;
		}
		const op = row._op ?? "upsert";
		const value: Record<string, unknown> = {};
		// Derived fields are computed on write: an exported row holds them, and loads back as they are recomputed.
		for (const [k, v] of Object.entries(row)) if (!META.has(k) && !derived.has(k)) value[k] = v;
		if (op === "patch" && derived.size && Object.keys(value).every((k) => k === spec.key) && Object.keys(row).some((k) => derived.has(k))) {
			rejected.push({ index, error: "a patch needs at least one field that is not derived: derived fields are computed on write, and a row's are ignored" });
			continue;
		}
		if (!Object.hasOwn(value, spec.key)) {
			const error = `the row has no "${spec.key}", the dataset's key field`;
			rejected.push({ index, error, members: [{ path: [spec.key], detail: error }] });
			continue;
		}
		// A delete row carries only its key: the rest of its fields, if any, are ignored.
		const asEvent = {
			dataset: spec.name,
			op,
			...(op === "delete" ? { key: value[spec.key] } : { value }),
			...(row._event_time === undefined ? {} : { event_time: row._event_time }),
			...(row._id === undefined ? {} : { id: row._id }),
		};
		const v = validateEvent(
			asEvent,
			() => spec,
			receivedAt,
			() => true,
			maxFutureMs,
		);
		if (isRefusal(v)) {
			const why = rejectedAt(
				index,
				relocated(v, (path) => rowPath(path, spec.key)),
			);
			rejected.push({ ...why, error: rowError(why.error, spec.key), members: why.members?.map((m) => ({ ...m, detail: rowError(m.detail, spec.key) })) });
		} else valid.push({ index, ...v });
	}
	return { valid, rejected };
}

/** Applies rows to D1 and refreshes the caches. Throws `unavailable` when D1 cannot be written. */
export async function importRows(
	services: Services,
	spec: DatasetSpec,
	items: readonly { index: number; raw: unknown }[],
	ids: IdSource,
): Promise<ImportResult> {
	const receivedAt = Date.now();
	const { valid, rejected } = rowsToEvents(items, spec, receivedAt, services.settings.MAX_FUTURE_SKEW_SECONDS * 1000);
	if (!valid.length) return { imported: 0, unchanged: 0, rejected };
	await stampReceiptTime(services.env.DB, valid, ids, receivedAt, services.settings.D1_TIMEOUT_MS);
	await assignIds(valid, ids);
	let result: Awaited<ReturnType<typeof applyEvents>>;
	try {
		result = await applyEvents(
			services.env.DB,
			valid.map((v) => v.event),
			() => spec,
			Date.now(),
			{ contributions: true },
		);
	} catch (e) {
		throw new HotpathError(
			"unavailable",
			`D1 could not take the import (${String((e as Error).message ?? e)}); rows may have been applied in part. Resending is safe for rows with _id or _event_time, or with the same Idempotency-Key`,
			{ retryAfterSeconds: 1 },
		);
	}
	// Rows of a refused key (past the record size limit, or refused by D1) are rejected with the reason.
	const refusedIds = new Map<string, string>();
	for (const r of result.refused) for (const e of r.events) refusedIds.set(`${r.key}\u0000${e.id}`, r.reason);
	// A row counts as imported when its event shows in the record now: not already applied, not
	// overridden whole by a newer row or by what the record held. A repeated row counts once.
	const contributed = new Set<string>();
	for (const a of result.applied) for (const id of a.contributed ?? []) contributed.add(`${a.key}\u0000${id}`);
	let imported = 0;
	let unchanged = 0;
	for (const v of valid) {
		const id = `${v.event.key}\u0000${v.event.id}`;
		const reason = refusedIds.get(id);
		if (reason) rejected.push({ index: v.index, error: reason });
		else if (contributed.delete(id)) imported++;
		else unchanged++;
	}
	rejected.sort((a, b) => a.index - b.index);
	try {
		await refreshCaches(services, result.applied, []);
	} catch (e) {
		// D1 has the rows, but a cache tier could be neither written nor handed a refresh: say so, as
		// an outage (the caller may resend: rows apply once), never as a server fault.
		throw new HotpathError(
			"unavailable",
			`the rows were applied to D1 (${imported} imported, ${unchanged} unchanged, ${rejected.length} rejected), but the cache tiers could not be brought up to them nor a refresh queued (${String((e as Error).message ?? e)}); cached copies of these keys may lag until they expire. Resending is safe for rows with _id or _event_time, or with the same Idempotency-Key`,
			{ retryAfterSeconds: 1 },
		);
	}
	return { imported, unchanged, rejected };
}
