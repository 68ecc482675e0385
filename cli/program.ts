/** Builds the `hotpath` command line: global options, every verb, and exit codes for usage errors. */
import { Command, CommanderError } from "commander";
import { DEFAULT_URL } from "./context.ts";
import { EXIT } from "./output.ts";
import { verbs } from "./verbs/index.ts";

export function createProgram(): Command {
	const program = new Command("hotpath")
		.description("Command line for Hotpath: datasets, reads, search, history, pushes, bulk loads and exports, keys, dead letters, rebuilds")
		.option("--url <url>", `Hotpath's base URL (env HOTPATH_URL, default ${DEFAULT_URL})`)
		.option("--key <key>", "API key (env HOTPATH_KEY, default HOTPATH_ADMIN_KEY from .dev.vars)")
		.option("--json", "machine-readable output on stdout")
		.showHelpAfterError("(run with --help for usage)")
		.exitOverride();
	for (const register of verbs) register(program);
	// Every subcommand inherits the exit override, so usage errors surface here as CommanderErrors.
	for (const command of program.commands) command.exitOverride();
	return program;
}

/** Runs the CLI with `argv` (the arguments after the program name); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
	const program = createProgram();
	try {
		await program.parseAsync(argv, { from: "user" });
		return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
	} catch (e) {
		if (e instanceof CommanderError) {
			// --help and --version are not errors; everything else commander refuses is bad usage.
			return e.code === "commander.helpDisplayed" || e.code === "commander.version" ? EXIT.ok : EXIT.usage;
		}
		throw e;
	}
}
