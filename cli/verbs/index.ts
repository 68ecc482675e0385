/**
 * Every verb of the CLI, registered from this one list. A verb is a function that adds its
 * command to the program; a new verb is one import and one entry here. A verb that parses its own
 * arguments (like `bridge`) registers through `passthroughVerb` (./passthrough.ts).
 */
import { registerBridge } from "./bridge.ts";
import { registerDatasets } from "./datasets.ts";
import { registerDlq } from "./dlq.ts";
import { registerExport } from "./export.ts";
import { registerGet } from "./get.ts";
import { registerHealth } from "./health.ts";
import { registerHistory } from "./history.ts";
import { registerKeys } from "./keys.ts";
import { registerLoad } from "./load.ts";
import { registerLookup } from "./lookup.ts";
import type { RegisterVerb } from "./passthrough.ts";
import { registerPush } from "./push.ts";
import { registerRebuild } from "./rebuild.ts";
import { registerSearch } from "./search.ts";
import { registerStats } from "./stats.ts";

export type { RegisterVerb };

export const verbs: RegisterVerb[] = [
	registerDatasets,
	registerGet,
	registerLookup,
	registerSearch,
	registerHistory,
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
