CREATE INDEX `agg_hll_res_start` ON `agg_hll` (`res`,`start`);--> statement-breakpoint
CREATE INDEX `agg_tiles_res_start` ON `agg_tiles` (`res`,`start`);