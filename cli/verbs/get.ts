/** `hotpath get DATASET KEY`: one record, with its freshness. Exit 1 when the key is not found. */
import type { Command } from "commander";
import { verbAction } from "../context.ts";
import { duration } from "../output.ts";
import { addReadOptions, type ReadFlags, readOptions } from "./read-options.ts";

export function registerGet(program: Command): void {
	addReadOptions(program.command("get").description("read one record").argument("<dataset>").argument("<key>")).action(
		verbAction(async ({ client, out }, [dataset, key]: [string, string], flags: ReadFlags) => {
			const record = await client.get(dataset, key, readOptions(flags));
			if (record.status === "not_found") {
				out.result(record, () => undefined);
				// A miss as of a time says so: the key may well be there now.
				const when = flags.asOf === undefined ? "" : ` as of ${typeof flags.asOf === "number" ? new Date(flags.asOf).toISOString() : flags.asOf}`;
				out.note(`not found: no record "${key}" in ${dataset}${when}`);
				return 1;
			}
			out.result(record, () =>
				[`${record.status}  event_time ${record.event_time}  age ${duration(record.age_ms ?? Number.NaN)}`, JSON.stringify(record.value, null, 2)].join("\n"),
			);
			return 0;
		}),
	);
}
