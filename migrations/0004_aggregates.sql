CREATE TABLE `agg_backfills` (
	`job` text PRIMARY KEY NOT NULL,
	`dataset` text NOT NULL,
	`aggs` text NOT NULL,
	`before` integer NOT NULL,
	`cursor` text,
	`keys_done` integer DEFAULT 0 NOT NULL,
	`done` integer DEFAULT 0 NOT NULL,
	`started_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `agg_hll` (
	`dataset` text NOT NULL,
	`key` text NOT NULL,
	`agg` text NOT NULL,
	`res` integer NOT NULL,
	`start` integer NOT NULL,
	`idx` integer NOT NULL,
	`rank` integer NOT NULL,
	PRIMARY KEY(`dataset`, `key`, `agg`, `res`, `start`, `idx`)
);
--> statement-breakpoint
CREATE TABLE `agg_tiles` (
	`dataset` text NOT NULL,
	`key` text NOT NULL,
	`agg` text NOT NULL,
	`res` integer NOT NULL,
	`start` integer NOT NULL,
	`cnt` integer NOT NULL,
	`sum` real NOT NULL,
	`mn` real,
	`mx` real,
	PRIMARY KEY(`dataset`, `key`, `agg`, `res`, `start`)
);
--> statement-breakpoint
ALTER TABLE `event_log` ADD `writer` integer;--> statement-breakpoint
ALTER TABLE `event_log` ADD `agg_version` integer;