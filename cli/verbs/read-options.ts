/** The read options `get` and `lookup` share: projection, freshness and point-in-time. */
import type { GetOptions, IfStale } from "@hotpath/client";
import { type Command, Option } from "commander";
import { fieldsOption, secondsOption, timeOption } from "../context.ts";

export interface ReadFlags {
	fields?: string[];
	maxStaleness?: number;
	ifStale?: IfStale;
	asOf?: string | number;
}

export function addReadOptions(command: Command): Command {
	return command
		.option("--fields <a,b>", "only these fields", fieldsOption)
		.option("--max-staleness <seconds>", "report values older than this as stale", secondsOption)
		.addOption(new Option("--if-stale <mode>", "serve a stale value marked stale, or omit it").choices(["serve", "omit"]))
		.option("--as-of <time>", "point-in-time read (RFC 3339 or epoch ms)", timeOption);
}

export const readOptions = (f: ReadFlags): GetOptions => ({ fields: f.fields, maxStaleness: f.maxStaleness, ifStale: f.ifStale, asOf: f.asOf });
