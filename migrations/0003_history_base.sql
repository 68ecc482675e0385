CREATE TABLE `history_base` (
	`dataset` text NOT NULL,
	`key` text NOT NULL,
	`state` text NOT NULL,
	`through_time` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`dataset`, `key`)
);
