/** `hotpath datasets list | get NAME | apply FILE...`: dataset specs, applied like `feast apply`. */
import { type FieldSpec, HotpathError, type Spec } from "@hotpath/client";
import type { Command } from "commander";
import { verbAction } from "../context.ts";
import { describeProblem, table } from "../output.ts";

const fieldText = (f: FieldSpec) => `${f.type === "vector" ? `vector(${f.dim})` : f.type}${f.derive === undefined ? "" : ` = ${f.derive}`}`;

function describeSpec(s: Spec): string {
	const lines = [`${s.name}  key ${s.key}  ttl ${s.ttl_seconds}s${s.history_days !== undefined ? `  history ${s.history_days}d` : ""}`];
	if (s.description) lines.push(`  ${s.description}`);
	const fields = Object.entries(s.fields);
	const width = Math.max(0, ...fields.map(([n]) => n.length));
	for (const [name, f] of fields) lines.push(`  ${name.padEnd(width)}  ${fieldText(f)}`);
	for (const extra of ["search", "aggregates", "ingest"] as const) if (s[extra] !== undefined) lines.push(`  ${extra}: ${JSON.stringify(s[extra])}`);
	return lines.join("\n");
}

export function registerDatasets(program: Command): void {
	const datasets = program.command("datasets").description("list, show and apply dataset specs");

	datasets
		.command("list")
		.description("list every dataset")
		.action(
			verbAction(async ({ client, out }) => {
				const list = await client.datasets.list();
				out.result({ datasets: list }, () =>
					list.length
						? table(
								["NAME", "KEY", "FIELDS", "TTL", "DESCRIPTION"],
								list.map((s) => [s.name, s.key, Object.keys(s.fields).length, `${s.ttl_seconds}s`, s.description ?? ""]),
							)
						: "no datasets",
				);
				return 0;
			}),
		);

	datasets
		.command("get")
		.description("show one dataset's spec")
		.argument("<name>")
		.action(
			verbAction(async ({ client, out }, [name]: [string]) => {
				const spec = await client.datasets.get(name);
				out.result(spec, () => describeSpec(spec));
				return 0;
			}),
		);

	datasets
		.command("apply")
		.description("create or update datasets from spec files (JSON or YAML; one spec, a list, or several YAML documents; - for stdin)")
		.argument("<files...>")
		.action(
			verbAction(async ({ client, out }, [files]: [string[]]) => {
				const { readSpecFiles } = await import("../spec-files.ts");
				const specs = readSpecFiles(files);
				const results: { name: string; status: "created" | "updated" | "failed" | "skipped"; spec?: Spec; error?: unknown }[] = [];
				// After a 401 or no answer at all (the server gone), no later spec can be applied: they are
				// skipped, and the result still says which specs were applied before it.
				let stopped = false;
				for (const spec of specs) {
					if (stopped) {
						results.push({ name: spec.name, status: "skipped" });
						continue;
					}
					try {
						const r = await client.datasets.apply(spec);
						results.push({ name: spec.name, status: r.created ? "created" : "updated", spec: r.spec });
					} catch (e) {
						if (!(e instanceof HotpathError)) throw e;
						results.push({ name: spec.name, status: "failed", error: e.problem });
						if (!out.json) out.note(`${spec.name}: ${describeProblem(e)}`);
						stopped = e.status === 401 || e.status === 0;
					}
				}
				if (stopped && !out.json)
					out.note(
						`not sent: ${
							results
								.filter((r) => r.status === "skipped")
								.map((r) => r.name)
								.join(", ") || "none"
						}`,
					);
				const failed = results.filter((r) => r.status === "failed" || r.status === "skipped").length;
				out.result({ applied: results }, () =>
					results
						.filter((r) => r.status === "created" || r.status === "updated")
						.map((r) => `${r.status} ${r.name}`)
						.join("\n"),
				);
				if (failed) out.note(`${failed} of ${results.length} spec(s) not applied`);
				return failed ? 1 : 0;
			}),
		);
}
