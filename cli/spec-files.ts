/** Dataset spec files for `hotpath datasets apply`: JSON or YAML, one spec, a list of specs, or several YAML documents. */
import { readFileSync } from "node:fs";
import type { SpecInput } from "@hotpath/client";
import { parseAllDocuments } from "yaml";
import { UsageError } from "./output.ts";

export type NamedSpec = SpecInput & { name: string };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Why `v` is not a spec, or null. The server checks the rest (types, names, compatibility). */
function specProblem(v: unknown): string | null {
	if (!isObject(v)) return "a spec must be a mapping with name, key and fields";
	if (typeof v.name !== "string" || v.name === "") return "missing `name`";
	if (typeof v.key !== "string" || v.key === "") return `${v.name}: missing \`key\` (the entity key's field name)`;
	if (!isObject(v.fields)) return `${v.name}: \`fields\` must be a mapping of field name to type`;
	return null;
}

/** Parses the text of one spec file. `where` names it in errors. */
export function parseSpecText(text: string, where: string): NamedSpec[] {
	const specs: NamedSpec[] = [];
	const docs = parseAllDocuments(text);
	if (!Array.isArray(docs)) throw new UsageError(`${where}: not a spec file`);
	docs.forEach((doc, d) => {
		const at = docs.length > 1 ? `${where} (document ${d + 1})` : where;
		if (doc.errors.length) throw new UsageError(`${at}: ${doc.errors[0]?.message ?? "not valid JSON or YAML"}`);
		const value: unknown = doc.toJS();
		if (value === null || value === undefined) return;
		const list = Array.isArray(value) ? value : [value];
		list.forEach((spec: unknown, i) => {
			const problem = specProblem(spec);
			if (problem) throw new UsageError(`${at}${Array.isArray(value) ? ` item ${i + 1}` : ""}: ${problem}`);
			specs.push(spec as NamedSpec);
		});
	});
	if (!specs.length) throw new UsageError(`${where}: holds no spec`);
	return specs;
}

/** Reads and parses every file (`-` is stdin) before anything is applied: a bad file applies nothing. */
export function readSpecFiles(files: string[]): NamedSpec[] {
	const specs: NamedSpec[] = [];
	for (const file of files) {
		let text: string;
		try {
			text = readFileSync(file === "-" ? 0 : file, "utf8");
		} catch (e) {
			throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
		}
		specs.push(...parseSpecText(text, file === "-" ? "stdin" : file));
	}
	const seen = new Set<string>();
	for (const s of specs) {
		if (seen.has(s.name)) throw new UsageError(`dataset ${s.name} is defined twice`);
		seen.add(s.name);
	}
	return specs;
}
