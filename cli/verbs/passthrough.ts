/** Verbs that parse their own arguments (like `bridge`): registered with their raw argv, loaded only when they run. */
import type { Command } from "commander";
import { resolveTarget } from "../context.ts";
import { reportError } from "../output.ts";

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
				try {
					// An empty one is bad usage, as for every verb: `--key "$UNSET"` must not fall back to HOTPATH_KEY or .dev.vars.
					resolveTarget(globals);
				} catch (e) {
					process.exitCode = reportError(e, false);
					return;
				}
				if (globals.url) process.env.HOTPATH_URL = globals.url;
				if (globals.key) process.env.HOTPATH_KEY = globals.key;
				process.exitCode = await run(args);
			});
	};
}
