ALTER TABLE `agg_backfills` ADD `new_dataset` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `agg_backfills_running` ON `agg_backfills` (`dataset`) WHERE done = 0;