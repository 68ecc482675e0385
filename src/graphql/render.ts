/**
 * Plain records fields rendered straight to JSON text. graphql-js completes every field of every
 * record on its own (a resolver call, a path, an info object and a serialize per field: 100 keys
 * of 23 fields are ~3,000 completions), and then the response is serialised once more. For a
 * records field whose selections are plain fields (no fragments, directives or repeated names),
 * the answer is fully known from the record views: this writes it as the text graphql-js would
 * have produced, splicing each value's cached JSON (`valueJson`) when the selection asks for
 * exactly its fields in its order. Stored values were checked against their field types on write
 * and types never change (src/registry/spec.ts incompatibilities), so every scalar serialises to
 * itself, which is what makes the text the same.
 *
 * Where it applies (execute.ts decides, per operation): a query without fragments whose root
 * selections are fields, each response name once, no introspection; each records field's own
 * selection plain (directives only on root fields, where graphql-js still handles them). Anything
 * else runs the ordinary way. Rules kept equal on both paths: a missing value field is null (own
 * properties only, schema.ts), a bad argument throws synchronously from the resolver, and errors
 * carry the same path (the records field itself). The one thing that can differ is which of two
 * root fields failing on I/O at nearly the same moment is reported (a rendered field settles one
 * microtask later), which is not deterministic on either path.
 * test/worker/graphql-render-unit.test.ts and graphql-render-integration.test.ts compare both paths.
 */
import { type FieldNode, type FragmentDefinitionNode, type GraphQLFormattedError, Kind, type OperationDefinitionNode, type SelectionSetNode } from "graphql";
import type { RecordView } from "../serving/freshness";
import { valueJson } from "../storage/cached-record";

/** A records field's answer as JSON text: the response writer splices it in (see responseJson). */
export class RawJson {
	constructor(readonly text: string) {}
	/** Anything that serialises a body without responseJson still gets the right JSON (slower: the text is parsed back). */
	toJSON(): unknown {
		return JSON.parse(this.text);
	}
}

type RecordPart = "key" | "status" | "event_time" | "age_ms" | "value" | "__typename";
const RECORD_PARTS = new Set<string>(["key", "status", "event_time", "age_ms", "value", "__typename"]);

/** How to write one record: its parts in selection order, each with its `"name":` prefix. */
interface RecordPlan {
	/** `value` parts carry their own selection (`a: value { x } b: value { y }` are two), or null when the value is plain JSON (a dataset without fields). */
	parts: { prefix: string; part: RecordPart; value?: ValuePlan | null }[];
	recordType: string;
}

interface ValuePlan {
	fields: { prefix: string; name: string }[];
	valueType: string;
	/** Field names in selection order when every response name is the field's own and no __typename is asked: a value with exactly these keys, in this order, is its own JSON. */
	plainNames: string[] | null;
}

/** A selection of plain fields only: no fragments, no directives, no arguments, each response name once. */
function plainFields(set: SelectionSetNode): FieldNode[] | null {
	const seen = new Set<string>();
	const fields: FieldNode[] = [];
	for (const sel of set.selections) {
		if (sel.kind !== Kind.FIELD || sel.directives?.length || sel.arguments?.length) return null;
		const out = (sel.alias ?? sel.name).value;
		if (seen.has(out)) return null;
		seen.add(out);
		fields.push(sel);
	}
	return fields;
}

const plans = new WeakMap<FieldNode, RecordPlan | null>();

/** The plan of a records field node, or null when its selection is not plain. Cached per node (documents are cached per schema). */
export function recordPlan(node: FieldNode, recordType: string, valueType: string | null): RecordPlan | null {
	let plan = plans.get(node);
	if (plan === undefined) {
		plan = buildPlan(node, recordType, valueType);
		plans.set(node, plan);
	}
	return plan;
}

