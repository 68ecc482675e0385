// The admin key in .dev.vars, read as wrangler reads the file (dotenv syntax: quotes of either
// kind, `export`, comments, the last line for a name winning), so `npm run dev`, the CLI and
// wrangler agree on it.
import { parseEnv } from "node:util";

/** HOTPATH_ADMIN_KEY of a .dev.vars text, or undefined when it has none (or an empty one). */
export function adminKeyOf(devVars: string): string | undefined {
	return parseEnv(devVars).HOTPATH_ADMIN_KEY || undefined;
}
