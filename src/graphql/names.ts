/**
 * GraphQL names for datasets: the types and root fields of each, unique across a schema and
 * derived deterministically from the dataset names alone.
 *
 * Type names are PascalCase of the dataset name (`item_scores` -> `ItemScores`). That is one to
 * one for names whose every `_`-separated part starts with a letter; any other name (`ab_`,
 * `a__b`, `a_1`) keeps its underscores (`Ab_`, `A__b`, `A_1`), so it cannot meet a PascalCase
 * name, which has none. What can still collide (a dataset `item_scores_record` against the
 * record type of `item_scores`, a dataset `string` against the built-in `String`, a dataset
 * `item_scores_history` against the history field of `item_scores`) is settled in the order the
 * datasets are given, which is the order they were created (inCreationOrder, src/registry): the
 * first keeps its names, a later one gets `_2`, `_3`... on its stem or its root field. So adding a
 * dataset never renames a type or root field that clients of an existing dataset query by.
 */

/** The types each dataset gets, by suffix on its stem. `Search*` are held for search (another issue), so adding it renames nothing. */
export const TYPE_SUFFIXES = ["", "Record", "History", "Version", "SearchResult", "SearchHit"] as const;

/** Names the schema itself uses, or GraphQL's own. (`SearchVector`, search's input type, came with search: a dataset named `search_vector` has had `SearchVector_2` types since.) */
export const RESERVED_TYPE_NAMES: ReadonlySet<string> = new Set([
	"String",
	"Int",
	"Float",
	"Boolean",
	"ID",
	"Query",
	"Mutation",
	"Subscription",
	"SafeInt",
	"JSON",
	"Vector",
	"RecordStatus",
	"IfStale",
	"EventOp",
	"SearchVector",
]);

export interface DatasetNames {
	/** The value type, e.g. `ItemScores`. */
	value: string;
	/** `ItemScoresRecord`. */
	record: string;
	/** `ItemScoresHistory`: a page of versions. */
	history: string;
	/** `ItemScoresVersion`. */
	version: string;
	/** Root fields: `item_scores`, `item_scores_history`, and `item_scores_search` held for search. */
	recordsField: string;
	historyField: string;
	searchField: string;
}

/** `item_scores` -> `ItemScores`; a name PascalCase would not spell one to one keeps its underscores (`ab_` -> `Ab_`). */
export function pascalName(name: string): string {
	const parts = name.split("_");
	if (parts.every((p) => /^[a-z]/.test(p))) return parts.map((p) => p[0]?.toUpperCase() + p.slice(1)).join("");
	return name[0]?.toUpperCase() + name.slice(1);
}

/**
 * Names for every dataset of `datasets` (dataset names, in creation order), unique among themselves
 * and the reserved names; an earlier dataset's names never depend on the datasets after it.
 */
export function assignNames(datasets: Iterable<string>): Map<string, DatasetNames> {
	const types = new Set(RESERVED_TYPE_NAMES);
	// `_datasets` is the schema's own; dataset names start with a letter, so none is ever it.
	const fields = new Set(["_datasets"]);
	const claimField = (base: string): string => {
		let name = base;
		for (let k = 2; fields.has(name); k++) name = `${base}_${k}`;
		fields.add(name);
		return name;
	};
	const out = new Map<string, DatasetNames>();
	for (const ds of datasets) {
		const base = pascalName(ds);
		let stem = base;
		for (let k = 2; TYPE_SUFFIXES.some((s) => types.has(stem + s)); k++) stem = `${base}_${k}`;
		for (const s of TYPE_SUFFIXES) types.add(stem + s);
		out.set(ds, {
			value: stem,
			record: `${stem}Record`,
			history: `${stem}History`,
			version: `${stem}Version`,
			// Its own name, unless an older dataset's history or search field holds it.
			recordsField: claimField(ds),
			historyField: claimField(`${ds}_history`),
			searchField: claimField(`${ds}_search`),
		});
	}
	return out;
}
