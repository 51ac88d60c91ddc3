//! Searching a user's conversations: message text through the database's
//! full-text index (SQLite FTS5, Postgres `tsvector`), best match first.

use super::{DbRow, Pool, Store, StoreError};
use app::wire::{SearchHit, MATCH_END, MATCH_START};

/// At most this many matching messages are read per search.
const MAX_MESSAGE_HITS: i64 = 200;

impl Store {
    /// The user's conversations with a message holding every one of
    /// `terms` (word prefixes, letters and digits only), best match first,
    /// each once, with the best message's matching snippet.
    pub async fn search_messages(
        &self,
        user_id: &str,
        terms: &[String],
    ) -> Result<Vec<SearchHit>, StoreError> {
        if terms.is_empty() || terms.iter().any(|t| !t.chars().all(char::is_alphanumeric)) {
            return Ok(Vec::new());
        }
        let rows = match &self.pool {
            Pool::Sqlite(db) => {
                let query: Vec<String> = terms.iter().map(|t| format!("\"{t}\"*")).collect();
                sqlx::query(
                    "SELECT c.id, c.title, c.updated_at, \
                       snippet(messages_fts, 0, $3, $4, '…', 16) AS snippet \
                     FROM messages_fts JOIN conversations c ON c.id = messages_fts.conversation_id \
                     WHERE messages_fts MATCH $1 AND c.user_id = $2 AND c.source = 'browser' \
                     ORDER BY rank LIMIT $5",
                )
                .bind(query.join(" "))
                .bind(user_id)
                .bind(MATCH_START.to_string())
                .bind(MATCH_END.to_string())
                .bind(MAX_MESSAGE_HITS)
                .fetch_all(db)
                .await?
                .iter()
                .map(hit_from_row)
                .collect::<Result<Vec<_>, _>>()?
            }
            Pool::Postgres(db) => {
                let query: Vec<String> = terms.iter().map(|t| format!("{t}:*")).collect();
                sqlx::query(
                    "SELECT c.id, c.title, c.updated_at, \
                       ts_headline('english', m.content, q, $3) AS snippet \
                     FROM messages m JOIN conversations c ON c.id = m.conversation_id, \
                       to_tsquery('english', $1) q \
                     WHERE c.user_id = $2 AND c.source = 'browser' AND m.status != 'streaming' \
                       AND to_tsvector('english', m.content) @@ q \
                     ORDER BY ts_rank(to_tsvector('english', m.content), q) DESC LIMIT $4",
                )
                .bind(query.join(" & "))
                .bind(user_id)
                .bind(format!(
                    "StartSel={MATCH_START}, StopSel={MATCH_END}, MaxWords=24, MinWords=8, \
                     MaxFragments=1, FragmentDelimiter=…"
                ))
                .bind(MAX_MESSAGE_HITS)
                .fetch_all(db)
                .await?
                .iter()
                .map(hit_from_row)
                .collect::<Result<Vec<_>, _>>()?
            }
        };
        let mut seen = std::collections::HashSet::new();
        Ok(rows
            .into_iter()
            .filter(|hit| seen.insert(hit.conversation_id.clone()))
            .collect())
    }
}

fn hit_from_row(r: &impl DbRow) -> Result<SearchHit, StoreError> {
    Ok(SearchHit {
        conversation_id: r.text("id")?,
        title: r.text("title")?,
        snippet: r.text("snippet")?,
        updated_at_ms: r.int("updated_at")?,
    })
}
