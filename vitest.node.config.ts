// Node-side tests: local tooling (the Upstash-compatible endpoint) and black-box tests of `npm run dev`.
import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["test/node/**/*.test.ts", "packages/client/test/**/*.test.ts"],
		environment: "node",
		// The second starts one shared `npm run dev` for the SDK, CLI and bridge tests, on first use.
		globalSetup: ["test/node/global-setup.ts", "test/node/dev-server.ts"],
		testTimeout: 30_000,
		hookTimeout: 120_000,
	},
});
