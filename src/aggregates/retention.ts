/** Retention of aggregate tiles: each resolution is kept as far back as the windows that read it reach. */
import { log } from "../observability/log";
import { pruneTiles } from "../storage/aggregates";
import { RESOLUTIONS, TILE_RETENTION } from "./windows";

export async function pruneAggregateTiles(db: D1Database, now = Date.now()): Promise<number> {
	let pruned = 0;
	for (const res of RESOLUTIONS) pruned += await pruneTiles(db, res, now - (TILE_RETENTION[res] as number));
	if (pruned) log.info("pruned aggregate tiles", { pruned });
	return pruned;
}
