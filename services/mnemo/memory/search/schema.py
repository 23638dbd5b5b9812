"""The SQLite schema of one agent's shard (shard.py): rows, FTS5 tables and the triggers syncing them.

FTS5 tables use external content (the rows' own table) with Porter stemming; triggers keep them in
step with inserts, upserts and deletes, so the words index never drifts from the rows.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, role TEXT NOT NULL, text TEXT NOT NULL,
  context TEXT NOT NULL DEFAULT '', auto_context INTEGER NOT NULL DEFAULT 0, dates TEXT NOT NULL,
  created_at REAL NOT NULL, created_iso TEXT NOT NULL, turn_id TEXT NOT NULL DEFAULT '',
  extra TEXT NOT NULL DEFAULT '{}', vec BLOB);
CREATE INDEX IF NOT EXISTS messages_time ON messages (created_at, rid);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
  text, context, dates, content='messages', content_rowid='rid', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts(rowid, text, context, dates) VALUES (new.rid, new.text, new.context, new.dates);
END;
CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, text, context, dates)
  VALUES ('delete', old.rid, old.text, old.context, old.dates);
END;
CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, text, context, dates)
  VALUES ('delete', old.rid, old.text, old.context, old.dates);
  INSERT INTO messages_fts(rowid, text, context, dates) VALUES (new.rid, new.text, new.context, new.dates);
END;
CREATE TABLE IF NOT EXISTS passages (
  rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, created_at REAL NOT NULL,
  created_iso TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', source_id TEXT NOT NULL DEFAULT '',
  position INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL DEFAULT '{}', vec BLOB, expires_at REAL);
CREATE INDEX IF NOT EXISTS passages_time ON passages (created_at, rid);
CREATE TABLE IF NOT EXISTS passage_tags (tag TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tag, rid))
  WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
  text, content='passages', content_rowid='rid', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS passages_ai AFTER INSERT ON passages BEGIN
  INSERT INTO passages_fts(rowid, text) VALUES (new.rid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS passages_ad AFTER DELETE ON passages BEGIN
  INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.rid, old.text);
  DELETE FROM passage_tags WHERE rid = old.rid;
END;
CREATE TRIGGER IF NOT EXISTS passages_au AFTER UPDATE OF text ON passages BEGIN
  INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.rid, old.text);
  INSERT INTO passages_fts(rowid, text) VALUES (new.rid, new.text);
END;
"""

# Shards written before passages could expire get the column when opened (shard.AgentShard).
PASSAGE_EXPIRY_COLUMN = "ALTER TABLE passages ADD COLUMN expires_at REAL"
PASSAGE_INDEXES = """
CREATE INDEX IF NOT EXISTS passages_expiry ON passages (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS passages_source ON passages (source_id) WHERE source_id != '';
"""
