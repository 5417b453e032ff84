DROP INDEX alerts_words;
DROP TRIGGER alerts_words ON alerts;
DROP FUNCTION alerts_copy_words();
ALTER TABLE alerts DROP COLUMN words;
