-- An alert's own words, with a GIN index of their own.
--
-- An alert is the words of the event that raised it. Searched through
-- that event (a join per candidate), a rare word cost PostgreSQL a bitmap
-- of matching events and then an alert lookup for each; with the words on
-- the alert, a search is one GIN bitmap over alerts, like the events'.
--
-- Copied by a trigger, not by the writers: ingest and the importer insert
-- alerts with the same SQL on both databases (SQLite keeps its words in
-- FTS5), and the raising event is always stored before its alert. Events
-- never change, so a copy taken at insert stays true.
ALTER TABLE alerts ADD COLUMN words tsvector;

CREATE FUNCTION alerts_copy_words() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.words := (SELECT e.words FROM events e WHERE e.id = NEW.event_id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER alerts_words BEFORE INSERT OR UPDATE OF event_id ON alerts
    FOR EACH ROW EXECUTE FUNCTION alerts_copy_words();

UPDATE alerts a SET words = e.words FROM events e WHERE e.id = a.event_id;
CREATE INDEX alerts_words ON alerts USING gin (words);
