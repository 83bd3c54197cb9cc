-- A checksum of the document as locktable last wrote it. The one-statement
-- acquire and release (lib/store.ts fastWrite) only write into a document whose
-- text still has this checksum: one that was validated by a full read, or
-- written by such a statement. A document changed by anything else (a tool, a
-- hand edit, an older locktable) fails the check, and the operation falls back
-- to the read-validate-write path, which never overwrites an invalid document.
ALTER TABLE {{table}} ADD COLUMN dataCrc INT UNSIGNED NULL;

-- A space nobody has written yet holds the empty format-1 document that 001
-- inserted: it becomes the empty format-2 document, checksummed, so that the
-- first acquire is already one statement. Any other document is left alone:
-- the first full read validates it, and its write adds the checksum.
UPDATE {{table}} SET dataJson = '{"v":2,"o":{},"l":{}}', dataCrc = CRC32(dataJson)
WHERE JSON_VALID(dataJson) AND JSON_LENGTH(dataJson) = 2 AND JSON_VALUE(dataJson, '$.v') = '1'
  AND JSON_TYPE(JSON_EXTRACT(dataJson, '$.l')) = 'OBJECT' AND JSON_LENGTH(dataJson, '$.l') = 0;
