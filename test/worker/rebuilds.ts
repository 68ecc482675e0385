/** What the rebuild tests share: the status a rebuild route answers, a dataset of two pages of keys, and waiting for a run to finish. */
import type { RebuildStatus } from "../../packages/client/src/types";
import { call, createDataset, eventually, expectJson, message } from "./helpers";

/** GET /v1/datasets/:name/rebuild: the SDK's type of it, so the tests hold the server to what clients are told. */
export type { RebuildStatus } from "../../packages/client/src/types";

/** Keys of datasetWithKeys: two pages of 400. */
export const REBUILD_KEYS = 450;
export const rebuildKeyOf = (i: number) => `k${String(i).padStart(4, "0")}`;

/** A new dataset holding REBUILD_KEYS records (rebuildKeyOf(0..)), imported. */
export async function datasetWithKeys(): Promise<string> {
	const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
	const rows = Array.from({ length: REBUILD_KEYS }, (_, i) => ({ id: rebuildKeyOf(i), a: i }));
	await expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);
	return ds;
}

export const rebuildStatus = async (ds: string) => expectJson<RebuildStatus>(await call("GET", `/v1/datasets/${ds}/rebuild`), 200);

/** The status once the dataset's rebuild is done. */
export const waitRebuildDone = (ds: string) =>
	eventually(
		async () => {
			const s = await rebuildStatus(ds);
			return s.status === "done" ? s : undefined;
		},
		{ what: `rebuild of ${ds}`, timeoutMs: 20_000 },
	);

/** A queue message carrying one rebuild page. */
export const rebuildPageMessage = (page: object, attempts = 1) => message(JSON.stringify({ v: 1, rebuild: page }), attempts);
