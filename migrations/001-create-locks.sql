-- The lock spaces: one row per space, its whole state in one JSON document.
-- On MariaDB `JSON` is LONGTEXT with a JSON_VALID check; on MySQL it is native JSON.
CREATE TABLE IF NOT EXISTS {{table}} (
  id VARCHAR(128) NOT NULL,
  version BIGINT UNSIGNED NOT NULL DEFAULT 0,
  dataJson JSON NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO {{table}} (id, version, dataJson) VALUES ('platform', 0, '{"v":1,"l":{}}');
