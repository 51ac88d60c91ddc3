//! Conversations and their messages: listing, opening the branch shown,
//! switching branches, renaming, pinning and deleting. A turn's rows, from
//! its start to how it ended, are in `turns`.

use super::tree::{Node, Tree};
use super::{json_list, DbRow, Store, StoreError};
use app::wire::{
    ConversationSummary, ConversationView, MessageStatus, MessageView, Rating, Role, Source,
};

impl Store {
    /// Answers left "streaming" by a crash or restart can never finish. With a
    /// shared database other replicas may still be streaming theirs, so only
    /// answers whose replica was last heard of before `silent_since_ms` (or
    /// that started before it, never heard of) are touched.
    pub async fn mark_interrupted(&self, silent_since_ms: i64) -> Result<u64, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE messages SET status = 'incomplete', \
             error = 'The server stopped while this answer was being generated.' \
             WHERE status = 'streaming' AND COALESCE(heartbeat_at, created_at) < $1",
        )
        .bind(silent_since_ms)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done)
    }

    pub async fn list_conversations(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        on_db!(self, db => sqlx::query(
            "SELECT id, title, updated_at, pinned FROM conversations \
             WHERE user_id = $1 AND source = 'browser' ORDER BY pinned DESC, updated_at DESC LIMIT 500",
        )
        .bind(user_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(ConversationSummary {
                id: r.text("id")?,
                title: r.text("title")?,
                updated_at_ms: r.int("updated_at")?,
                pinned: r.int("pinned")? != 0,
            })
        })
        .collect())
    }

    /// The conversation's title if `user_id` owns it.
    pub async fn owned_title(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_db!(self, db => sqlx::query_scalar(
            "SELECT title FROM conversations WHERE id = $1 AND user_id = $2",
        )
        .bind(conversation_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?))
    }

    /// One of the user's conversations as it shows (`None` if not theirs).
    pub async fn owned_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Option<ConversationView>, StoreError> {
        let Some(title) = self.owned_title(user_id, conversation_id).await? else {
            return Ok(None);
        };
        Ok(Some(ConversationView {
            id: conversation_id.to_owned(),
            title,
            messages: self.active_branch(conversation_id).await?,
            scope: self.conversation_scope(conversation_id).await?,
        }))
    }

    /// The collections a conversation searches (`None`: all the user may read).
    pub async fn conversation_scope(
        &self,
        conversation_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let scope: Option<Option<String>> = on_db!(self, db => sqlx::query_scalar(
            "SELECT scope FROM conversations WHERE id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(db)
        .await?);
        scope
            .flatten()
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("conversation scope: {e}")))
            })
            .transpose()
    }

    /// Sets which collections one of the user's conversations searches;
    /// false if it isn't theirs.
    pub async fn set_conversation_scope(
        &self,
        user_id: &str,
        conversation_id: &str,
        scope: Option<&[String]>,
    ) -> Result<bool, StoreError> {
        let json = scope.map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
        let done = on_db!(self, db => sqlx::query(
            "UPDATE conversations SET scope = $1 WHERE id = $2 AND user_id = $3",
        )
        .bind(json)
        .bind(conversation_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// The branch the conversation shows, first message first, each message
    /// with its versions.
    pub async fn active_branch(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<MessageView>, StoreError> {
        let (leaf, rows) = on_db!(self, db => {
            let leaf: Option<String> =
                sqlx::query_scalar("SELECT leaf_id FROM conversations WHERE id = $1")
                    .bind(conversation_id)
                    .fetch_optional(db)
                    .await?
                    .flatten();
            let rows = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS}, m.parent_id, m.seq, f.rating FROM messages m \
                 LEFT JOIN feedback f ON f.message_id = m.id \
                   AND f.user_id = (SELECT user_id FROM conversations c WHERE c.id = m.conversation_id) \
                 WHERE m.conversation_id = $1 ORDER BY m.seq"
            ))
            .bind(conversation_id)
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| Ok((node_from_row(r)?, message_from_row(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
            (leaf, rows)
        });
        let tree = Tree::new(rows.iter().map(|(node, _)| node.clone()).collect());
        let mut by_id: std::collections::HashMap<String, MessageView> = rows
            .into_iter()
            .map(|(node, view)| (node.id, view))
            .collect();
        Ok(tree
            .path_to(leaf.as_deref())
            .into_iter()
            .filter_map(|id| {
                let mut view = by_id.remove(&id)?;
                view.versions = tree.versions(&id);
                Some(view)
            })
            .collect())
    }

    /// Shows the branch through `message_id` (one of the user's messages):
    /// its newest turn becomes the conversation's leaf. Returns the
    /// conversation, or `None` if the message is not the user's.
    pub async fn switch_branch(
        &self,
        user_id: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        on_db!(self, db => {
            let mut tx = db.begin_with(self.write_transaction()).await?;
            let conversation: Option<String> = sqlx::query_scalar(
                "SELECT c.id FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE m.id = $1 AND c.user_id = $2",
            )
            .bind(message_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(conversation) = conversation else {
                return Ok(None);
            };
            let tree = Tree::new(
                sqlx::query("SELECT id, parent_id, seq FROM messages WHERE conversation_id = $1")
                    .bind(&conversation)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(node_from_row)
                    .collect::<Result<Vec<_>, StoreError>>()?,
            );
            sqlx::query("UPDATE conversations SET leaf_id = $1 WHERE id = $2")
                .bind(tree.newest_leaf_from(message_id))
                .bind(&conversation)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(conversation))
        })
    }

    /// Renames a conversation the user owns; false if there was none.
    pub async fn rename_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
        title: &str,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE conversations SET title = $1 WHERE id = $2 AND user_id = $3",
        )
        .bind(title)
        .bind(conversation_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// Pins a conversation the user owns to the top of the list (or unpins
    /// it); false if there was none.
    pub async fn pin_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
        pinned: bool,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "UPDATE conversations SET pinned = $1 WHERE id = $2 AND user_id = $3",
        )
        .bind(i64::from(pinned))
        .bind(conversation_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done > 0)
    }

    /// Deletes a conversation the user owns; false if there was none.
    pub async fn delete_conversation(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<bool, StoreError> {
        let done = on_db!(self, db => sqlx::query(
            "DELETE FROM conversations WHERE id = $1 AND user_id = $2",
        )
        .bind(conversation_id)
        .bind(user_id)
        .execute(db)
        .await?
        .rows_affected());
        Ok(done > 0)
    }
}

fn node_from_row(r: &impl DbRow) -> Result<Node, StoreError> {
    Ok(Node {
        id: r.text("id")?,
        parent: r.opt_text("parent_id")?,
        seq: r.int("seq")?,
    })
}

pub(super) fn parse_role(role: &str) -> Result<Role, StoreError> {
    match role {
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        other => Err(StoreError::Corrupt(format!("role {other:?}"))),
    }
}

/// What [`message_from_row`] reads of a message `m` (and `rating`).
pub(super) const MESSAGE_COLUMNS: &str = "m.id, m.role, m.content, m.status, m.error, m.model, \
    m.completion_tokens, m.ttft_ms, m.total_ms, m.sources, m.notice, m.search_query";

pub(super) fn message_from_row(r: &impl DbRow) -> Result<MessageView, StoreError> {
    let status = r.text("status")?;
    let to_u64 = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(MessageView {
        id: r.text("id")?,
        role: parse_role(&r.text("role")?)?,
        content: r.text("content")?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        error: r.opt_text("error")?,
        model: r.opt_text("model")?,
        completion_tokens: r
            .opt_int("completion_tokens")?
            .and_then(|v| u32::try_from(v).ok()),
        ttft_ms: to_u64(r.opt_int("ttft_ms")?),
        total_ms: to_u64(r.opt_int("total_ms")?),
        sources: json_list(r, "sources")?,
        notice: r.opt_text("notice")?,
        searched_for: r.opt_text("search_query")?,
        rating: r.opt_int("rating")?.and_then(Rating::from_score),
        versions: None,
    })
}

pub(super) fn sources_json(sources: &[Source]) -> Option<String> {
    if sources.is_empty() {
        None
    } else {
        serde_json::to_string(sources).ok()
    }
}
