-- The checksum of the document as it is now, kept by the server itself on
-- every write, whoever writes (a STORED generated column cannot be written
-- directly). The one-statement acquire and release compare the checksum
-- locktable stored with its last write (dataCrc, 002) with this one: the same
-- test as dataCrc = CRC32(dataJson), without computing CRC32 over the old
-- text in the WHERE. On Oracle MySQL, whose JSON is binary and must be turned
-- back into text for CRC32, that halves the conversions per write.
ALTER TABLE {{table}} ADD COLUMN dataCrcNow INT UNSIGNED AS (CRC32(dataJson)) STORED;