function buildPlan(node: FieldNode, recordType: string, valueType: string | null): RecordPlan | null {
	const fields = node.selectionSet ? plainFields(node.selectionSet) : null;
	if (!fields) return null;
	const parts: RecordPlan["parts"] = [];
	for (const f of fields) {
		const name = f.name.value;
		if (!RECORD_PARTS.has(name)) return null;
		if (name !== "value" && f.selectionSet) return null;
		const prefix = `${JSON.stringify((f.alias ?? f.name).value)}:`;
		if (name !== "value") {
			parts.push({ prefix, part: name as RecordPart });
			continue;
		}
		if (valueType === null) {
			if (f.selectionSet) return null;
			parts.push({ prefix, part: "value", value: null });
			continue;
		}
		// Value fields are leaves (scalars and lists of scalars): a selection under one is not ours to write.
		const sub = f.selectionSet ? plainFields(f.selectionSet) : null;
		if (!sub || sub.some((s) => s.selectionSet)) return null;
		const plain = sub.every((s) => !s.alias && s.name.value !== "__typename");
		const value: ValuePlan = {
			fields: sub.map((s) => ({ prefix: `${JSON.stringify((s.alias ?? s.name).value)}:`, name: s.name.value })),
			valueType,
			plainNames: plain ? sub.map((s) => s.name.value) : null,
		};
		parts.push({ prefix, part: "value", value });
	}
	return { parts, recordType };
}

/**
 * Whether an operation can be run with its records fields rendered by recordPlan: a query with
 * no fragments whose root selections are fields (each response name once), none of them
 * introspection. Whether each records field's own selection is plain is checked by recordPlan.
 */
export function isPlainOperation(operation: OperationDefinitionNode, fragments: ReadonlyMap<string, FragmentDefinitionNode>): boolean {
	if (operation.operation !== "query" || fragments.size) return false;
	const seen = new Set<string>();
	for (const sel of operation.selectionSet.selections) {
		if (sel.kind !== Kind.FIELD) return false;
		const name = sel.name.value;
		if (name === "__schema" || name === "__type") return false;
		const out = (sel.alias ?? sel.name).value;
		if (seen.has(out)) return false;
		seen.add(out);
	}
	return true;
}

/** The JSON text of a value as the plan selects it. */
function valueText(value: Record<string, unknown>, plan: ValuePlan): string {
	const names = plan.plainNames;
	if (names) {
		const keys = Object.keys(value);
		if (keys.length === names.length && keys.every((k, i) => k === names[i])) return valueJson(value);
	}
	let s = "{";
	for (let i = 0; i < plan.fields.length; i++) {
		const f = plan.fields[i] as ValuePlan["fields"][number];
		if (i) s += ",";
		if (f.name === "__typename") s += `${f.prefix}${JSON.stringify(plan.valueType)}`;
		else {
			const v = Object.hasOwn(value, f.name) ? value[f.name] : null;
			s += f.prefix + (v === null || v === undefined ? "null" : JSON.stringify(v));
		}
	}
	return `${s}}`;
}

/** The records field's list, as the JSON text graphql-js would produce for it. */
export function renderRecords(views: readonly RecordView[], plan: RecordPlan): string {
	const out: string[] = [];
	for (const view of views) {
		let s = "{";
		for (let i = 0; i < plan.parts.length; i++) {
			const { prefix, part, value } = plan.parts[i] as RecordPlan["parts"][number];
			if (i) s += ",";
			s += prefix;
			switch (part) {
				case "key":
					s += JSON.stringify(view.key);
					break;
				case "status":
					s += `"${view.status}"`;
					break;
				case "event_time":
					s += view.event_time === null ? "null" : JSON.stringify(view.event_time);
					break;
				case "age_ms":
					s += view.age_ms === null ? "null" : JSON.stringify(view.age_ms);
					break;
				case "__typename":
					s += JSON.stringify(plan.recordType);
					break;
				case "value":
					s += view.value === null ? "null" : value ? valueText(view.value, value) : valueJson(view.value);
					break;
			}
		}
		out.push(`${s}}`);
	}
	return `[${out.join(",")}]`;
}

/** A response body as JSON text, `data` first, with records fields the plan rendered spliced in. */
export function responseJson(body: { data?: Record<string, unknown> | null; errors?: readonly GraphQLFormattedError[] }): string {
	if (!("data" in body)) return JSON.stringify(body);
	const errors = body.errors ? `,"errors":${JSON.stringify(body.errors)}` : "";
	if (!body.data) return `{"data":null${errors}}`;
	const parts: string[] = [];
	for (const [k, v] of Object.entries(body.data)) parts.push(`${JSON.stringify(k)}:${v instanceof RawJson ? v.text : JSON.stringify(v)}`);
	return `{"data":{${parts.join(",")}}${errors}}`;
}
