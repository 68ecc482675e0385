#!/usr/bin/env node
// The `hotpath` CLI: see docs/CLI.md. Runs on the project's Node 22 (TypeScript types stripped at load).
import { endQuietlyOnClosedPipes } from "./output.ts";
import { main } from "./program.ts";

endQuietlyOnClosedPipes();
process.exitCode = await main(process.argv.slice(2));
