//! Read-only links to a conversation as it was when shared: the snapshot is
//! stored with the link, so later turns, edits or deletions of documents
//! don't change what the link shows. Revoking deletes the link and its
//! snapshot.

use super::{now_ms, DbRow, Store, StoreError};
use app::wire::ShareView;

/// A user may have at most this many links.
pub const MAX_SHARES_PER_USER: i64 = 100;

/// Whether a link was made.
pub enum ShareMade {
    Made(ShareView),
    NotFound,
    TooMany,
}

impl Store {
    /// Makes a link to one of the user's conversations, holding `snapshot`
    /// (the conversation as it is now, serialized).
    pub async fn create_share(
        &self,
        user_id: &str,
        conversation_id: &str,
        snapshot: &str,
    ) -> Result<ShareMade, StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        // Replicas count one user's links one at a time (Postgres).
        let lock = self.lock_row_of("u");
        on_db!(self, db => {
            let mut tx = db.begin_with(self.write_transaction()).await?;
            // The lock first; the count then sees what the share before committed.
            sqlx::query(&format!("SELECT u.id FROM users u WHERE u.id = $1{lock}"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shares WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
            if live >= MAX_SHARES_PER_USER {
                return Ok(ShareMade::TooMany);
            }
            let title: Option<String> = sqlx::query_scalar(
                "INSERT INTO shares (id, conversation_id, user_id, title, snapshot, created_at) \
                 SELECT $1, c.id, c.user_id, c.title, $2, $3 FROM conversations c \
                 WHERE c.id = $4 AND c.user_id = $5 RETURNING title",
            )
            .bind(&id)
            .bind(snapshot)
            .bind(now)
            .bind(conversation_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(match title {
                Some(title) => ShareMade::Made(ShareView {
                    id,
                    conversation_id: conversation_id.to_owned(),
                    title,
                    created_at_ms: now,
                }),
                None => ShareMade::NotFound,
            })
        })
    }

    /// The user's live links, newest first.
    pub async fn list_shares(&self, user_id: &str) -> Result<Vec<ShareView>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, conversation_id, title, created_at FROM shares \
             WHERE user_id = $1 ORDER BY created_at DESC",
        )
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(ShareView {
                id: r.text("id")?,
                conversation_id: r.text("conversation_id")?,
                title: r.text("title")?,
                created_at_ms: r.int("created_at")?,
            })
        })
        .collect())
    }

    /// Revokes one of the user's links (deleting it); false if there was none.
    pub async fn revoke_share(&self, user_id: &str, share_id: &str) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "DELETE FROM shares WHERE id = $1 AND user_id = $2",
        )
        .bind(share_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// The snapshot behind a live link.
    pub async fn shared_snapshot(&self, share_id: &str) -> Result<Option<String>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT snapshot FROM shares WHERE id = $1",
        )
        .bind(share_id)
        .fetch_optional(db)
        .await?))
    }
}
