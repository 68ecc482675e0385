/** `hotpath lookup DATASET KEY...`: a batch read, one row per key in the order given. */
import type { Command } from "commander";
import { verbAction } from "../context.ts";
import { duration, table, UsageError } from "../output.ts";
import { addReadOptions, type ReadFlags, readOptions } from "./read-options.ts";

/** POST /v1/lookup's limit on the keys of one request. */
const MAX_KEYS = 1000;

export function registerLookup(program: Command): void {
	addReadOptions(
		program.command("lookup").description("read many keys of one dataset at once (at most 1,000)").argument("<dataset>").argument("<keys...>"),
	).action(
		verbAction(async ({ client, out }, [dataset, keys]: [string, string[]], flags: ReadFlags) => {
			// More keys than one lookup takes is bad usage (exit 2), known before any request, not a 413 (exit 1).
			if (keys.length > MAX_KEYS)
				throw new UsageError(`lookup: ${keys.length} keys given; one lookup reads at most ${MAX_KEYS} (split them into several calls)`);
			const { fields, ...opts } = readOptions(flags);
			const [result] = await client.lookup([{ dataset, keys, fields }], opts);
			const records = result?.records ?? [];
			out.result(result, () =>
				table(
					["KEY", "STATUS", "AGE", "VALUE"],
					records.map((r) => [r.key, r.status, r.age_ms === null ? null : duration(r.age_ms), r.value === null ? null : JSON.stringify(r.value)]),
				),
			);
			return 0;
		}),
	);
}
