/**
 * Every verb of the CLI, registered from this one list. A verb is a function that adds its
 * command to the program; a new verb is one import and one entry here. A verb that parses its own
 * arguments (like `bridge`) registers through `passthroughVerb`.
 */
import type { Command } from "commander";
import { registerBridge } from "./bridge.ts";
import { registerDatasets } from "./datasets.ts";
import { registerDlq } from "./dlq.ts";
import { registerExport } from "./export.ts";
import { registerGet } from "./get.ts";
import { registerHealth } from "./health.ts";
import { registerKeys } from "./keys.ts";
import { registerLoad } from "./load.ts";
import { registerLookup } from "./lookup.ts";
import { registerPush } from "./push.ts";
import { registerRebuild } from "./rebuild.ts";
import { registerStats } from "./stats.ts";

export type RegisterVerb = (program: Command) => void;

/**
 * A verb that takes its raw arguments and resolves with an exit code, loaded only when it runs.
 *
 * @example
 * passthroughVerb("bridge", "move messages from streams into Hotpath", async (argv) => (await import("../bridge/main.ts")).bridgeMain(argv))
 */
export function passthroughVerb(name: string, description: string, run: (argv: string[]) => Promise<number>): RegisterVerb {
	return (program) => {
		program
			.command(name)
			.description(description)
			.helpOption(false)
			.allowUnknownOption()
			.allowExcessArguments()
			.argument("[args...]")
			.action(async (args: string[], _opts: unknown, command: Command) => {
				// --url and --key are the program's options; such a verb reads them as HOTPATH_URL/HOTPATH_KEY.
				const globals = command.optsWithGlobals() as { url?: string; key?: string };
				if (globals.url) process.env.HOTPATH_URL = globals.url;
				if (globals.key) process.env.HOTPATH_KEY = globals.key;
				process.exitCode = await run(args);
			});
	};
}

export const verbs: RegisterVerb[] = [
	registerDatasets,
	registerGet,
	registerLookup,
	registerPush,
	registerLoad,
	registerExport,
	registerKeys,
	registerDlq,
	registerRebuild,
	registerStats,
	registerHealth,
	registerBridge,
];
