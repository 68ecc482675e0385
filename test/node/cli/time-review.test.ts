// `hotpath get --as-of` for a key that did not exist yet then (but does now).
import { Hotpath } from "@hotpath/client";
import { afterAll, describe, expect, it } from "vitest";
import { uniqueName, useDevServer } from "../dev-server.ts";
import { killLeftovers, runCli } from "./run-cli.ts";

const server = useDevServer();
afterAll(() => killLeftovers());
const hp = (args: string[]) => runCli(["--url", server().url, "--key", server().adminKey, ...args]);

describe("hotpath get --as-of", () => {
	it("says a miss is as of that time (exit 1), not that the key is missing", async () => {
		const sdk = new Hotpath({ url: server().url, key: server().adminKey });
		const name = uniqueName("cli_asof");
		await sdk.datasets.apply({ name, key: "id", fields: { a: "int" } });
		const t = Date.now() - 60_000;
		await sdk.import(name, [{ id: "k", a: 1, _event_time: t }]);
		const before = await hp(["get", name, "k", "--as-of", String(t - 1)]);
		expect(before.code).toBe(1);
		expect(before.stderr).toContain(`not found: no record "k" in ${name} as of ${new Date(t - 1).toISOString()}`);
		const iso = new Date(t - 1).toISOString();
		expect((await hp(["get", name, "k", "--as-of", iso])).stderr).toContain(`as of ${iso}`);
		const now = await hp(["get", name, "k"]);
		expect(now.code).toBe(0);
	});
});
