//! What an allowance has used: tokens, uploads and kept documents, summed
//! for one account or for every guest made from one address.

use super::{now_ms, Store, StoreError};

/// Whose usage to sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageOwner {
    /// One account (or one guest without a known address).
    User(String),
    /// Every guest made from this address (an IPv4 address or IPv6 /64),
    /// and the asking guest itself wherever it was made (so a guest that
    /// moves to another address takes its own usage with it).
    GuestAddress {
        address: String,
        guest: Option<String>,
    },
}

/// A number of files and their size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilesAndBytes {
    pub files: u64,
    pub bytes: u64,
}

/// The users whose rows count for an owner, as a condition on `u` with two
/// parameters, `$1` and `$n` (both always bound: see [`owner_keys`]).
fn owner_condition(owner: &UsageOwner, n: u8) -> String {
    match owner {
        UsageOwner::User(_) => format!("(u.id = $1 OR u.id = ${n})"),
        UsageOwner::GuestAddress { .. } => {
            format!("((u.role = 'guest' AND u.created_from = $1) OR u.id = ${n})")
        }
    }
}

/// The values of `$1` and `$n` in [`owner_condition`].
fn owner_keys(owner: &UsageOwner) -> (&str, &str) {
    match owner {
        UsageOwner::User(id) => (id, id),
        UsageOwner::GuestAddress { address, guest } => (address, guest.as_deref().unwrap_or("")),
    }
}

/// Upload log rows older than this are of no quota's concern.
const UPLOAD_LOG_KEPT_MS: i64 = 2 * 86_400_000;

impl Store {
    /// Prompt + completion tokens of the owner's answers since `since_ms`.
    pub async fn tokens_used_by(
        &self,
        owner: &UsageOwner,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        let condition = owner_condition(owner, 3);
        let (key, own) = owner_keys(owner);
        let n: i64 = on_db!(self, db => sqlx::query_scalar(&format!(
            "SELECT CAST(COALESCE(SUM(COALESCE(m.prompt_tokens, 0) + COALESCE(m.completion_tokens, 0)), 0) AS BIGINT) \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id JOIN users u ON u.id = c.user_id \
             WHERE {condition} AND m.role = 'assistant' AND m.created_at >= $2"
        ))
        .bind(key)
        .bind(since_ms)
        .bind(own)
        .fetch_one(db)
        .await?);
        Ok(n.max(0) as u64)
    }

    /// Files accepted for the owner since `since_ms` (deleted ones included).
    pub async fn uploads_since(
        &self,
        owner: &UsageOwner,
        since_ms: i64,
    ) -> Result<FilesAndBytes, StoreError> {
        let condition = owner_condition(owner, 3);
        let (key, own) = owner_keys(owner);
        let (files, bytes): (i64, i64) = on_db!(self, db => sqlx::query_as(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(l.bytes), 0) AS BIGINT) \
             FROM upload_log l JOIN users u ON u.id = l.user_id WHERE {condition} AND l.at >= $2"
        ))
        .bind(key)
        .bind(since_ms)
        .bind(own)
        .fetch_one(db)
        .await?);
        Ok(FilesAndBytes {
            files: files.max(0) as u64,
            bytes: bytes.max(0) as u64,
        })
    }

    /// Documents the owner keeps (failed ones and ones being deleted take
    /// no room).
    pub async fn documents_kept(&self, owner: &UsageOwner) -> Result<FilesAndBytes, StoreError> {
        let condition = owner_condition(owner, 2);
        let (key, own) = owner_keys(owner);
        let (files, bytes): (i64, i64) = on_db!(self, db => sqlx::query_as(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(d.size_bytes), 0) AS BIGINT) \
             FROM documents d JOIN users u ON u.id = d.user_id \
             WHERE {condition} AND d.status NOT IN ('deleting', 'failed')"
        ))
        .bind(key)
        .bind(own)
        .fetch_one(db)
        .await?);
        Ok(FilesAndBytes {
            files: files.max(0) as u64,
            bytes: bytes.max(0) as u64,
        })
    }

    /// Forgets uploads no daily quota looks at any more.
    pub async fn prune_upload_log(&self) -> Result<u64, StoreError> {
        Ok(
            on_db!(self, db => sqlx::query("DELETE FROM upload_log WHERE at < $1")
            .bind(now_ms() - UPLOAD_LOG_KEPT_MS)
            .execute(db)
            .await?
            .rows_affected()),
        )
    }
}
