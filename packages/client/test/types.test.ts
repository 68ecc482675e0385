// The SDK's types against the real answers of `npm run dev`: each type names exactly the members
// the server sends (none missing, none made up), and takes every input the server takes.
import { describe, expect, expectTypeOf, it } from "vitest";
import { eventually, uniqueName, useDevServer } from "../../../test/node/dev-server.ts";
import {
	type AggregateSpec,
	type CreatedKey,
	type DeadLetter,
	type GetResult,
	type Health,
	Hotpath,
	type KeyInfo,
	type KeyInput,
	type RateLimit,
	type RebuildStatus,
	type Spec,
	type TimeInput,
} from "../src/index.ts";

const server = useDevServer();
const admin = () => new Hotpath({ url: server().url, key: server().adminKey, retryBaseMs: 50 });

type Presence = "required" | "optional";

/** A type's members, written out: `satisfies` fails to compile when one is missing or made up. */
const members = (m: Record<string, Presence>) => m;

/** Every member the server sent is in the type, and every member the type requires was sent. */
function expectMembers(real: object, typed: Record<string, Presence>) {
	for (const k of Object.keys(real)) expect(typed, `the server sent "${k}"`).toHaveProperty(k);
	for (const [k, how] of Object.entries(typed)) if (how === "required") expect(real, `the type requires "${k}"`).toHaveProperty(k);
}

const keyInfo = members({
	id: "required",
	name: "required",
	scopes: "required",
	datasets: "required",
	rate_limit: "required",
	expires_at: "required",
	created_at: "required",
	revoked_at: "required",
} satisfies Record<keyof KeyInfo, Presence>);

const spec = members({
	name: "required",
	key: "required",
	fields: "required",
	ttl_seconds: "required",
	history_days: "required",
	description: "optional",
	search: "optional",
	aggregates: "optional",
	ingest: "optional",
} satisfies Record<keyof Spec, Presence>);

const aggregate = members({ fn: "required", of: "optional", window: "required", n: "optional", since: "optional" } satisfies Record<
	keyof AggregateSpec,
	Presence
>);

const rebuild = members({
	dataset: "required",
	mode: "required",
	status: "required",
	keys_done: "required",
	pages_done: "required",
	total_keys: "required",
	started_at: "required",
	finished_at: "required",
	started: "optional",
	error: "optional",
} satisfies Record<keyof RebuildStatus, Presence>);

describe("@hotpath/client types match the server's answers", () => {
	it("keys: create takes expires_at as epoch ms, a Date or RFC 3339, and null limits; KeyInfo always has rate_limit and expires_at", async () => {
		const hp = admin();
		const inOneHour = Date.now() + 3_600_000;
		const byNumber = await hp.keys.create({ name: uniqueName("k"), scopes: ["read"], expires_at: inOneHour, datasets: null, rate_limit: null });
		expect(Date.parse(byNumber.expires_at ?? "")).toBe(inOneHour);
		const byDate = await hp.keys.create({
			name: uniqueName("k"),
			scopes: ["read"],
			expires_at: new Date(inOneHour),
			rate_limit: { requests: 5, period_seconds: 60 },
		});
		expect(byDate.expires_at).toBe(new Date(inOneHour).toISOString());
		expect(byDate.rate_limit).toEqual({ requests: 5, period_seconds: 60 });
		const plain = await hp.keys.create({ name: uniqueName("k"), scopes: ["read"] });
		expectMembers(plain, { ...keyInfo, key: "required" });
		expect(plain).toMatchObject({ rate_limit: null, expires_at: null });
		const listed = (await hp.keys.list()).find((k) => k.id === plain.id);
		expectMembers(listed ?? {}, keyInfo);
		for (const k of [byNumber, byDate, plain]) await hp.keys.revoke(k.id);

		expectTypeOf<KeyInput["expires_at"]>().toEqualTypeOf<TimeInput | null | undefined>();
		expectTypeOf<KeyInput["rate_limit"]>().toEqualTypeOf<RateLimit | null | undefined>();
		expectTypeOf<KeyInput["datasets"]>().toEqualTypeOf<string[] | null | undefined>();
		expectTypeOf<KeyInfo["rate_limit"]>().toEqualTypeOf<RateLimit | null>();
		expectTypeOf<KeyInfo["expires_at"]>().toEqualTypeOf<string | null>();
		expectTypeOf<CreatedKey["key"]>().toEqualTypeOf<string>();
	});

	it("specs: history_days always, and each aggregate's since", async () => {
		const hp = admin();
		const name = uniqueName("sdk_types");
		const { spec: applied } = await hp.datasets.apply({
			name,
			key: "u",
			ttl_seconds: 60,
			fields: { amt: "float" },
			aggregates: { n: { fn: "count", window: "1h" }, last: { fn: "last_n", of: "amt", n: 2, window: "1h" } },
		});
		const shown = await hp.datasets.get(name);
		for (const s of [applied, shown]) {
			expectMembers(s, spec);
			for (const a of Object.values(s.aggregates ?? {})) expectMembers(a, aggregate);
			expect(s.aggregates?.n?.since).toEqual(expect.any(Number));
		}
		// A spec read back applies again as it is (its since is ignored): `hotpath datasets get X --json` then apply.
		expect((await hp.datasets.apply(shown)).created).toBe(false);
		expectTypeOf<Spec>().toExtend<Parameters<Hotpath["datasets"]["apply"]>[0]>();
		expectTypeOf<Spec["history_days"]>().toEqualTypeOf<number>();
		expectTypeOf<AggregateSpec["since"]>().toEqualTypeOf<number | undefined>();

		// Aggregates are read beside the fields, in the record's value.
		await hp.push([{ dataset: name, key: "u1", op: "upsert", value: { amt: 2 } }]);
		const read = await eventually(async () => {
			const r = await hp.get<{ amt: number | null; n: number; last: number[] }>(name, "u1");
			return r.status === "not_found" ? undefined : r;
		});
		expectMembers(read, {
			dataset: "required",
			key: "required",
			status: "required",
			value: "required",
			event_time: "required",
			age_ms: "required",
		} satisfies Record<keyof GetResult, Presence>);
		expect(read.value).toEqual({ amt: 2, n: 1, last: [2] });
	});

	it("rebuild status: total_keys is a number, never null", async () => {
		const hp = admin();
		const name = uniqueName("sdk_types");
		await hp.datasets.apply({ name, key: "k", fields: { a: "int" } });
		const idle = await hp.rebuildStatus(name);
		expectMembers(idle, rebuild);
		expect(idle).toMatchObject({ status: "idle", total_keys: 0 });
		expectMembers(await hp.rebuild(name), rebuild);
		expectTypeOf<RebuildStatus["total_keys"]>().toEqualTypeOf<number>();
	});

	it("health: status is ok, degraded or down", async () => {
		const h = await admin().health();
		expect(["ok", "degraded", "down"]).toContain(h.status);
		expectTypeOf<Health["status"]>().toEqualTypeOf<"ok" | "degraded" | "down">();
		// As GET /v1/dead-letters lists them (src/routes/admin.ts): datasets and waiting_in_kv on every letter.
		expectTypeOf<DeadLetter["datasets"]>().toEqualTypeOf<string[] | null>();
		expectTypeOf<DeadLetter["waiting_in_kv"]>().toEqualTypeOf<boolean>();
	});
});
