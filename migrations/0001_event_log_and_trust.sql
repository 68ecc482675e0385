CREATE TABLE `event_log` (
	`seq` integer PRIMARY KEY NOT NULL,
	`dataset` text NOT NULL,
	`key` text NOT NULL,
	`event_time` integer NOT NULL,
	`event_id` text NOT NULL,
	`op` text NOT NULL,
	`value` text,
	`applied_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `event_log_id` ON `event_log` (`dataset`,`key`,`event_id`);--> statement-breakpoint
CREATE INDEX `event_log_time` ON `event_log` (`dataset`,`key`,`event_time`,`event_id`);--> statement-breakpoint
ALTER TABLE `api_keys` ADD `rate_limit` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `expires_at` integer;--> statement-breakpoint
ALTER TABLE `dead_letters` ADD `datasets` text;--> statement-breakpoint
ALTER TABLE `records` ADD `writer` integer;